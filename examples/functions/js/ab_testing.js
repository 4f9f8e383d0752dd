// A/B testing with a sticky cookie.
//
// viewerRequest: a viewer in a group (cookie `ab-group=a|b`) keeps it; a new viewer is put in
// one at random. The page `/experiment/` is then served from `/experiment/a/` or
// `/experiment/b/`. The choice travels to viewerResponse in a request header.
//
// viewerResponse: a viewer who came without the cookie gets it, so the next visit lands in the
// same group.
'use strict';

const COOKIE = 'ab-group';
const GROUPS = ['a', 'b'];
const HEADER = 'x-ab-group';

function groupFromCookies(headers) {
  for (const entry of headers.cookie || []) {
    for (const part of entry.value.split(';')) {
      const [name, ...rest] = part.trim().split('=');
      const value = rest.join('=');
      if (name === COOKIE && GROUPS.includes(value)) return value;
    }
  }
  return null;
}

exports.viewerRequest = async (event) => {
  const request = event.Records[0].cf.request;
  const headers = request.headers;
  let group = groupFromCookies(headers);
  if (group === null) {
    group = GROUPS[Math.floor(Math.random() * GROUPS.length)];
    headers[HEADER] = [{ key: 'X-AB-Group', value: `new:${group}` }];
  } else {
    headers[HEADER] = [{ key: 'X-AB-Group', value: group }];
  }
  if (['/experiment', '/experiment/', '/experiment/index.html'].includes(request.uri)) {
    request.uri = `/experiment/${group}/index.html`;
  }
  return request;
};

exports.viewerResponse = async (event) => {
  const cf = event.Records[0].cf;
  const response = cf.response;
  const marker = (cf.request.headers[HEADER] || [{ value: '' }])[0].value;
  if (marker.startsWith('new:')) {
    const group = marker.slice(4);
    (response.headers['set-cookie'] ||= []).push({
      key: 'Set-Cookie',
      value: `${COOKIE}=${group}; Path=/; Max-Age=2592000; SameSite=Lax`,
    });
  }
  return response;
};
