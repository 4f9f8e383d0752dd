// viewer-request: serve a single-page app's index.html for its routes. A URI ending in '/'
// gets index.html; a URI without a file extension is a client-side route of the app.
function handler(event) {
  var request = event.request;
  var uri = request.uri;
  if (uri.endsWith('/')) {
    request.uri += 'index.html';
  } else if (!uri.split('/').pop().includes('.')) {
    request.uri = '/docs/index.html';
  }
  return request;
}
