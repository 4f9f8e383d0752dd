// Logs in every way, for tests/test_json_logs.py.
exports.handler = async (event) => {
  console.debug('debug detail');
  console.log('paid', event.order);
  console.warn({ slow: true, elapsedMs: 1200 });
  console.error(new TypeError('bad coupon'));
  if (event.fail) throw new RangeError('missing');
  return { ok: true };
};
