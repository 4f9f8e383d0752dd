var crypto = require('crypto');
function handler(event) {
  var response = event.response;
  response.headers['x-cf-viewer-response'] = { value: 'ran' };
  response.headers['x-cf-md5'] = { value: crypto.createHash('md5').update('edge').digest('hex') };
  response.statusCode = 203;
  response.statusDescription = 'Non-Authoritative';
  return response;
}
