import cf from 'cloudfront';
const store = cf.kvs();
async function handler(event) {
  const request = event.request;
  const greeting = await store.get('greeting');
  const config = await store.get('config', { format: 'json' });
  request.headers['x-kvs-greeting'] = { value: greeting };
  request.headers['x-kvs-weight'] = { value: String(config.weight) };
  request.headers['x-kvs-missing'] = { value: String(await store.exists('nope')) };
  request.headers['x-kvs-count'] = { value: String((await store.meta()).keyCount) };
  return request;
}
