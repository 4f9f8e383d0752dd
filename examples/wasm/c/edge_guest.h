/*
 * edge_guest.h -- a small guest-side library for edge functions written in C.
 *
 * Three parts, all allocation through one bump heap (memory is reclaimed all at once by
 * edge_reset(), which the host calls between invocations on a reused instance):
 *
 *   - the heap: edge_heap_alloc(), plus the `edge_alloc` / `edge_reset` exports of the ABI;
 *   - a JSON tree (ej_*): parse the event, find and edit members, write the result back out
 *     with correct escaping;
 *   - Lambda@Edge helpers (cf_*): the record, header lists, returning a result.
 *
 * Any failure the function cannot sensibly continue from (malformed event, out of memory) logs
 * one line through edge.log and traps: the host reports a function error (503), exactly as a
 * Python handler raising an exception would.
 */
#ifndef EDGE_GUEST_H
#define EDGE_GUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "edge_abi.h"

/* ---- heap ---------------------------------------------------------------------------- */

/* `size` bytes, 8-byte aligned, valid until the next edge_reset(); traps when memory is exhausted. */
void *edge_heap_alloc(size_t size);

/* ---- byte strings ---------------------------------------------------------------------- */

/* A UTF-8 byte string that is not NUL-terminated. */
typedef struct {
    const char *ptr;
    size_t len;
} ej_str;

ej_str ej_cstr(const char *nul_terminated);
bool ej_str_eq(ej_str a, ej_str b);
bool ej_str_eq_c(ej_str a, const char *nul_terminated);
bool ej_str_starts_with(ej_str s, const char *prefix);
bool ej_str_contains(ej_str s, const char *needle);
/* Concatenate two strings into a fresh heap buffer. */
ej_str ej_str_concat(ej_str a, ej_str b);
/* Trim whitespace at both ends as Python's str.strip() does (ASCII and Unicode spaces). */
ej_str ej_str_strip(ej_str s);

/* ---- JSON tree ------------------------------------------------------------------------- */

typedef enum { EJ_NULL, EJ_FALSE, EJ_TRUE, EJ_NUMBER, EJ_STRING, EJ_ARRAY, EJ_OBJECT } ej_kind;

typedef struct ej_value ej_value;
struct ej_value {
    ej_kind kind;
    ej_str text;      /* EJ_STRING: the decoded UTF-8; EJ_NUMBER: the source text, kept verbatim */
    ej_str key;       /* the member name, when this value sits in an object */
    ej_value *first;  /* EJ_ARRAY / EJ_OBJECT: elements or members, in order */
    ej_value *last;
    ej_value *next;   /* the next sibling in the parent */
};

/* Parse one JSON document (RFC 8259). NULL when the text is not valid JSON. */
ej_value *ej_parse(const char *json, size_t len);

/* The value of `name` in an object (the last one if the name repeats, as Python's json keeps),
 * or NULL when `object` is NULL, not an object, or has no such member. */
ej_value *ej_get(const ej_value *object, const char *name);
/* Element `index` of an array, or NULL. */
ej_value *ej_at(const ej_value *array, size_t index);
/* Walk a dotted path from `root`: "Records.0.cf.request"; all-digit segments index arrays. */
ej_value *ej_path(const ej_value *root, const char *path);

/* The string value, or an empty string with a NULL pointer when `value` is not a string. */
ej_str ej_string_of(const ej_value *value);
bool ej_is(const ej_value *value, ej_kind kind);

/* New values on the heap. Strings are referenced, not copied: keep them alive (literals, the
 * event buffer or heap memory all are, until the invocation ends). */
ej_value *ej_new(ej_kind kind);
ej_value *ej_new_string(ej_str text);

/* object[name] = value: replaces the member in place (its position kept, like a Python dict)
 * or appends a new one. */
void ej_set(ej_value *object, const char *name, ej_value *value);
/* Remove every member called `name`; true when there was one (Python's dict.pop). */
bool ej_remove(ej_value *object, const char *name);
/* array.append(value) */
void ej_append(ej_value *array, ej_value *value);

/* Serialise to compact JSON in a heap buffer. Strings are escaped per RFC 8259 §7; non-ASCII
 * UTF-8 is written as is. */
ej_str ej_write(const ej_value *value);

/* ---- Lambda@Edge ------------------------------------------------------------------------ */

/* Parse the event and return Records[0].cf; logs and traps when the event has no such record. */
ej_value *cf_record(const char *event, int32_t event_len);

/* headers[name] = [{"key": key, "value": value}] */
void cf_header_put(ej_value *headers, const char *name, const char *key, ej_str value);
/* headers.setdefault(name, []).append({"key": key, "value": value}) */
void cf_header_append(ej_value *headers, const char *name, const char *key, ej_str value);

/* The packed ABI result for `value` (a request, a response or a generated response). */
int64_t cf_return(const ej_value *value);

/* Log one line through the host's edge.log import. */
void edge_log_line(const char *nul_terminated);

/* Log `message` and trap: the invocation fails as a function error. */
_Noreturn void edge_fail(const char *message);

#endif /* EDGE_GUEST_H */
