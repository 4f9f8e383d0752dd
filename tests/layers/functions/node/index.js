// A Node.js function that uses its layers (tests/test_layers.py).
const { execFileSync } = require('child_process');
const greet = require('greet');

exports.handler = async (event) => ({
  greeting: greet.greet('node'),
  where: greet.where,
  NODE_PATH: process.env.NODE_PATH,
  PATH: process.env.PATH,
  LD_LIBRARY_PATH: process.env.LD_LIBRARY_PATH,
  tool: execFileSync('layer-tool', ['y']).toString().trim(),
});
