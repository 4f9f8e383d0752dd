module.exports.handler = async () => ({ kind: 'cjs', require: typeof require });
