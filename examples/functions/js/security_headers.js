// Origin-response: add the security headers every page should carry.
//
// Runs once per origin fetch (not on cache hits), so the headers are cached with the object.
'use strict';

const SECURITY_HEADERS = {
  'strict-transport-security': ['Strict-Transport-Security', 'max-age=63072000; includeSubDomains; preload'],
  'content-security-policy': ['Content-Security-Policy', "default-src 'self'; img-src 'self' data:; object-src 'none'"],
  'x-content-type-options': ['X-Content-Type-Options', 'nosniff'],
  'x-frame-options': ['X-Frame-Options', 'DENY'],
  'referrer-policy': ['Referrer-Policy', 'strict-origin-when-cross-origin'],
  'permissions-policy': ['Permissions-Policy', 'camera=(), microphone=(), geolocation=()'],
};

exports.handler = async (event) => {
  const response = event.Records[0].cf.response;
  const headers = response.headers;
  for (const [name, [key, value]] of Object.entries(SECURITY_HEADERS)) {
    headers[name] = [{ key, value }];
  }
  delete headers.server;
  delete headers['x-powered-by'];
  return response;
};
