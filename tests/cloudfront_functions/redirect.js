function handler(event) {
  return {
    statusCode: 302,
    statusDescription: 'Found',
    headers: { location: { value: 'https://example.com' + event.request.uri } },
  };
}
