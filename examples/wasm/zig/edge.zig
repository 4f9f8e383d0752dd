//! The guest side of edge's core WASM ABI for Zig functions (the contract is in
//! sandbox/wasm/edge_abi.h): the `edge_alloc` / `edge_reset` exports over one arena, the
//! `edge.log` import, and Lambda@Edge helpers over `std.json.Value`.
//!
//! A function imports this file and exports its entry points:
//!
//!     const edge = @import("edge.zig");
//!     export fn viewer_request(event: [*]const u8, len: usize) u64 { ... return edge.respond(v); }
//!
//! Anything a function cannot continue from (malformed event, out of memory) logs one line and
//! traps: the host reports a function error, as for a Python handler that raises.

const std = @import("std");
const json = std.json;

pub const Value = json.Value;
pub const ObjectMap = json.ObjectMap;
pub const Array = json.Array;

/// Returned by an entry point: continue with the request/response unchanged.
pub const continue_unchanged: u64 = 0;

/// Everything an invocation allocates (event, tree, result) lives here; the host calls
/// edge_reset before the next invocation on a reused instance, after copying the result out.
var arena_state = std.heap.ArenaAllocator.init(std.heap.wasm_allocator);

pub fn allocator() std.mem.Allocator {
    return arena_state.allocator();
}

/// ABI: room for the event; 0 tells the host we cannot take it.
export fn edge_alloc(size: i32) usize {
    if (size < 0) return 0;
    const buf = allocator().alloc(u8, @intCast(size)) catch return 0;
    return @intFromPtr(buf.ptr);
}

/// ABI: called before each invocation on a reused instance.
export fn edge_reset() void {
    _ = arena_state.reset(.retain_capacity);
}

extern "edge" fn log(ptr: [*]const u8, len: usize) void;

/// One line into the invocation's log (like print() in a Python function).
pub fn logLine(message: []const u8) void {
    log(message.ptr, message.len);
}

/// Log `message` and trap: the invocation fails as a function error.
pub fn fail(message: []const u8) noreturn {
    logLine(message);
    @trap();
}

fn oom() noreturn {
    fail("out of memory");
}

/// Parse the event and return `Records[0].cf`.
pub fn record(event: [*]const u8, len: usize) *ObjectMap {
    const root = allocator().create(Value) catch oom();
    root.* = json.parseFromSliceLeaky(Value, allocator(), event[0..len], .{
        // Python's json keeps the last of repeated names; numbers stay as written.
        .duplicate_field_behavior = .use_last,
        .parse_numbers = false,
    }) catch fail("event is not valid JSON");
    const records = field(root, "Records") orelse fail("event has no Records");
    if (records.* != .array or records.array.items.len == 0) fail("event has no Records[0]");
    return object(field(&records.array.items[0], "cf")) orelse fail("event has no Records[0].cf");
}

/// `value[name]` when `value` is an object that has it.
pub fn field(value: ?*Value, name: []const u8) ?*Value {
    const v = value orelse return null;
    return switch (v.*) {
        .object => |*map| map.getPtr(name),
        else => null,
    };
}

/// The object inside `value`, if it is one.
pub fn object(value: ?*Value) ?*ObjectMap {
    const v = value orelse return null;
    return switch (v.*) {
        .object => |*map| map,
        else => null,
    };
}

/// The string inside `value`, if it is one.
pub fn string(value: ?*const Value) ?[]const u8 {
    const v = value orelse return null;
    return switch (v.*) {
        .string => |s| s,
        else => null,
    };
}

/// `map[name]` as an object, or null.
pub fn getObject(map: *ObjectMap, name: []const u8) ?*ObjectMap {
    return object(map.getPtr(name));
}

/// `map[name]` as a string, or null.
pub fn getString(map: *ObjectMap, name: []const u8) ?[]const u8 {
    return string(map.getPtr(name));
}

/// object[name] = value; an existing member keeps its place, as in a Python dict.
pub fn put(map: *ObjectMap, name: []const u8, value: Value) void {
    map.put(allocator(), name, value) catch oom();
}

/// Python's dict.pop(name, None): keeps the order of the other members.
pub fn remove(map: *ObjectMap, name: []const u8) void {
    _ = map.orderedRemove(name);
}

fn headerEntry(key: []const u8, value: []const u8) Value {
    var entry: ObjectMap = .empty;
    entry.put(allocator(), "key", .{ .string = key }) catch oom();
    entry.put(allocator(), "value", .{ .string = value }) catch oom();
    return .{ .object = entry };
}

/// headers[name] = [{"key": key, "value": value}]
pub fn putHeader(headers: *ObjectMap, name: []const u8, key: []const u8, value: []const u8) void {
    var list = Array.init(allocator());
    list.append(headerEntry(key, value)) catch oom();
    put(headers, name, .{ .array = list });
}

/// headers.setdefault(name, []).append({"key": key, "value": value})
pub fn appendHeader(headers: *ObjectMap, name: []const u8, key: []const u8, value: []const u8) void {
    const slot = headers.getOrPut(allocator(), name) catch oom();
    if (!slot.found_existing) slot.value_ptr.* = .{ .array = Array.init(allocator()) };
    switch (slot.value_ptr.*) {
        .array => |*list| list.append(headerEntry(key, value)) catch oom(),
        else => fail("header list is not an array"),
    }
}

/// The value of the first entry of headers[name], or null.
pub fn firstHeaderValue(headers: *ObjectMap, name: []const u8) ?[]const u8 {
    const list = headers.getPtr(name) orelse return null;
    if (list.* != .array or list.array.items.len == 0) return null;
    return string(field(&list.array.items[0], "value"));
}

/// The concatenation of `parts`, in the invocation's arena.
pub fn concat(parts: []const []const u8) []const u8 {
    return std.mem.concat(allocator(), u8, parts) catch oom();
}

/// The packed ABI result for `value`: (ptr << 32) | len of its JSON.
pub fn respond(value: Value) u64 {
    const out = json.Stringify.valueAlloc(allocator(), value, .{}) catch oom();
    return (@as(u64, @intFromPtr(out.ptr)) << 32) | @as(u64, out.len);
}

/// `respond` for an object.
pub fn respondObject(map: *ObjectMap) u64 {
    return respond(.{ .object = map.* });
}
