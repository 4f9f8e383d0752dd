// Shows the trace it ran under (`_X_AMZN_TRACE_ID`), for tests/test_traces.py.
exports.handler = async (event) => {
  const request = event.Records[0].cf.request;
  const seen = process.env._X_AMZN_TRACE_ID || '';
  request.headers['x-function-trace'] = [{ key: 'X-Function-Trace', value: seen }];
  return request;
};
