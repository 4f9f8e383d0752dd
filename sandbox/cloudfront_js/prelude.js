// The CloudFront Functions environment, evaluated once per QuickJS context before the user's
// code. It defines the modules (cloudfront, crypto, querystring), Buffer (2.0), console, a
// Date whose now() is frozen for each run, removes eval and the Function constructors, then
// freezes every reachable built-in so that no run can leave state for the next one.
// Evaluated as an expression: `setup(version)` defines the run entry points as globals
// (`__cf_run`, `__cf_settled`, `__cf_store`, `__cf_logs`) for the host to take and delete, and
// returns `lock()`, which freezes everything.
(function () {
  "use strict";
  var store = null;
  return function setup(runtimeVersion) {
    var v2 = runtimeVersion === "2.0";
    var now = 0;
    var logs = [];
    var state = null;

    // ---- bytes as "binary strings" (one char per byte) --------------------------------------
    var B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    function utf8Encode(s) { return unescape(encodeURIComponent(s)); }
    function utf8Decode(b) {
      try { return decodeURIComponent(escape(b)); } catch (e) { return b; }
    }
    function b64Encode(b, url) {
      var out = "", i = 0;
      for (; i + 2 < b.length; i += 3) {
        var n = (b.charCodeAt(i) << 16) | (b.charCodeAt(i + 1) << 8) | b.charCodeAt(i + 2);
        out += B64[n >> 18] + B64[(n >> 12) & 63] + B64[(n >> 6) & 63] + B64[n & 63];
      }
      if (i < b.length) {
        var m = b.charCodeAt(i) << 16, two = i + 1 < b.length;
        if (two) m |= b.charCodeAt(i + 1) << 8;
        out += B64[m >> 18] + B64[(m >> 12) & 63] + (two ? B64[(m >> 6) & 63] : "=") + "=";
      }
      if (url) out = out.replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
      return out;
    }
    function b64Decode(s) {
      s = String(s).replace(/-/g, "+").replace(/_/g, "/").replace(/[^A-Za-z0-9+/]/g, "");
      var out = "", bits = 0, acc = 0;
      for (var i = 0; i < s.length; i++) {
        acc = (acc << 6) | B64.indexOf(s[i]);
        bits += 6;
        if (bits >= 8) { bits -= 8; out += String.fromCharCode((acc >> bits) & 255); }
      }
      return out;
    }
    function hexDecode(s) {
      var out = "";
      for (var i = 0; i + 1 < s.length; i += 2) {
        var n = parseInt(s.substr(i, 2), 16);
        if (isNaN(n)) break;
        out += String.fromCharCode(n);
      }
      return out;
    }
    function hexEncode(b) {
      var out = "";
      for (var i = 0; i < b.length; i++) out += (b.charCodeAt(i) + 256).toString(16).slice(1);
      return out;
    }
    function bytesToBinary(u8) {
      var out = "";
      for (var i = 0; i < u8.length; i += 4096) {
        out += String.fromCharCode.apply(null, Array.prototype.slice.call(u8, i, i + 4096));
      }
      return out;
    }
    function toBinary(data, encoding) {
      if (data instanceof Uint8Array) return bytesToBinary(data);
      if (data instanceof ArrayBuffer) return bytesToBinary(new Uint8Array(data));
      data = String(data);
      switch (encoding) {
        case "hex": return hexDecode(data);
        case "base64": case "base64url": return b64Decode(data);
        case "latin1": case "binary": case "ascii": return data;
        default: return utf8Encode(data);
      }
    }
    function fromBinary(b, encoding) {
      switch (encoding) {
        case "hex": return hexEncode(b);
        case "base64": return b64Encode(b, false);
        case "base64url": return b64Encode(b, true);
        case "latin1": case "binary": case "ascii": return b;
        default: return utf8Decode(b);
      }
    }


    // ---- md5, sha1, sha256 over binary strings (a time-limited QuickJS cannot call the host) ---
    function words(b, bigEndian) {
      var n = b.length, total = ((n + 8) >> 6) + 1, w = new Array(total * 16).fill(0), i;
      for (i = 0; i < n; i++) w[i >> 2] |= b.charCodeAt(i) << (bigEndian ? 24 - (i % 4) * 8 : (i % 4) * 8);
      w[n >> 2] |= 0x80 << (bigEndian ? 24 - (n % 4) * 8 : (n % 4) * 8);
      if (bigEndian) { w[total * 16 - 1] = n * 8; w[total * 16 - 2] = Math.floor(n / 0x20000000); }
      else { w[total * 16 - 2] = n * 8; w[total * 16 - 1] = Math.floor(n / 0x20000000); }
      return w;
    }
    function wordsOut(h, bigEndian) {
      var out = "";
      for (var i = 0; i < h.length; i++) for (var j = 0; j < 4; j++)
        out += String.fromCharCode((h[i] >>> (bigEndian ? 24 - j * 8 : j * 8)) & 255);
      return out;
    }
    function rotl(x, n) { return (x << n) | (x >>> (32 - n)); }
    var K256 = [0x428a2f98,0x71374491,0xb5c0fbcf,0xe9b5dba5,0x3956c25b,0x59f111f1,0x923f82a4,0xab1c5ed5,0xd807aa98,0x12835b01,0x243185be,0x550c7dc3,0x72be5d74,0x80deb1fe,0x9bdc06a7,0xc19bf174,0xe49b69c1,0xefbe4786,0x0fc19dc6,0x240ca1cc,0x2de92c6f,0x4a7484aa,0x5cb0a9dc,0x76f988da,0x983e5152,0xa831c66d,0xb00327c8,0xbf597fc7,0xc6e00bf3,0xd5a79147,0x06ca6351,0x14292967,0x27b70a85,0x2e1b2138,0x4d2c6dfc,0x53380d13,0x650a7354,0x766a0abb,0x81c2c92e,0x92722c85,0xa2bfe8a1,0xa81a664b,0xc24b8b70,0xc76c51a3,0xd192e819,0xd6990624,0xf40e3585,0x106aa070,0x19a4c116,0x1e376c08,0x2748774c,0x34b0bcb5,0x391c0cb3,0x4ed8aa4a,0x5b9cca4f,0x682e6ff3,0x748f82ee,0x78a5636f,0x84c87814,0x8cc70208,0x90befffa,0xa4506ceb,0xbef9a3f7,0xc67178f2];
    function sha256(b) {
      var w = words(b, true), h = [0x6a09e667,0xbb67ae85,0x3c6ef372,0xa54ff53a,0x510e527f,0x9b05688c,0x1f83d9ab,0x5be0cd19];
      var m = new Array(64);
      for (var off = 0; off < w.length; off += 16) {
        var a = h[0], bb = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7], t;
        for (t = 0; t < 64; t++) {
          if (t < 16) m[t] = w[off + t] | 0;
          else {
            var x = m[t - 15], y = m[t - 2];
            m[t] = (((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3)) + m[t - 16] + (((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10)) + m[t - 7] | 0;
          }
          var t1 = hh + (((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7))) + ((e & f) ^ (~e & g)) + K256[t] + m[t] | 0;
          var t2 = (((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10))) + ((a & bb) ^ (a & c) ^ (bb & c)) | 0;
          hh = g; g = f; f = e; e = d + t1 | 0; d = c; c = bb; bb = a; a = t1 + t2 | 0;
        }
        h[0] = h[0] + a | 0; h[1] = h[1] + bb | 0; h[2] = h[2] + c | 0; h[3] = h[3] + d | 0;
        h[4] = h[4] + e | 0; h[5] = h[5] + f | 0; h[6] = h[6] + g | 0; h[7] = h[7] + hh | 0;
      }
      return wordsOut(h, true);
    }
    function sha1(b) {
      var w = words(b, true), h = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0];
      var m = new Array(80);
      for (var off = 0; off < w.length; off += 16) {
        var a = h[0], bb = h[1], c = h[2], d = h[3], e = h[4], t;
        for (t = 0; t < 80; t++) {
          m[t] = t < 16 ? w[off + t] | 0 : rotl(m[t - 3] ^ m[t - 8] ^ m[t - 14] ^ m[t - 16], 1);
          var f = t < 20 ? (bb & c) | (~bb & d) : t < 40 ? bb ^ c ^ d : t < 60 ? (bb & c) | (bb & d) | (c & d) : bb ^ c ^ d;
          var k = t < 20 ? 0x5a827999 : t < 40 ? 0x6ed9eba1 : t < 60 ? 0x8f1bbcdc : 0xca62c1d6;
          var tmp = rotl(a, 5) + f + e + k + m[t] | 0;
          e = d; d = c; c = rotl(bb, 30); bb = a; a = tmp;
        }
        h[0] = h[0] + a | 0; h[1] = h[1] + bb | 0; h[2] = h[2] + c | 0; h[3] = h[3] + d | 0; h[4] = h[4] + e | 0;
      }
      return wordsOut(h, true);
    }
    var S5 = [7, 12, 17, 22, 5, 9, 14, 20, 4, 11, 16, 23, 6, 10, 15, 21];
    var K5 = [];
    for (var ki = 0; ki < 64; ki++) K5[ki] = Math.floor(Math.abs(Math.sin(ki + 1)) * 4294967296) | 0;
    function md5(b) {
      var w = words(b, false), h = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476];
      for (var off = 0; off < w.length; off += 16) {
        var a = h[0], bb = h[1], c = h[2], d = h[3];
        for (var t = 0; t < 64; t++) {
          var f, g, r = t >> 4;
          if (r === 0) { f = (bb & c) | (~bb & d); g = t; }
          else if (r === 1) { f = (d & bb) | (~d & c); g = (5 * t + 1) & 15; }
          else if (r === 2) { f = bb ^ c ^ d; g = (3 * t + 5) & 15; }
          else { f = c ^ (bb | ~d); g = (7 * t) & 15; }
          var tmp = d; d = c; c = bb;
          bb = bb + rotl(a + f + K5[t] + (w[off + g] | 0) | 0, S5[r * 4 + (t & 3)]) | 0;
          a = tmp;
        }
        h[0] = h[0] + a | 0; h[1] = h[1] + bb | 0; h[2] = h[2] + c | 0; h[3] = h[3] + d | 0;
      }
      return wordsOut(h, false);
    }
    var HASHES = { md5: md5, sha1: sha1, sha256: sha256 };
    function hostDigest(algorithm, key, data, encoding) {
      var hash = HASHES[algorithm], out;
      if (key === null) out = hash(data);
      else {
        if (key.length > 64) key = hash(key);
        var ipad = "", opad = "";
        for (var i = 0; i < 64; i++) {
          var kc = i < key.length ? key.charCodeAt(i) : 0;
          ipad += String.fromCharCode(kc ^ 0x36); opad += String.fromCharCode(kc ^ 0x5c);
        }
        out = hash(opad + hash(ipad + data));
      }
      return encoding === "binary" ? out : fromBinary(out, encoding);
    }

    // ---- Buffer (runtime 2.0) ----------------------------------------------------------------
    class Buffer extends Uint8Array {
      static from(value, encodingOrOffset, length) {
        if (typeof value === "string") return Buffer._ofBinary(toBinary(value, encodingOrOffset));
        if (value instanceof ArrayBuffer) return new Buffer(value, encodingOrOffset || 0, length);
        var b = new Buffer(value.length);
        for (var i = 0; i < value.length; i++) b[i] = value[i];
        return b;
      }
      static _ofBinary(s) {
        var b = new Buffer(s.length);
        for (var i = 0; i < s.length; i++) b[i] = s.charCodeAt(i);
        return b;
      }
      static alloc(size, fill) { var b = new Buffer(size); if (fill) b.fill(typeof fill === "number" ? fill : String(fill).charCodeAt(0)); return b; }
      static isBuffer(b) { return b instanceof Buffer; }
      static byteLength(s, encoding) { return typeof s === "string" ? toBinary(s, encoding).length : s.length; }
      static concat(list, total) {
        var size = 0, i;
        for (i = 0; i < list.length; i++) size += list[i].length;
        var out = new Buffer(total === undefined ? size : total), at = 0;
        for (i = 0; i < list.length && at < out.length; i++) { out.set(list[i].subarray(0, out.length - at), at); at += list[i].length; }
        return out;
      }
      static compare(a, b) { return a.compare(b); }
      toString(encoding, start, end) { return fromBinary(bytesToBinary(this.subarray(start || 0, end === undefined ? this.length : end)), encoding); }
      toJSON() { return { type: "Buffer", data: Array.prototype.slice.call(this) }; }
      equals(other) { return this.compare(other) === 0; }
      compare(other) {
        var n = Math.min(this.length, other.length);
        for (var i = 0; i < n; i++) if (this[i] !== other[i]) return this[i] < other[i] ? -1 : 1;
        return this.length === other.length ? 0 : (this.length < other.length ? -1 : 1);
      }
      slice(start, end) { return this.subarray(start, end); }
      write(string, offset, encoding) { var b = toBinary(string, encoding); offset = offset || 0; for (var i = 0; i < b.length && offset + i < this.length; i++) this[offset + i] = b.charCodeAt(i); return i; }
    }

    // ---- crypto ------------------------------------------------------------------------------
    var ALGORITHMS = { md5: 1, sha1: 1, sha256: 1 };
    function Digester(algorithm, key) {
      if (!ALGORITHMS.hasOwnProperty(String(algorithm).toLowerCase())) {
        throw new Error("Digest method not supported: " + algorithm + " (md5, sha1, sha256)");
      }
      this._algorithm = String(algorithm).toLowerCase();
      this._key = key;
      this._parts = [];
      this._done = false;
    }
    Digester.prototype.update = function (data, encoding) {
      if (this._done) throw new Error("Digest already called");
      this._parts.push(toBinary(data, encoding));
      return this;
    };
    Digester.prototype.digest = function (encoding) {
      if (this._done) throw new Error("Digest already called");
      this._done = true;
      var known = encoding === "hex" || encoding === "base64" || encoding === "base64url";
      var out = hostDigest(this._algorithm, this._key, this._parts.join(""), known ? encoding : "binary");
      if (known) return out;
      if (encoding === undefined && v2) return Buffer._ofBinary(out);
      return out;
    };
    var crypto = {
      createHash: function (algorithm) { return new Digester(algorithm, null); },
      createHmac: function (algorithm, key) { return new Digester(algorithm, toBinary(key)); },
    };

    // ---- querystring -------------------------------------------------------------------------
    function qsUnescape(s) {
      s = String(s).replace(/\+/g, " ");
      try { return decodeURIComponent(s); } catch (e) { return s; }
    }
    function qsEscape(s) { return encodeURIComponent(String(s)); }
    var querystring = {
      parse: function (text, sep, eq, options) {
        sep = sep || "&"; eq = eq || "=";
        var decode = (options && options.decodeURIComponent) || qsUnescape;
        var max = (options && options.maxKeys) || 1000;
        var out = {};
        if (typeof text !== "string" || text.length === 0) return out;
        var parts = text.split(sep);
        if (max > 0 && parts.length > max) parts = parts.slice(0, max);
        for (var i = 0; i < parts.length; i++) {
          if (!parts[i]) continue;
          var at = parts[i].indexOf(eq);
          var k = decode(at >= 0 ? parts[i].slice(0, at) : parts[i]);
          var val = at >= 0 ? decode(parts[i].slice(at + eq.length)) : "";
          if (!Object.prototype.hasOwnProperty.call(out, k)) out[k] = val;
          else if (Array.isArray(out[k])) out[k].push(val);
          else out[k] = [out[k], val];
        }
        return out;
      },
      stringify: function (obj, sep, eq, options) {
        sep = sep || "&"; eq = eq || "=";
        var encode = (options && options.encodeURIComponent) || qsEscape;
        var out = [];
        Object.keys(obj || {}).forEach(function (k) {
          var value = obj[k];
          (Array.isArray(value) ? value : [value]).forEach(function (one) {
            out.push(encode(k) + eq + encode(one === undefined || one === null ? "" : one));
          });
        });
        return out.join(sep);
      },
      escape: qsEscape,
      unescape: qsUnescape,
    };
    querystring.decode = querystring.parse;
    querystring.encode = querystring.stringify;

    // ---- cloudfront (KeyValueStore) ----------------------------------------------------------
    function kvsHandle() {
      var current = store;  // one snapshot for the whole run
      function need() {
        if (current === null) throw new Error("KeyValueStore: no key value store is associated with this function");
        return current;
      }
      function get(key, options) {
        var data = need().data;
        key = String(key);
        if (!Object.prototype.hasOwnProperty.call(data, key)) throw new Error("KeyValueStore: key not found: " + key);
        var value = data[key];
        var format = (options && options.format) || "string";
        if (format === "json") return JSON.parse(value);
        if (format === "bytes") return Buffer.from(value, "utf8");
        if (format !== "string") throw new Error("KeyValueStore: unknown format " + format + " (string, json, bytes)");
        return value;
      }
      function settle(fn) {
        return function () {
          var args = arguments;
          return new Promise(function (resolve) { resolve(fn.apply(null, args)); });
        };
      }
      return {
        get: settle(get),
        exists: settle(function (key) { return Object.prototype.hasOwnProperty.call(need().data, String(key)); }),
        meta: settle(function () { var m = need().meta; return { creationDateTime: m.creationDateTime, lastUpdatedDateTime: m.lastUpdatedDateTime, keyCount: m.keyCount }; }),
      };
    }
    var cloudfront = { kvs: function () { return kvsHandle(); } };

    var modules = { cloudfront: cloudfront, crypto: crypto, querystring: querystring };
    function require(name) {
      if (name === "crypto" || name === "querystring") return modules[name];
      throw new Error("Cannot find module '" + name + "' (CloudFront Functions offer 'crypto' and 'querystring')");
    }

    // ---- console -----------------------------------------------------------------------------
    function show(x) {
      if (typeof x === "string") return x;
      try { var s = JSON.stringify(x); return s === undefined ? String(x) : s; } catch (e) { return String(x); }
    }
    function log() { logs.push(Array.prototype.map.call(arguments, show).join(" ")); }
    var consoleObject = { log: log, info: log, warn: log, error: log, debug: log };

    // ---- Date frozen for the run ---------------------------------------------------------------
    var RealDate = Date;
    function FrozenDate() {
      if (!new.target) return new RealDate(now).toString();
      if (arguments.length === 0) return new RealDate(now);
      return Reflect.construct(RealDate, Array.prototype.slice.call(arguments), new.target);
    }
    FrozenDate.prototype = RealDate.prototype;
    FrozenDate.now = function () { return now; };
    FrozenDate.UTC = RealDate.UTC;
    FrozenDate.parse = RealDate.parse;
    Object.defineProperty(RealDate.prototype, "constructor", { value: FrozenDate });
    globalThis.Date = FrozenDate;

    // ---- no dynamic code -------------------------------------------------------------------------
    function refuse() { throw new EvalError("Code generation from strings is not allowed in CloudFront Functions"); }
    var generatorProto = Object.getPrototypeOf(function* () {});
    var asyncProto = Object.getPrototypeOf(async function () {});
    var asyncGenProto = Object.getPrototypeOf(async function* () {});
    [Function.prototype, generatorProto, asyncProto, asyncGenProto].forEach(function (proto) {
      function NoConstructor() { refuse(); }
      NoConstructor.prototype = proto;
      Object.defineProperty(proto, "constructor", { value: NoConstructor });
      if (proto === Function.prototype) globalThis.Function = NoConstructor;
    });
    delete globalThis.eval;
    if (v2) globalThis.Buffer = Buffer;

    // ---- lock everything reachable -------------------------------------------------------------
    // The "override mistake": with a frozen prototype, `err.name = ...` or
    // `Foo.prototype.toString = ...` would fail. On the prototypes user code commonly shadows,
    // each data property becomes an accessor whose setter gives the object its own property.
    function tame(proto) {
      Reflect.ownKeys(proto).forEach(function (key) {
        var d = Object.getOwnPropertyDescriptor(proto, key);
        if (!("value" in d) || !d.configurable || key === "__proto__") return;
        var value = d.value;
        Object.defineProperty(proto, key, {
          get: function () { return value; },
          set: function (v) {
            if (this === proto) throw new TypeError("Cannot change the built-in " + String(key));
            Object.defineProperty(this, key, { value: v, writable: true, enumerable: true, configurable: true });
          },
          enumerable: d.enumerable,
          configurable: false,
        });
      });
    }
    [Object.prototype, Function.prototype, Error.prototype, TypeError.prototype, RangeError.prototype,
     SyntaxError.prototype, ReferenceError.prototype, EvalError.prototype, URIError.prototype].forEach(tame);
    var roots = [];
    var seen = new Set();
    function freeze(o) {
      if (o === null || (typeof o !== "object" && typeof o !== "function") || seen.has(o)) return;
      seen.add(o);
      Object.freeze(o);
      var keys = Reflect.ownKeys(o);
      for (var i = 0; i < keys.length; i++) {
        var d = Object.getOwnPropertyDescriptor(o, keys[i]);
        if (!d) continue;
        if ("value" in d) freeze(d.value); else { freeze(d.get); freeze(d.set); }
      }
      freeze(Object.getPrototypeOf(o));
    }
    roots = [
      globalThis, modules, consoleObject, require, Digester, generatorProto, asyncProto, asyncGenProto,
      Object.getPrototypeOf([][Symbol.iterator]()), Object.getPrototypeOf(new Map().entries()),
      Object.getPrototypeOf(new Set().values()), Object.getPrototypeOf(""[Symbol.iterator]()),
      Object.getPrototypeOf("x".matchAll(/x/g)), Object.getPrototypeOf(Int8Array),
      Object.getPrototypeOf(Object.getPrototypeOf((function* () {})())),
      RealDate, kvsHandle(),
    ];

    // ---- the run -------------------------------------------------------------------------------
    // The result's JSON; with "L" before it when the run logged (then {result, logs}).
    function finish(value) {
      value = value === undefined ? null : value;
      if (logs.length === 0) return JSON.stringify(value);
      var out = "L" + JSON.stringify({ result: value, logs: logs });
      logs = [];
      return out;
    }
    globalThis.__cf_run = function (factory, eventJson, nowMs) {
        now = nowMs;
        logs = [];
        state = null;
        var handler = factory(require, modules, consoleObject);
        if (typeof handler !== "function") throw new TypeError("handler is not a function");
        var result = handler(JSON.parse(eventJson));
        if (result !== null && typeof result === "object" && typeof result.then === "function") {
          state = { pending: true };
          result.then(
            function (value) { state = { value: value }; },
            function (error) { state = { error: error }; }
          );
          return null;
        }
        return finish(result);
    };
    globalThis.__cf_settled = function () {
        var s = state;
        state = null;
        if (s === null || s.pending) throw new Error("the handler's promise never settled (no timers or I/O exist to settle it)");
        if ("error" in s) throw s.error;
        return finish(s.value);
    };
    // A new store replaces the old one whole: a run holds the snapshot it started with.
    globalThis.__cf_store = function (json) {
      var next = JSON.parse(json);
      Object.freeze(next.data); Object.freeze(next.meta);
      store = Object.freeze(next);
    };
    globalThis.__cf_logs = function () { var out = logs; logs = []; return JSON.stringify(out); };
    return function lock() { roots.forEach(freeze); };
  };
})()
