//! A/B testing with a sticky cookie. The Zig twin of examples/functions/ab_testing.py.
//!
//! viewer_request: a viewer in a group (cookie `ab-group=a|b`) keeps it; a new viewer is put in
//! one. The page `/experiment/` is then served from `/experiment/a/` or `/experiment/b/`. The
//! choice travels to viewer_response in the request header `x-ab-group` (`new:<g>` or `<g>`).
//!
//! viewer_response: a viewer who came without the cookie gets it, so the next visit lands in the
//! same group.
//!
//! The core ABI gives a guest no clock and no randomness, so the group of a new viewer is drawn
//! from a PRNG seeded with the event's `config.requestId` (unique per request): seed = FNV-1a 32
//! of the requestId bytes, one xorshift32 step, group "a" when the top bit is 0, "b" otherwise.
//! The C guest draws the same way, so a request lands in the same group in either language.

const std = @import("std");
const edge = @import("edge.zig");

const cookie_name = "ab-group";
const header = "x-ab-group";

fn isGroup(value: []const u8) bool {
    return std.mem.eql(u8, value, "a") or std.mem.eql(u8, value, "b");
}

/// The characters for which Python's str.isspace() is true.
fn isPythonSpace(cp: u21) bool {
    return switch (cp) {
        0x09...0x0D, 0x1C...0x20, 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000 => true,
        else => false,
    };
}

/// Python's str.strip() on UTF-8 text.
fn strip(s: []const u8) []const u8 {
    var start: usize = 0;
    while (start < s.len) {
        const n = std.unicode.utf8ByteSequenceLength(s[start]) catch break;
        if (start + n > s.len) break;
        const cp = std.unicode.utf8Decode(s[start .. start + n]) catch break;
        if (!isPythonSpace(cp)) break;
        start += n;
    }
    var end = s.len;
    while (end > start) {
        var lead = end - 1;
        while (lead > start and s[lead] & 0xC0 == 0x80 and end - lead < 4) lead -= 1;
        const cp = std.unicode.utf8Decode(s[lead..end]) catch break;
        if (!isPythonSpace(cp)) break;
        end = lead;
    }
    return s[start..end];
}

/// The group named by an `ab-group=` pair in any Cookie header, or null.
fn groupFromCookies(headers: *edge.ObjectMap) ?[]const u8 {
    const cookies = headers.getPtr("cookie") orelse return null;
    if (cookies.* != .array) return null;
    for (cookies.array.items) |*entry| {
        const value = edge.string(edge.field(entry, "value")) orelse continue;
        // Python: value.split(";"), each part stripped, then partitioned at the first "=".
        var parts = std.mem.splitScalar(u8, value, ';');
        while (parts.next()) |raw| {
            const part = strip(raw);
            const eq = std.mem.indexOfScalar(u8, part, '=') orelse continue;
            if (std.mem.eql(u8, part[0..eq], cookie_name) and isGroup(part[eq + 1 ..])) return part[eq + 1 ..];
        }
    }
    return null;
}

fn drawGroup(request_id: []const u8) []const u8 {
    var x: u32 = 2166136261; // FNV-1a 32 offset basis
    for (request_id) |byte| {
        x ^= byte;
        x *%= 16777619; // FNV-1a 32 prime
    }
    if (x == 0) x = 1; // xorshift32 must not start at 0
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return if (x >> 31 == 0) "a" else "b";
}

export fn viewer_request(event: [*]const u8, len: usize) u64 {
    const cf = edge.record(event, len);
    const request = edge.getObject(cf, "request") orelse edge.fail("event has no request");
    const headers = edge.getObject(request, "headers") orelse edge.fail("event has no request headers");
    var group: []const u8 = undefined;
    if (groupFromCookies(headers)) |known| {
        group = known;
        edge.putHeader(headers, header, "X-AB-Group", group);
    } else {
        const config = edge.getObject(cf, "config");
        group = drawGroup(if (config) |c| edge.getString(c, "requestId") orelse "" else "");
        edge.putHeader(headers, header, "X-AB-Group", edge.concat(&.{ "new:", group }));
    }
    const uri = edge.getString(request, "uri") orelse "";
    for ([_][]const u8{ "/experiment", "/experiment/", "/experiment/index.html" }) |page| {
        if (std.mem.eql(u8, uri, page)) {
            edge.put(request, "uri", .{ .string = edge.concat(&.{ "/experiment/", group, "/index.html" }) });
            break;
        }
    }
    return edge.respondObject(request);
}

export fn viewer_response(event: [*]const u8, len: usize) u64 {
    const cf = edge.record(event, len);
    const request_headers = if (edge.getObject(cf, "request")) |r| edge.getObject(r, "headers") else null;
    const marker = if (request_headers) |h| edge.firstHeaderValue(h, header) orelse "" else "";
    if (!std.mem.startsWith(u8, marker, "new:")) return edge.continue_unchanged;
    const response = edge.getObject(cf, "response") orelse edge.fail("event has no response");
    const headers = edge.getObject(response, "headers") orelse edge.fail("event has no response headers");
    const cookie = edge.concat(&.{ cookie_name, "=", marker[4..], "; Path=/; Max-Age=2592000; SameSite=Lax" });
    edge.appendHeader(headers, "set-cookie", "Set-Cookie", cookie);
    return edge.respondObject(response);
}

/// The generic entry point (Invoke API): dispatch on the event type.
export fn handler(event: [*]const u8, len: usize) u64 {
    const cf = edge.record(event, len);
    const config = edge.getObject(cf, "config") orelse edge.fail("event has no config");
    const event_type = edge.getString(config, "eventType") orelse "";
    if (std.mem.eql(u8, event_type, "viewer-request")) return viewer_request(event, len);
    if (!std.mem.eql(u8, event_type, "viewer-response"))
        edge.fail("ab_testing handles viewer-request and viewer-response events only");
    const result = viewer_response(event, len);
    if (result != edge.continue_unchanged) return result;
    return edge.respondObject(edge.getObject(cf, "response") orelse edge.fail("event has no response"));
}
