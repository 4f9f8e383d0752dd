/*
 * Origin-response: add the security headers every page should carry, and drop the headers
 * that advertise the origin's software. The C twin of examples/functions/security_headers.py.
 *
 * Runs once per origin fetch (not on cache hits), so the headers are cached with the object.
 */
#include "edge_guest.h"

static const struct {
    const char *name; /* Lambda@Edge header maps are keyed by the lower-case name */
    const char *key;
    const char *value;
} SECURITY_HEADERS[] = {
    {"strict-transport-security", "Strict-Transport-Security",
     "max-age=63072000; includeSubDomains; preload"},
    {"content-security-policy", "Content-Security-Policy",
     "default-src 'self'; img-src 'self' data:; object-src 'none'"},
    {"x-content-type-options", "X-Content-Type-Options", "nosniff"},
    {"x-frame-options", "X-Frame-Options", "DENY"},
    {"referrer-policy", "Referrer-Policy", "strict-origin-when-cross-origin"},
    {"permissions-policy", "Permissions-Policy", "camera=(), microphone=(), geolocation=()"},
};

EDGE_EXPORT(origin_response) int64_t origin_response(const char *event, int32_t len) {
    ej_value *response = ej_get(cf_record(event, len), "response");
    ej_value *headers = ej_get(response, "headers");
    if (!ej_is(headers, EJ_OBJECT)) edge_fail("event has no response headers");
    for (size_t i = 0; i < sizeof SECURITY_HEADERS / sizeof SECURITY_HEADERS[0]; i++)
        cf_header_put(headers, SECURITY_HEADERS[i].name, SECURITY_HEADERS[i].key,
                      ej_cstr(SECURITY_HEADERS[i].value));
    ej_remove(headers, "server");
    ej_remove(headers, "x-powered-by");
    return cf_return(response);
}

/* The generic entry point (Invoke API): the same function. */
EDGE_EXPORT(handler) int64_t handler(const char *event, int32_t len) {
    return origin_response(event, len);
}
