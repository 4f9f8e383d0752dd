// Origin-response: replace an origin's 5xx page with the site's own error page.
//
// The status stays (a 503 is still a 503 for caches and monitors); the body becomes a friendly
// page and the response is not cached for long. An ES module (.mjs), as Lambda runs them.

const page = (status) => `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>We'll be right back</title></head>
<body><h1>We'll be right back</h1>
<p>The service is having a problem (${status}). Please try again in a minute.</p></body></html>
`;

export const handler = async (event) => {
  const response = event.Records[0].cf.response;
  const status = Number.parseInt(response.status, 10);
  if (status < 500) return response;
  response.body = page(status);
  response.bodyEncoding = 'text';
  response.headers['content-type'] = [{ key: 'Content-Type', value: 'text/html; charset=utf-8' }];
  response.headers['cache-control'] = [{ key: 'Cache-Control', value: 'max-age=10' }];
  delete response.headers['content-encoding'];
  return response;
};
