function handler(event) { return eval('event.request'); }
