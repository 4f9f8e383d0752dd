/*
 * A/B testing with a sticky cookie. The C twin of examples/functions/ab_testing.py.
 *
 * viewer_request: a viewer in a group (cookie `ab-group=a|b`) keeps it; a new viewer is put in
 * one. The page `/experiment/` is then served from `/experiment/a/` or `/experiment/b/`. The
 * choice travels to viewer_response in the request header `x-ab-group` (`new:<g>` or `<g>`).
 *
 * viewer_response: a viewer who came without the cookie gets it, so the next visit lands in the
 * same group.
 *
 * The core ABI gives a guest no clock and no randomness, so the group of a new viewer is drawn
 * from a PRNG seeded with the event's `config.requestId` (unique per request, as random as the
 * viewers are): seed = FNV-1a 32 of the requestId bytes, one xorshift32 step, group "a" when the
 * top bit is 0, "b" otherwise. The same request always lands in the same group, in every guest
 * language (the Zig guest uses the same draw).
 */
#include "edge_guest.h"

#define COOKIE "ab-group"
#define HEADER "x-ab-group"

static bool is_group(ej_str value) { return ej_str_eq_c(value, "a") || ej_str_eq_c(value, "b"); }

/* The group named by an `ab-group=` pair in any Cookie header, or an empty string. */
static ej_str group_from_cookies(const ej_value *headers) {
    const ej_value *cookies = ej_get(headers, "cookie");
    for (const ej_value *entry = ej_is(cookies, EJ_ARRAY) ? cookies->first : NULL; entry;
         entry = entry->next) {
        ej_str rest = ej_string_of(ej_get(entry, "value"));
        /* Python: value.split(";"), each part stripped, then partitioned at the first "=". */
        for (;;) {
            size_t cut = 0;
            while (cut < rest.len && rest.ptr[cut] != ';') cut++;
            ej_str part = ej_str_strip((ej_str){rest.ptr, cut});
            size_t eq = 0;
            while (eq < part.len && part.ptr[eq] != '=') eq++;
            if (eq < part.len && ej_str_eq_c((ej_str){part.ptr, eq}, COOKIE)) {
                ej_str value = {part.ptr + eq + 1, part.len - eq - 1};
                if (is_group(value)) return value;
            }
            if (cut == rest.len) break;
            rest = (ej_str){rest.ptr + cut + 1, rest.len - cut - 1};
        }
    }
    return (ej_str){0, 0};
}

static ej_str draw_group(ej_str request_id) {
    uint32_t x = 2166136261u; /* FNV-1a 32 offset basis */
    for (size_t i = 0; i < request_id.len; i++) {
        x ^= (unsigned char)request_id.ptr[i];
        x *= 16777619u; /* FNV-1a 32 prime */
    }
    if (!x) x = 1; /* xorshift32 must not start at 0 */
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return ej_cstr(x >> 31 ? "b" : "a");
}

EDGE_EXPORT(viewer_request) int64_t viewer_request(const char *event, int32_t len) {
    ej_value *cf = cf_record(event, len);
    ej_value *request = ej_get(cf, "request");
    ej_value *headers = ej_get(request, "headers");
    if (!ej_is(headers, EJ_OBJECT)) edge_fail("event has no request headers");
    ej_str group = group_from_cookies(headers);
    if (!group.len) {
        group = draw_group(ej_string_of(ej_path(cf, "config.requestId")));
        cf_header_put(headers, HEADER, "X-AB-Group", ej_str_concat(ej_cstr("new:"), group));
    } else {
        cf_header_put(headers, HEADER, "X-AB-Group", group);
    }
    ej_str uri = ej_string_of(ej_get(request, "uri"));
    if (ej_str_eq_c(uri, "/experiment") || ej_str_eq_c(uri, "/experiment/") ||
        ej_str_eq_c(uri, "/experiment/index.html")) {
        ej_str rewritten = ej_str_concat(ej_cstr("/experiment/"), group);
        rewritten = ej_str_concat(rewritten, ej_cstr("/index.html"));
        ej_set(request, "uri", ej_new_string(rewritten));
    }
    return cf_return(request);
}

EDGE_EXPORT(viewer_response) int64_t viewer_response(const char *event, int32_t len) {
    ej_value *cf = cf_record(event, len);
    ej_str marker = ej_string_of(ej_path(cf, "request.headers." HEADER ".0.value"));
    if (!ej_str_starts_with(marker, "new:")) return EDGE_CONTINUE;
    ej_str group = {marker.ptr + 4, marker.len - 4};
    ej_str cookie = ej_str_concat(ej_cstr(COOKIE "="), group);
    cookie = ej_str_concat(cookie, ej_cstr("; Path=/; Max-Age=2592000; SameSite=Lax"));
    ej_value *response = ej_get(cf, "response");
    ej_value *headers = ej_get(response, "headers");
    if (!ej_is(headers, EJ_OBJECT)) edge_fail("event has no response headers");
    cf_header_append(headers, "set-cookie", "Set-Cookie", cookie);
    return cf_return(response);
}

/* The generic entry point (Invoke API): dispatch on the event type. */
EDGE_EXPORT(handler) int64_t handler(const char *event, int32_t len) {
    ej_value *cf = cf_record(event, len);
    ej_str event_type = ej_string_of(ej_path(cf, "config.eventType"));
    if (ej_str_eq_c(event_type, "viewer-request")) return viewer_request(event, len);
    if (ej_str_eq_c(event_type, "viewer-response")) {
        int64_t result = viewer_response(event, len);
        return result ? result : cf_return(ej_get(cf, "response"));
    }
    edge_fail("ab_testing handles viewer-request and viewer-response events only");
}
