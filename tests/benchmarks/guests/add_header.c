/*
 * Viewer-request: add X-Hook: 1 to the request and return it. The hook every runtime of
 * proxy_bench.py runs (the Python handler and the Worker do the same job), built with the
 * example guests' C library (examples/wasm/c) for the core ABI.
 */
#include "edge_guest.h"

EDGE_EXPORT(viewer_request) int64_t viewer_request(const char *event, int32_t len) {
    ej_value *request = ej_get(cf_record(event, len), "request");
    ej_value *headers = ej_get(request, "headers");
    if (!ej_is(headers, EJ_OBJECT)) edge_fail("event has no request headers");
    cf_header_put(headers, "x-hook", "X-Hook", ej_cstr("1"));
    return cf_return(request);
}

EDGE_EXPORT(handler) int64_t handler(const char *event, int32_t len) {
    return viewer_request(event, len);
}
