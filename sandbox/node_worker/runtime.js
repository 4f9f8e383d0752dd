'use strict';
// Inside a Node.js execution environment: the Lambda Node.js runtime loop of one process.
//
// What Lambda's Node.js runtime interface client does, over a framed socket instead of the
// Runtime API. The host starts this script ahead of need; it waits for a CONFIGURE frame (the
// environment's variables, its handler and limits), runs Init (loads the handler's module,
// CommonJS or ES module as Lambda resolves it), reports it in an INIT frame, then serves INVOKE
// frames one at a time until the host closes the socket.
//
// Frames: a 13-byte header (kind u8, meta length u32, log length u32, blob length u32, big
// endian), then the meta JSON, the log bytes and the blob (the event, a result or an error
// document): sandbox/runtime/framing.py is the other side.
//
// Output: fds 1 and 2 are one memory file opened for appending. console.* writes Lambda's Node
// log lines to it (`<ISO time>\t<request id>\t<LEVEL>\t<message>`), process.stdout/stderr write
// through the same bounded writer, and after each invocation its tail is sent with the answer
// and the file emptied; the host reads the same file after a timeout or a crash.

const fs = require('fs');
const net = require('net');
const path = require('path');
const util = require('util');
const { performance } = require('perf_hooks');
const { pathToFileURL } = require('url');

const KIND_INVOKE = 1;
const KIND_INIT = 2;
const KIND_RESULT = 3;
const KIND_ERROR = 4;
const KIND_CONFIGURE = 5;
const HEADER_BYTES = 13;
const OUT = 1;
const EMPTY = Buffer.alloc(0);

// -- bounded output ------------------------------------------------------------------------

let keepBytes = 1024 * 1024;
let checkEveryBytes = 64 * 1024;
let unchecked = 0;
let dropped = 0;
let markerBytes = 0;

function droppedMarker(count) {
  return `[... ${count} bytes of output dropped ...]\n`;
}

function writeAll(fd, buffer) {
  let offset = 0;
  while (offset < buffer.length) {
    offset += fs.writeSync(fd, buffer, offset, buffer.length - offset);
  }
}

// The file never grows much past twice the log limit: past it, it is rewritten as a marker
// line and the last `keepBytes` written (the tail explains a failure; the head does not).
function writeOutput(data) {
  const buffer = typeof data === 'string' ? Buffer.from(data, 'utf8') : Buffer.from(data);
  unchecked += buffer.length;
  if (buffer.length > keepBytes || unchecked >= checkEveryBytes) {
    unchecked = 0;
    const end = fs.fstatSync(OUT).size;
    if (buffer.length > keepBytes || end + buffer.length > 2 * keepBytes) {
      compact(end, buffer);
      return;
    }
  }
  writeAll(OUT, buffer);
}

function compact(end, incoming) {
  let oldTail = EMPTY;
  if (incoming.length >= keepBytes) {
    dropped += end - markerBytes + incoming.length - keepBytes;
    incoming = incoming.subarray(incoming.length - keepBytes);
  } else {
    const wanted = Math.min(end - markerBytes, keepBytes - incoming.length);
    oldTail = Buffer.alloc(wanted);
    fs.readSync(OUT, oldTail, 0, wanted, end - wanted);
    dropped += end - markerBytes - wanted;
  }
  const marker = Buffer.from(droppedMarker(dropped));
  fs.ftruncateSync(OUT, 0);
  writeAll(OUT, Buffer.concat([marker, oldTail, incoming]));
  markerBytes = marker.length;
}

// The output since the last drain: its last `maxBytes`, after a marker when more was written.
function drainOutput(maxBytes) {
  const end = fs.fstatSync(OUT).size;
  const written = end - markerBytes;
  const taken = Math.min(written, maxBytes);
  const droppedNow = dropped + written - taken;
  let data = EMPTY;
  if (taken > 0) {
    data = Buffer.alloc(taken);
    fs.readSync(OUT, data, 0, taken, end - taken);
  }
  if (end) fs.ftruncateSync(OUT, 0);
  dropped = markerBytes = unchecked = 0;
  return droppedNow > 0 ? Buffer.concat([Buffer.from(droppedMarker(droppedNow)), data]) : data;
}

// -- Lambda's console ------------------------------------------------------------------------

// Lambda's Node runtime prints `undefined` as the request id of what Init logs.
let currentRequestId = undefined;

