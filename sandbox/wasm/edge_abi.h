/*
 * edge_abi.h -- the core WASM ABI of the edge runtime, for C guests.
 *
 * Build for wasm32 freestanding (clang --target=wasm32 -nostdlib -Wl,--no-entry, or
 * zig cc -target wasm32-freestanding) and export the entry points you handle.
 * The full contract is in sandbox/wasm/ABI.md; in short:
 *
 *   - the guest exports `memory` (the linker does this by default);
 *   - the guest exports `edge_alloc(size) -> ptr` (0 on failure); the host calls it once per
 *     invocation to get room for the event JSON;
 *   - the guest may export `edge_reset()`: when the function is configured to reuse its
 *     instance, the host calls it before each invocation but the instance's first (reset a
 *     bump allocator here);
 *   - a reactor may export `_initialize()`: the host calls it once on every new instance,
 *     before anything else;
 *   - a zero-length result means "continue unchanged", as does a missing entry point;
 *   - entry points `viewer_request`, `origin_request`, `origin_response`, `viewer_response`
 *     and `handler`: (event_ptr, event_len) -> packed i64 result, built with edge_result()
 *     or EDGE_CONTINUE (0);
 *   - the host offers one import, `edge.log(ptr, len)`: one UTF-8 log line.
 *
 * Events and results are exactly Lambda@Edge's JSON (UTF-8, not NUL-terminated).
 */
#ifndef EDGE_ABI_H
#define EDGE_ABI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Export a function under `name` (the wasm export name), e.g.
 *   EDGE_EXPORT(viewer_request) int64_t viewer_request(const char *event, int32_t len) {...}
 */
#define EDGE_EXPORT(name) __attribute__((export_name(#name), visibility("default")))

/* Import from the host's "edge" module. */
#define EDGE_IMPORT(name) __attribute__((import_module("edge"), import_name(#name)))

/* Signature of every entry point: the event JSON in guest memory, its length in bytes. */
typedef int64_t (*edge_entry_fn)(const char *event, int32_t event_len);

/* Returned by an entry point: continue with the request/response unchanged. */
#define EDGE_CONTINUE ((int64_t)0)

/* Pack the result JSON's location into an entry point's return value: (ptr << 32) | len.
 * The bytes must stay valid until the entry point returns (the host copies them right after). */
static inline int64_t edge_result(const void *ptr, size_t len) {
    return (int64_t)(((uint64_t)(uint32_t)(uintptr_t)ptr << 32) | (uint64_t)(uint32_t)len);
}

/* Host import: one log line (UTF-8, no trailing newline needed), captured into the
 * invocation's log with the request id, like print() in a Python function. */
EDGE_IMPORT(log) void edge_log(const char *msg, size_t len);

/* Guest exports the host calls (define them in your module with these exact names):
 *
 *   EDGE_EXPORT(edge_alloc) void *edge_alloc(int32_t size);   // required; 0 on failure
 *   EDGE_EXPORT(edge_reset) void edge_reset(void);            // optional
 *
 * and one or more entry points:
 *
 *   EDGE_EXPORT(viewer_request)  int64_t viewer_request(const char *event, int32_t len);
 *   EDGE_EXPORT(origin_request)  int64_t origin_request(const char *event, int32_t len);
 *   EDGE_EXPORT(origin_response) int64_t origin_response(const char *event, int32_t len);
 *   EDGE_EXPORT(viewer_response) int64_t viewer_response(const char *event, int32_t len);
 *   EDGE_EXPORT(handler)         int64_t handler(const char *event, int32_t len);
 */
void *edge_alloc(int32_t size);
void edge_reset(void);

#ifdef __cplusplus
}
#endif

#endif /* EDGE_ABI_H */
