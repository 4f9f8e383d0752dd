// viewer-request: permanent redirects for moved pages, answered at the edge.
var MOVED = { '/old': '/', '/old/': '/', '/blog': '/docs/' };

function handler(event) {
  var request = event.request;
  var target = MOVED[request.uri];
  if (!target) return request;
  var host = request.headers.host ? request.headers.host.value : 'localhost';
  return {
    statusCode: 301,
    statusDescription: 'Moved Permanently',
    headers: { location: { value: 'http://' + host + target } },
  };
}
