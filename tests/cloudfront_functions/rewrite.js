import crypto from 'crypto';
import querystring from 'querystring';

var runs = 0; // top-level state: fresh in every run

async function handler(event) {
  runs += 1;
  var request = event.request;
  request.uri = request.uri.replace('/cf/', '/rewritten/');
  request.headers['x-cf-runs'] = { value: String(runs) };
  request.headers['x-cf-sha256'] = { value: crypto.createHash('sha256').update('edge').digest('hex') };
  request.headers['x-cf-qs'] = { value: querystring.stringify({ a: 'b c' }) };
  request.headers['x-cf-buffer'] = { value: Buffer.from('edge').toString('base64') };
  request.headers['x-cf-ip'] = { value: event.viewer.ip };
  request.headers['x-cf-setTimeout'] = { value: typeof setTimeout };
  try { Object.prototype.polluted = 1; } catch (e) {}
  request.headers['x-cf-polluted'] = { value: String(({}).polluted) };
  request.headers['x-cf-date'] = { value: String(Date.now() === new Date().getTime()) };
  var error = new Error('x');
  error.name = 'Custom'; // shadowing a frozen built-in's property still works
  request.headers['x-cf-error'] = { value: String(error) };
  return request;
}
