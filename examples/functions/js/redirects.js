// Viewer-request: redirects and URL normalisation.
//
// - Moved pages answer 301 with Location (a generated response, nothing else runs).
// - Runs of slashes collapse (`//docs///x` -> `/docs/x`), with a 301 to the clean URL.
// - A directory URI gets its index document (`/docs/` -> `/docs/index.html`) without a
//   redirect, the classic fix for S3 origins behind CloudFront.
//
// Written in the callback style of older Lambda@Edge code: `callback(null, result)`.
'use strict';

const REDIRECTS = {
  '/old': '/',
  '/home': '/',
  '/documentation': '/docs/',
  '/blog': 'https://blog.example.com/',
};

function redirect(location, querystring) {
  if (querystring && !location.includes('://')) location = `${location}?${querystring}`;
  return {
    status: '301',
    statusDescription: 'Moved Permanently',
    headers: {
      location: [{ key: 'Location', value: location }],
      'cache-control': [{ key: 'Cache-Control', value: 'max-age=3600' }],
    },
  };
}

exports.handler = (event, context, callback) => {
  const request = event.Records[0].cf.request;
  const uri = request.uri;
  const target = REDIRECTS[uri.replace(/\/+$/, '') || '/'];
  if (target !== undefined && target !== uri) {
    callback(null, redirect(target, request.querystring));
    return;
  }
  const clean = uri.replace(/\/{2,}/g, '/');
  if (clean !== uri) {
    callback(null, redirect(clean, request.querystring));
    return;
  }
  if (uri.endsWith('/')) request.uri = `${uri}index.html`;
  callback(null, request);
};
