// Origin-request: send a viewer to the beta origin by header or cookie.
//
// `X-Origin: beta` or a cookie `origin=beta` switches the request to the beta bucket; everyone
// else stays on the origin the behavior names. The Host header follows the origin, as AWS's
// own examples do.
'use strict';

const BETA_BUCKET = 'beta-site.s3.us-east-1.amazonaws.com';

function wantsBeta(headers) {
  if ((headers['x-origin'] || []).some((entry) => entry.value.trim().toLowerCase() === 'beta')) {
    return true;
  }
  return (headers.cookie || []).some((entry) =>
    entry.value.split(';').some((part) => part.trim() === 'origin=beta'),
  );
}

exports.handler = async (event) => {
  const request = event.Records[0].cf.request;
  if (wantsBeta(request.headers)) {
    request.origin = {
      s3: {
        authMethod: 'none',
        customHeaders: {},
        domainName: BETA_BUCKET,
        path: '',
        region: 'us-east-1',
      },
    };
    request.headers.host = [{ key: 'Host', value: BETA_BUCKET }];
  }
  return request;
};