// Lambda's JSON log format (AWS_LAMBDA_LOG_FORMAT=JSON, read at configure) and its level filter
// (AWS_LAMBDA_LOG_LEVEL, which applies to the JSON format only, as on Lambda).
const LEVEL_ORDER = { TRACE: 0, DEBUG: 1, INFO: 2, WARN: 3, ERROR: 4, FATAL: 5 };
let jsonLogs = false;
let minimumLevel = 0;

function logLine(level, message) {
  writeOutput(`${new Date().toISOString()}\t${currentRequestId}\t${level}\t${message}\n`);
}

function jsonLine(level, args) {
  const record = { timestamp: new Date().toISOString(), level, requestId: currentRequestId };
  if (args.length === 1 && !(args[0] instanceof Error)) {
    record.message = args[0];
    try {
      return writeOutput(JSON.stringify(record) + '\n');
    } catch (_) {
      // a value JSON cannot hold (a cycle, a BigInt): as text
    }
  }
  record.message = util.format(...args);
  const error = args.find((arg) => arg instanceof Error);
  if (error !== undefined) {
    record.errorType = error.constructor?.name ?? 'UnknownError';
    record.errorMessage = error.message;
    record.stackTrace = typeof error.stack === 'string' ? error.stack.split('\n') : [];
  }
  writeOutput(JSON.stringify(record) + '\n');
}

function emit(level, args) {
  if (!jsonLogs) return logLine(level, util.format(...args));
  if (LEVEL_ORDER[level] >= minimumLevel) jsonLine(level, args);
}

function configureLogging() {
  jsonLogs = (process.env.AWS_LAMBDA_LOG_FORMAT || '').toUpperCase() === 'JSON';
  const wanted = (process.env.AWS_LAMBDA_LOG_LEVEL || '').toUpperCase();
  minimumLevel = wanted in LEVEL_ORDER ? LEVEL_ORDER[wanted] : 0;
}

function patchConsole() {
  const levels = { log: 'INFO', info: 'INFO', warn: 'WARN', error: 'ERROR', debug: 'DEBUG', fatal: 'FATAL' };
  for (const [method, level] of Object.entries(levels)) {
    console[method] = (...args) => emit(level, args);
  }
  console.trace = (...args) => {
    const trace = { name: 'Trace', message: util.format(...args) };
    Error.captureStackTrace(trace, console.trace);
    if (jsonLogs) emit('TRACE', [trace.stack]);
    else logLine('TRACE', trace.stack);
  };
  for (const stream of [process.stdout, process.stderr]) {
    stream.write = (chunk, encoding, done) => {
      writeOutput(typeof chunk === 'string' ? Buffer.from(chunk, typeof encoding === 'string' ? encoding : 'utf8') : chunk);
      const callback = typeof encoding === 'function' ? encoding : done;
      if (typeof callback === 'function') process.nextTick(callback);
      return true;
    };
  }
}

// -- frames ------------------------------------------------------------------------------------

const ipc = new net.Socket({ fd: Number(process.argv[2]), readable: true, writable: true });
// Chunks of the frame being received: joined once it is whole (a 6 MB event comes in ~100).
let chunks = [];
let buffered = 0;
let needed = HEADER_BYTES;

function sendFrame(kind, meta, blob, log) {
  const metaBytes = Buffer.from(JSON.stringify(meta));
  const header = Buffer.allocUnsafe(HEADER_BYTES);
  header.writeUInt8(kind, 0);
  header.writeUInt32BE(metaBytes.length, 1);
  header.writeUInt32BE(log.length, 5);
  header.writeUInt32BE(blob.length, 9);
  ipc.write(Buffer.concat([header, metaBytes, log, blob]));
}

ipc.on('data', (chunk) => {
  chunks.push(chunk);
  buffered += chunk.length;
  if (buffered < needed) return;
  let pending = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, buffered);
  chunks = [];
  buffered = 0;
  needed = HEADER_BYTES;
  while (pending.length >= HEADER_BYTES) {
    const kind = pending.readUInt8(0);
    const metaLength = pending.readUInt32BE(1);
    const logLength = pending.readUInt32BE(5);
    const blobLength = pending.readUInt32BE(9);
    const total = HEADER_BYTES + metaLength + logLength + blobLength;
    if (pending.length < total) {
      needed = total;
      break;
    }
    const meta = pending.subarray(HEADER_BYTES, HEADER_BYTES + metaLength);
    const blob = pending.subarray(HEADER_BYTES + metaLength + logLength, total);
    pending = pending.subarray(total);
    if (kind === KIND_CONFIGURE) {
      configure(JSON.parse(meta.toString('utf8')));
    } else if (kind === KIND_INVOKE && handler !== null && active === null) {
      invoke(JSON.parse(meta.toString('utf8')), blob);
    } else {
      process.exit(1); // the host never sends anything else: nothing to answer
    }
  }
  if (pending.length) {
    chunks.push(pending);
    buffered = pending.length;
  }
});
ipc.on('error', () => process.exit(0));
ipc.on('close', () => process.exit(0));

