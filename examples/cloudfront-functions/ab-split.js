// viewer-request: an A/B split of /experiment/ by the weight in the KeyValueStore
// (`ab-weight-b`: the percentage that gets variant b). A viewer that sends a `variant` cookie
// (set by the page, or by a viewer-response function) keeps its variant; others are drawn.
import cf from 'cloudfront';

const kvs = cf.kvs();

async function handler(event) {
  const request = event.request;
  if (!/^\/experiment\/?$/.test(request.uri)) return request;
  let variant = request.cookies.variant ? request.cookies.variant.value : '';
  if (variant !== 'a' && variant !== 'b') {
    let weight = 50;
    try {
      weight = Number(await kvs.get('ab-weight-b'));
    } catch (e) {
      // no weight in the store: an even split
    }
    variant = Math.random() * 100 < weight ? 'b' : 'a';
    request.cookies.variant = { value: variant };
  }
  request.uri = '/experiment/' + variant + '/index.html';
  return request;
}
