exports.other = async () => 'not the handler';
