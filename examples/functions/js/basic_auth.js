// Viewer-request: HTTP Basic authentication in front of a behavior.
//
// A viewer without valid credentials gets a generated 401 with WWW-Authenticate, so the
// browser asks for a user name and password. Deploys to Lambda@Edge as it is.
'use strict';

const crypto = require('crypto');

const REALM = 'edge demo';
// Lambda@Edge has no environment variables: credentials live in the code (or a secret store).
const USERS = { demo: 'edge' };

function sameText(expected, given) {
  const a = Buffer.from(expected);
  const b = Buffer.from(given);
  return a.length === b.length && crypto.timingSafeEqual(a, b);
}

function authorized(headers) {
  for (const entry of headers.authorization || []) {
    const [scheme, token = ''] = entry.value.split(/ (.*)/s);
    if (scheme.toLowerCase() !== 'basic') continue;
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(token) || token.length % 4 !== 0) return false;
    const decoded = Buffer.from(token, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    const user = colon < 0 ? decoded : decoded.slice(0, colon);
    const password = colon < 0 ? '' : decoded.slice(colon + 1);
    const expected = Object.hasOwn(USERS, user) ? USERS[user] : undefined;
    return expected !== undefined && sameText(expected, password);
  }
  return false;
}

exports.handler = async (event) => {
  const request = event.Records[0].cf.request;
  if (authorized(request.headers)) return request;
  return {
    status: '401',
    statusDescription: 'Unauthorized',
    headers: {
      'www-authenticate': [{ key: 'WWW-Authenticate', value: `Basic realm="${REALM}"` }],
      'content-type': [{ key: 'Content-Type', value: 'text/plain; charset=utf-8' }],
      'cache-control': [{ key: 'Cache-Control', value: 'no-store' }],
    },
    body: 'Authentication required.\n',
  };
};
