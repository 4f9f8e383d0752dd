//! Viewer-request: redirects and URL normalisation. The Zig twin of examples/functions/redirects.py.
//!
//! - Moved pages answer 301 with Location (a generated response, nothing else runs).
//! - Runs of slashes collapse (`//docs///x` -> `/docs/x`), with a 301 to the clean URL.
//! - A directory URI gets its index document (`/docs/` -> `/docs/index.html`) without a
//!   redirect, the classic fix for S3 origins behind CloudFront.
//! - Anything else continues unchanged (the host keeps the request as it was).

const std = @import("std");
const edge = @import("edge.zig");

const Redirect = struct { from: []const u8, to: []const u8 };

const redirects = [_]Redirect{
    .{ .from = "/old", .to = "/" },
    .{ .from = "/home", .to = "/" },
    .{ .from = "/documentation", .to = "/docs/" },
    .{ .from = "/blog", .to = "https://blog.example.com/" },
};

/// A generated 301. The query string is kept for local targets only.
fn redirect(target: []const u8, querystring: []const u8) u64 {
    const location = if (querystring.len > 0 and std.mem.indexOf(u8, target, "://") == null)
        edge.concat(&.{ target, "?", querystring })
    else
        target;
    var headers: edge.ObjectMap = .empty;
    edge.putHeader(&headers, "location", "Location", location);
    edge.putHeader(&headers, "cache-control", "Cache-Control", "max-age=3600");
    var response: edge.ObjectMap = .empty;
    edge.put(&response, "status", .{ .string = "301" });
    edge.put(&response, "statusDescription", .{ .string = "Moved Permanently" });
    edge.put(&response, "headers", .{ .object = headers });
    return edge.respondObject(&response);
}

/// The redirect target for `uri` with trailing slashes ignored ("/old/" is "/old"), or null.
fn redirectTarget(uri: []const u8) ?[]const u8 {
    var key = std.mem.trimEnd(u8, uri, "/");
    if (key.len == 0) key = "/";
    for (redirects) |r| if (std.mem.eql(u8, key, r.from)) return r.to;
    return null;
}

/// `uri` with every run of slashes reduced to one.
fn collapseSlashes(uri: []const u8) []const u8 {
    const out = edge.allocator().alloc(u8, uri.len) catch edge.fail("out of memory");
    var n: usize = 0;
    for (uri) |c| {
        if (c == '/' and n > 0 and out[n - 1] == '/') continue;
        out[n] = c;
        n += 1;
    }
    return out[0..n];
}

export fn viewer_request(event: [*]const u8, len: usize) u64 {
    const request = edge.getObject(edge.record(event, len), "request") orelse edge.fail("event has no request");
    const uri = edge.getString(request, "uri") orelse edge.fail("event has no request uri");
    const querystring = edge.getString(request, "querystring") orelse "";

    if (redirectTarget(uri)) |target| {
        if (!std.mem.eql(u8, target, uri)) return redirect(target, querystring);
    }
    const clean = collapseSlashes(uri);
    if (!std.mem.eql(u8, clean, uri)) return redirect(clean, querystring);
    if (std.mem.endsWith(u8, uri, "/")) {
        edge.put(request, "uri", .{ .string = edge.concat(&.{ uri, "index.html" }) });
        return edge.respondObject(request);
    }
    return edge.continue_unchanged;
}

/// The generic entry point (Invoke API): the same function, answering with the request itself
/// where the trigger entry point would say "continue unchanged".
export fn handler(event: [*]const u8, len: usize) u64 {
    const result = viewer_request(event, len);
    if (result != edge.continue_unchanged) return result;
    const request = edge.getObject(edge.record(event, len), "request") orelse edge.fail("event has no request");
    return edge.respondObject(request);
}
