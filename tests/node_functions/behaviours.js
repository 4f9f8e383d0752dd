// Node.js test functions: each export is one behaviour the runtime must give a handler.
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');

let invocations = 0;
const environmentId = require('crypto').randomUUID();
const initialisedAt = Date.now();
console.log('init', 'done');

function generated(document, status = '200') {
  return {
    status,
    headers: { 'content-type': [{ key: 'Content-Type', value: 'application/json' }] },
    body: JSON.stringify(document),
  };
}

// Module state persists between the invocations of one environment; the context is Lambda's.
exports.state = async (event, context) => {
  invocations += 1;
  console.log('invocation', invocations);
  console.info('info line');
  console.warn('warn line');
  console.error('error line');
  return generated({
    invocations,
    initialisedAt,
    requestId: context.awsRequestId,
    functionName: context.functionName,
    functionVersion: context.functionVersion,
    memoryLimitInMB: context.memoryLimitInMB,
    invokedFunctionArn: context.invokedFunctionArn,
    logGroupName: context.logGroupName,
    logStreamName: context.logStreamName,
    remaining: context.getRemainingTimeInMillis(),
    waits: context.callbackWaitsForEmptyEventLoop,
    uri: event.Records ? event.Records[0].cf.request.uri : null,
  });
};

exports.environment = async () => {
  const tmp = os.tmpdir();
  const mine = path.join(tmp, 'mine.txt');
  const before = fs.existsSync(mine);
  fs.writeFileSync(mine, environmentId);
  return {
    tmp,
    before,
    environmentId,
    greeting: process.env.GREETING,
    handler: process.env._HANDLER,
    executionEnv: process.env.AWS_EXECUTION_ENV,
    initialisationType: process.env.AWS_LAMBDA_INITIALIZATION_TYPE,
    taskRoot: process.env.LAMBDA_TASK_ROOT,
    cwd: process.cwd(),
    edgeVariables: Object.keys(process.env).filter((k) => k.startsWith('EDGE_')),
  };
};

exports.throws = async () => {
  throw new TypeError('no such thing');
};

exports.spin = () => {
  console.log('spinning');
  for (;;);
};

exports.memory = async () => {
  const kept = [];
  for (;;) kept.push(Buffer.alloc(8 * 1024 * 1024, 1));
};

exports.heap = async () => {
  const kept = [];
  for (;;) kept.push(new Array(100000).fill(Math.random()));
};

exports.large = async () => 'x'.repeat(7 * 1024 * 1024);

exports.invalid = async () => ({ status: 'not a status' });

exports.flood = async () => {
  const line = 'y'.repeat(1023);
  for (let i = 0; i < 3000; i += 1) console.log(line);
  process.stdout.write('raw tail\n');
  return 'flooded';
};

// Handler styles: a returned promise, callbacks, the legacy context methods.
exports.promise = (event) => new Promise((resolve) => setTimeout(() => resolve({ style: 'promise', event }), 5));

exports.callback = (event, context, callback) => {
  setTimeout(() => console.log('timer ran before the answer'), 30);
  callback(null, { style: 'callback' });
};

exports.callbackNoWait = (event, context, callback) => {
  context.callbackWaitsForEmptyEventLoop = false;
  setTimeout(() => console.log('timer after the answer'), 200);
  callback(null, { style: 'no-wait' });
};

exports.callbackError = (event, context, callback) => callback(new RangeError('out of range'));

exports.callbackString = (event, context, callback) => callback('plain failure');

exports.succeed = (event, context) => context.succeed({ style: 'succeed' });

exports.nothing = () => {
  // returns nothing and never calls back: Lambda answers null once the event loop is empty
};

exports.uncaught = (event, context, callback) => {
  setTimeout(() => {
    throw new Error('thrown from a timer');
  }, 1);
};

exports.nested = { deeper: { handler: async () => 'nested' } };
