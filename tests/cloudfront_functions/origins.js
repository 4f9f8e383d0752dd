import cf from 'cloudfront';

// Origin helpers by path: /to-b/... (or any path with `x-pick: b`) selects origin B; /to-echo/... moves the request to the
// echo origin's host, port and path (ECHO_PORT is written in by the test), /to-localhost/...
// to the same server under a host name nobody configured; /group/... makes a
// group of A and B that fails over on 500; /to-nowhere/... names an origin nobody configured.
function handler(event) {
  var request = event.request;
  var uri = request.uri;
  var pick = request.headers['x-pick'];
  if (uri.startsWith('/to-b/') || (pick && pick.value === 'b')) {
    cf.selectRequestOriginById('b');
  } else if (uri.startsWith('/to-echo/')) {
    cf.updateRequestOrigin({
      domainName: '127.0.0.1',
      originPath: '/moved',
      customHeaders: { 'x-origin-secret': 's3cret' },
      customOriginConfig: { port: ECHO_PORT, protocol: 'http' },
      originShield: { enabled: false },
    });
  } else if (uri.startsWith('/to-localhost/')) {
    // A host no origin is configured with: a client of its own.
    cf.updateRequestOrigin({
      domainName: 'localhost',
      customOriginConfig: { port: ECHO_PORT, protocol: 'http' },
    });
  } else if (uri.startsWith('/group/')) {
    request.uri = '/status/500';
    cf.createRequestOriginGroup({
      originIds: ['a', 'b'],
      failoverCriteria: { statusCodes: [500, 502] },
    });
  } else if (uri.startsWith('/to-nowhere/')) {
    cf.selectRequestOriginById('nowhere');
  }
  return request;
}