// -- errors as Lambda's Node runtime writes them -------------------------------------------------

let maxResultBytes = 6 * 1024 * 1024;
let maxLogBytes = 1024 * 1024;

// A stack's lines up to the runtime's own frames (what called the handler is no user's code).
function userStack(stack) {
  if (typeof stack !== 'string') return [];
  const lines = stack.split('\n');
  const cut = lines.findIndex((line) => line.includes(__filename));
  return cut < 0 ? lines : lines.slice(0, cut);
}

function errorDocument(error) {
  if (error instanceof Error || (error && typeof error === 'object' && 'message' in error)) {
    const stack = userStack(error.stack);
    let type = error.name;
    if (typeof type !== 'string' || !type) type = error.constructor ? error.constructor.name : 'Error';
    return { errorType: type, errorMessage: String(error.message), trace: stack };
  }
  // `callback('boom')`, `throw 42`: Lambda names the JavaScript type.
  return { errorType: typeof error, errorMessage: String(error), trace: [] };
}

function runtimeError(type, message, cause) {
  const stack = cause ? userStack(cause.stack) : [];
  if (stack.length) stack[0] = `${type}: ${message}`;
  return { errorType: type, errorMessage: message, trace: stack };
}

// An error document within the result limit: its message keeps its head, its trace its top.
function boundedError(document) {
  let blob = Buffer.from(JSON.stringify(document));
  if (blob.length <= maxResultBytes) return [document, blob];
  const budget = Math.max(16, Math.floor(maxResultBytes / 8 / 6));
  const clip = (text) =>
    text.length <= budget ? text : `${text.slice(0, budget)} [... ${text.length - budget} characters dropped ...]`;
  const trace = [];
  let used = 0;
  for (const line of document.trace || []) {
    if (used >= budget) break;
    trace.push(clip(line));
    used += Math.min(line.length, budget);
  }
  const clipped = { errorType: clip(String(document.errorType)).slice(0, 256), errorMessage: clip(document.errorMessage), trace };
  blob = Buffer.from(JSON.stringify(clipped));
  if (blob.length <= maxResultBytes) return [clipped, blob];
  const minimal = { errorType: clipped.errorType.slice(0, 32), errorMessage: '' };
  return [minimal, Buffer.from(JSON.stringify(minimal))];
}

function logError(label, document) {
  if (jsonLogs) {
    const record = { timestamp: new Date().toISOString(), level: 'ERROR', requestId: currentRequestId, message: label };
    Object.assign(record, { errorType: document.errorType, errorMessage: document.errorMessage, stackTrace: document.trace });
    return writeOutput(JSON.stringify(record) + '\n');
  }
  const logged = { errorType: document.errorType, errorMessage: document.errorMessage, stack: document.trace };
  logLine('ERROR', `${label} \t${JSON.stringify(logged)}`);
}

function memoryUsedMb() {
  return Math.floor(process.resourceUsage().maxRSS / 1024);
}

// -- Init -------------------------------------------------------------------------------------

let handler = null;

function nearestPackageType(directory) {
  for (let current = directory; ; current = path.dirname(current)) {
    try {
      const document = JSON.parse(fs.readFileSync(path.join(current, 'package.json'), 'utf8'));
      return document && document.type === 'module' ? 'module' : 'commonjs';
    } catch (error) {
      if (error.code !== 'ENOENT' && error.code !== 'ENOTDIR' && error.code !== 'EACCES') throw error;
    }
    if (path.dirname(current) === current) return 'commonjs';
  }
}

class Fault extends Error {
  constructor(type, message, cause) {
    super(message);
    this.document = runtimeError(type, message, cause);
  }
}

function isNotFound(error) {
  return error && (error.code === 'MODULE_NOT_FOUND' || error.code === 'ERR_MODULE_NOT_FOUND');
}

