// viewer-request: let a request through only with a valid HS256 JWT (Authorization: Bearer or
// the `token` cookie). The signing secret is in the KeyValueStore under `jwt-secret`.
import cf from 'cloudfront';
import crypto from 'crypto';

const kvs = cf.kvs();

function deny(reason) {
  return {
    statusCode: 401,
    statusDescription: 'Unauthorized',
    headers: { 'www-authenticate': { value: 'Bearer' }, 'x-denied': { value: reason } },
  };
}

function decode(part) {
  return JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
}

async function handler(event) {
  const request = event.request;
  let token = '';
  const auth = request.headers.authorization;
  if (auth && auth.value.startsWith('Bearer ')) token = auth.value.slice(7);
  else if (request.cookies.token) token = request.cookies.token.value;
  const parts = token.split('.');
  if (parts.length !== 3) return deny('no token');

  const secret = await kvs.get('jwt-secret');
  const expected = crypto.createHmac('sha256', secret).update(parts[0] + '.' + parts[1]).digest('base64url');
  if (expected !== parts[2]) return deny('bad signature');

  let header, payload;
  try {
    header = decode(parts[0]);
    payload = decode(parts[1]);
  } catch (e) {
    return deny('malformed token');
  }
  if (header.alg !== 'HS256') return deny('unexpected algorithm');
  if (typeof payload.exp === 'number' && payload.exp * 1000 < Date.now()) return deny('expired');

  request.headers['x-user'] = { value: String(payload.sub) };
  return request;
}
