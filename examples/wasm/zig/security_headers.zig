//! Origin-response: add the security headers every page should carry, and drop the headers
//! that advertise the origin's software. The Zig twin of examples/functions/security_headers.py.
//!
//! Runs once per origin fetch (not on cache hits), so the headers are cached with the object.

const edge = @import("edge.zig");

const Header = struct { name: []const u8, key: []const u8, value: []const u8 };

const security_headers = [_]Header{
    .{ .name = "strict-transport-security", .key = "Strict-Transport-Security", .value = "max-age=63072000; includeSubDomains; preload" },
    .{ .name = "content-security-policy", .key = "Content-Security-Policy", .value = "default-src 'self'; img-src 'self' data:; object-src 'none'" },
    .{ .name = "x-content-type-options", .key = "X-Content-Type-Options", .value = "nosniff" },
    .{ .name = "x-frame-options", .key = "X-Frame-Options", .value = "DENY" },
    .{ .name = "referrer-policy", .key = "Referrer-Policy", .value = "strict-origin-when-cross-origin" },
    .{ .name = "permissions-policy", .key = "Permissions-Policy", .value = "camera=(), microphone=(), geolocation=()" },
};

export fn origin_response(event: [*]const u8, len: usize) u64 {
    const response = edge.getObject(edge.record(event, len), "response") orelse edge.fail("event has no response");
    const headers = edge.getObject(response, "headers") orelse edge.fail("event has no response headers");
    for (security_headers) |h| edge.putHeader(headers, h.name, h.key, h.value);
    edge.remove(headers, "server");
    edge.remove(headers, "x-powered-by");
    return edge.respondObject(response);
}

/// The generic entry point (Invoke API): the same function.
export fn handler(event: [*]const u8, len: usize) u64 {
    return origin_response(event, len);
}
