/*
 * Viewer-request: redirects and URL normalisation. The C twin of examples/functions/redirects.py.
 *
 * - Moved pages answer 301 with Location (a generated response, nothing else runs).
 * - Runs of slashes collapse (`//docs///x` -> `/docs/x`), with a 301 to the clean URL.
 * - A directory URI gets its index document (`/docs/` -> `/docs/index.html`) without a
 *   redirect, the classic fix for S3 origins behind CloudFront.
 * - Anything else continues unchanged (EDGE_CONTINUE: the host keeps the request as it was).
 */
#include "edge_guest.h"

static const struct {
    const char *from;
    const char *to;
} REDIRECTS[] = {
    {"/old", "/"},
    {"/home", "/"},
    {"/documentation", "/docs/"},
    {"/blog", "https://blog.example.com/"},
};

/* A generated 301. The query string is kept for local targets only. */
static int64_t redirect(ej_str location, ej_str querystring) {
    if (querystring.len && !ej_str_contains(location, "://"))
        location = ej_str_concat(ej_str_concat(location, ej_cstr("?")), querystring);
    ej_value *headers = ej_new(EJ_OBJECT);
    cf_header_put(headers, "location", "Location", location);
    cf_header_put(headers, "cache-control", "Cache-Control", ej_cstr("max-age=3600"));
    ej_value *response = ej_new(EJ_OBJECT);
    ej_set(response, "status", ej_new_string(ej_cstr("301")));
    ej_set(response, "statusDescription", ej_new_string(ej_cstr("Moved Permanently")));
    ej_set(response, "headers", headers);
    return cf_return(response);
}

/* The redirect target for `uri` with trailing slashes ignored ("/old/" is "/old"), or NULL. */
static const char *redirect_target(ej_str uri) {
    while (uri.len && uri.ptr[uri.len - 1] == '/') uri.len--;
    if (!uri.len) uri = ej_cstr("/");
    for (size_t i = 0; i < sizeof REDIRECTS / sizeof REDIRECTS[0]; i++)
        if (ej_str_eq_c(uri, REDIRECTS[i].from)) return REDIRECTS[i].to;
    return NULL;
}

/* `uri` with every run of slashes reduced to one. */
static ej_str collapse_slashes(ej_str uri) {
    char *out = edge_heap_alloc(uri.len ? uri.len : 1);
    size_t n = 0;
    for (size_t i = 0; i < uri.len; i++)
        if (uri.ptr[i] != '/' || n == 0 || out[n - 1] != '/') out[n++] = uri.ptr[i];
    return (ej_str){out, n};
}

EDGE_EXPORT(viewer_request) int64_t viewer_request(const char *event, int32_t len) {
    ej_value *request = ej_get(cf_record(event, len), "request");
    ej_value *uri_value = ej_get(request, "uri");
    if (!ej_is(uri_value, EJ_STRING)) edge_fail("event has no request uri");
    ej_str uri = uri_value->text;
    ej_str querystring = ej_string_of(ej_get(request, "querystring"));

    const char *target = redirect_target(uri);
    if (target && !ej_str_eq_c(uri, target)) return redirect(ej_cstr(target), querystring);
    ej_str clean = collapse_slashes(uri);
    if (!ej_str_eq(clean, uri)) return redirect(clean, querystring);
    if (uri.len && uri.ptr[uri.len - 1] == '/') {
        ej_set(request, "uri", ej_new_string(ej_str_concat(uri, ej_cstr("index.html"))));
        return cf_return(request);
    }
    return EDGE_CONTINUE;
}

/* The generic entry point (Invoke API): the same function, answering with the request itself
 * where the trigger entry point would say "continue unchanged". */
EDGE_EXPORT(handler) int64_t handler(const char *event, int32_t len) {
    int64_t result = viewer_request(event, len);
    return result ? result : cf_return(ej_get(cf_record(event, len), "request"));
}
