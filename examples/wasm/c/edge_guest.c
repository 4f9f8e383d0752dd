/*
 * edge_guest.c -- the bump heap behind the ABI's edge_alloc/edge_reset exports, and the
 * Lambda@Edge helpers of edge_guest.h.
 */
#include "edge_guest.h"

#define WASM_PAGE_BYTES 65536u

/* Set by the linker (wasm-ld): the first byte after static data and the stack. */
extern unsigned char __heap_base;

static uintptr_t heap_top;

static void *heap_take(size_t size) {
    if (!heap_top) heap_top = (uintptr_t)&__heap_base;
    uintptr_t start = (heap_top + 7u) & ~(uintptr_t)7u;
    if (size > UINTPTR_MAX - start) return NULL;
    uintptr_t end = start + size;
    uintptr_t have = (uintptr_t)__builtin_wasm_memory_size(0) * WASM_PAGE_BYTES;
    if (end > have) {
        size_t pages = (end - have + WASM_PAGE_BYTES - 1) / WASM_PAGE_BYTES;
        if (__builtin_wasm_memory_grow(0, pages) == (size_t)-1) return NULL;
    }
    heap_top = end;
    return (void *)start;
}

void *edge_heap_alloc(size_t size) {
    void *p = heap_take(size);
    if (!p) edge_fail("out of memory");
    return p;
}

/* ABI: room for the event; 0 tells the host we cannot take it (it reports a function error). */
EDGE_EXPORT(edge_alloc) void *edge_alloc(int32_t size) {
    return size < 0 ? NULL : heap_take((size_t)size);
}

/* ABI: called before each invocation on a reused instance. Everything of the previous
 * invocation (event, tree, result) is garbage by then: the host copied the result out. */
EDGE_EXPORT(edge_reset) void edge_reset(void) { heap_top = (uintptr_t)&__heap_base; }

void edge_log_line(const char *message) {
    ej_str s = ej_cstr(message);
    edge_log(s.ptr, s.len);
}

_Noreturn void edge_fail(const char *message) {
    edge_log_line(message);
    __builtin_trap();
}

ej_value *cf_record(const char *event, int32_t event_len) {
    ej_value *root = ej_parse(event, event_len < 0 ? 0 : (size_t)event_len);
    if (!root) edge_fail("event is not valid JSON");
    ej_value *cf = ej_path(root, "Records.0.cf");
    if (!ej_is(cf, EJ_OBJECT)) edge_fail("event has no Records[0].cf object");
    return cf;
}

static ej_value *header_entry(const char *key, ej_str value) {
    ej_value *entry = ej_new(EJ_OBJECT);
    ej_set(entry, "key", ej_new_string(ej_cstr(key)));
    ej_set(entry, "value", ej_new_string(value));
    return entry;
}

void cf_header_put(ej_value *headers, const char *name, const char *key, ej_str value) {
    ej_value *list = ej_new(EJ_ARRAY);
    ej_append(list, header_entry(key, value));
    ej_set(headers, name, list);
}

void cf_header_append(ej_value *headers, const char *name, const char *key, ej_str value) {
    ej_value *list = ej_get(headers, name);
    if (!list) {
        list = ej_new(EJ_ARRAY);
        ej_set(headers, name, list);
    }
    ej_append(list, header_entry(key, value));
}

int64_t cf_return(const ej_value *value) {
    ej_str out = ej_write(value);
    return edge_result(out.ptr, out.len);
}