async function loadModule(taskRoot, moduleRoot, moduleName) {
  const base = path.resolve(taskRoot, moduleRoot, moduleName);
  let file = null;
  for (const extension of ['.js', '.mjs', '.cjs']) {
    if (fs.existsSync(base + extension)) {
      file = base + extension;
      break;
    }
  }
  if (file === null) {
    // As Lambda: a name that is no file of the task root may be a package in node_modules.
    try {
      file = require.resolve(moduleName, { paths: [path.resolve(taskRoot, moduleRoot)] });
    } catch (error) {
      throw new Fault('Runtime.ImportModuleError', `Error: Cannot find module '${moduleName}'`, error);
    }
  }
  try {
    const esm = file.endsWith('.mjs') || (file.endsWith('.js') && nearestPackageType(path.dirname(file)) === 'module');
    return esm ? await import(pathToFileURL(file).href) : require(file);
  } catch (error) {
    if (error instanceof SyntaxError) {
      throw new Fault('Runtime.UserCodeSyntaxError', `${error.name}: ${error.message}`, error);
    }
    if (isNotFound(error)) {
      throw new Fault('Runtime.ImportModuleError', `Error: ${error.message}`, error);
    }
    throw error;
  }
}

async function loadHandler(taskRoot, fullHandler) {
  const slash = fullHandler.lastIndexOf('/');
  const moduleRoot = slash >= 0 ? fullHandler.slice(0, slash) : '';
  const moduleAndHandler = fullHandler.slice(slash + 1);
  const dot = moduleAndHandler.indexOf('.');
  if (dot <= 0 || dot === moduleAndHandler.length - 1) {
    throw new Fault('Runtime.MalformedHandlerName', 'Bad handler');
  }
  const moduleName = moduleAndHandler.slice(0, dot);
  const found = await loadModule(taskRoot, moduleRoot, moduleName);
  let value = found;
  for (const key of moduleAndHandler.slice(dot + 1).split('.')) {
    value = value === null || value === undefined ? undefined : value[key];
  }
  if (typeof value !== 'function') {
    throw new Fault('Runtime.HandlerNotFound', `${fullHandler} is undefined or not exported`);
  }
  return value;
}

async function configure(config) {
  Object.assign(process.env, config.env);
  configureLogging();
  maxResultBytes = config.max_result_bytes;
  maxLogBytes = keepBytes = config.max_log_bytes;
  checkEveryBytes = Math.min(64 * 1024, keepBytes);
  environmentFacts = {
    functionName: process.env.AWS_LAMBDA_FUNCTION_NAME,
    functionVersion: process.env.AWS_LAMBDA_FUNCTION_VERSION,
    memoryLimitInMB: process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
    logGroupName: process.env.AWS_LAMBDA_LOG_GROUP_NAME,
    logStreamName: process.env.AWS_LAMBDA_LOG_STREAM_NAME,
  };
  const started = performance.now();
  let initError = null;
  try {
    process.chdir(config.code_dir);
    handler = await loadHandler(config.code_dir, config.handler);
  } catch (error) {
    initError = error instanceof Fault ? error.document : errorDocument(error);
  }
  const initMs = performance.now() - started;
  let blob = EMPTY;
  if (initError !== null) {
    [initError, blob] = boundedError(initError);
    logError('Uncaught Exception', initError);
  }
  sendFrame(KIND_INIT, { i: initMs, s: performance.now(), m: memoryUsedMb() }, blob, drainOutput(maxLogBytes));
  if (initError !== null) ipc.end(() => process.exit(1)); // as Lambda: report, then exit
}

// -- invocations -------------------------------------------------------------------------------

let environmentFacts = {};
// The invocation in progress: { id, started, done, waiting } (null between invocations).
let active = null;

function makeContext(meta, invocation, callback) {
  const deadline = meta.dl;
  return {
    callbackWaitsForEmptyEventLoop: true,
    ...environmentFacts,
    invokedFunctionArn: meta.arn,
    awsRequestId: meta.id,
    identity: meta.ci,
    clientContext: meta.cc,
    getRemainingTimeInMillis: () => Math.max(deadline - Date.now(), 0),
    // The legacy context methods answer at once, whatever the event loop holds.
    done: (error, result) => complete(invocation, error, result),
    succeed: (result) => complete(invocation, null, result),
    fail: (error) => complete(invocation, error === undefined || error === null ? 'handled' : error, undefined),
  };
}

