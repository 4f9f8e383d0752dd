const missing = require('left-pad-that-is-not-installed');
exports.handler = async () => missing('x');