function invoke(meta, eventBytes) {
  const invocation = { started: performance.now(), done: false, waiting: null };
  active = invocation;
  currentRequestId = meta.id;
  // Per invocation, as Lambda's runtime client sets it (and removes it when there is none).
  if (meta.tr !== undefined) process.env._X_AMZN_TRACE_ID = meta.tr;
  else delete process.env._X_AMZN_TRACE_ID;
  let event;
  try {
    event = JSON.parse(eventBytes.toString('utf8'));
  } catch (error) {
    complete(invocation, new Fault('Runtime.UnmarshalError', `Unable to unmarshal input: ${error.message}`), undefined);
    return;
  }
  let context = null;
  const callback = (error, result) => {
    if (invocation.done || invocation.waiting !== null) return;
    if (context.callbackWaitsForEmptyEventLoop) {
      // As Lambda: the answer goes once nothing is left to run (the socket does not count).
      invocation.waiting = { error, result };
      ipc.unref();
    } else {
      complete(invocation, error, result);
    }
  };
  context = makeContext(meta, invocation, callback);
  let returned;
  try {
    returned = handler(event, context, callback);
  } catch (error) {
    complete(invocation, error === undefined || error === null ? new Error(String(error)) : error, undefined);
    return;
  }
  if (returned !== null && typeof returned === 'object' && typeof returned.then === 'function') {
    returned.then(
      (result) => complete(invocation, null, result),
      (error) => complete(invocation, error === undefined || error === null ? new Error(String(error)) : error, undefined),
    );
  } else if (!invocation.done && invocation.waiting === null) {
    ipc.unref(); // a callback handler: it answers by callback, or by leaving nothing to run
  }
}

process.on('beforeExit', () => {
  const invocation = active;
  if (invocation === null || invocation.done) return;
  const waiting = invocation.waiting || { error: null, result: null };
  complete(invocation, waiting.error, waiting.result);
});

function complete(invocation, error, result) {
  if (invocation.done) return;
  invocation.done = true;
  active = null;
  ipc.ref();
  let kind = KIND_RESULT;
  let blob;
  let failure = null;
  if (error !== null && error !== undefined) {
    failure = error instanceof Fault ? error.document : errorDocument(error);
  } else {
    let text;
    try {
      text = JSON.stringify(result === undefined ? null : result);
    } catch (marshal) {
      failure = runtimeError('Runtime.MarshalError', `Unable to stringify response body: ${marshal.message}`, marshal);
    }
    if (failure === null) {
      blob = Buffer.from(text === undefined ? 'null' : text, 'utf8');
      if (blob.length > maxResultBytes) {
        failure = runtimeError(
          'Function.ResponseSizeTooLarge',
          `Response payload size (${blob.length} bytes) exceeded maximum allowed payload size (${maxResultBytes} bytes).`,
        );
      }
    }
  }
  const meta = { d: 0, m: memoryUsedMb() };
  if (failure !== null) {
    kind = KIND_ERROR;
    [failure, blob] = boundedError(failure);
    if (isOutOfMemory(error)) {
      meta.k = 'memory'; // the host replaces the environment: its memory is spent
    } else {
      logError('Invoke Error', failure);
    }
  }
  meta.d = performance.now() - invocation.started;
  currentRequestId = undefined;
  sendFrame(kind, meta, blob, drainOutput(maxLogBytes));
}

// What V8 throws when the memory limit (RLIMIT_DATA) refuses a buffer: the function ran out
// of memory, as Lambda would have stopped it (its V8 heap running out ends the process instead).
function isOutOfMemory(error) {
  return error instanceof RangeError && /^Array buffer allocation failed$/.test(error.message);
}

function die(label, error) {
  // As Lambda: an error nothing caught ends the runtime, failing the invocation in progress.
  const document = errorDocument(error);
  logError(label, document);
  const invocation = active;
  if (invocation !== null && !invocation.done) {
    invocation.done = true;
    active = null;
    ipc.ref();
    const blob = boundedError(document)[1];
    const meta = { d: performance.now() - invocation.started, m: memoryUsedMb() };
    sendFrame(KIND_ERROR, meta, blob, drainOutput(maxLogBytes));
  }
  ipc.end(() => process.exit(129));
  setTimeout(() => process.exit(129), 1000).unref();
}

process.on('uncaughtException', (error) => die('Uncaught Exception', error));
process.on('unhandledRejection', (reason) => {
  const error = reason instanceof Error ? reason : new Error(String(reason));
  if (!(reason instanceof Error)) error.name = 'Runtime.UnhandledPromiseRejection';
  die('Unhandled Promise Rejection', error);
});

patchConsole();
