/*
 * edge_json.c -- the JSON tree of edge_guest.h: parse, find, edit, write.
 *
 * The parser is a recursive descent over the event buffer. Strings without escapes point into
 * the buffer itself (the host wrote it into our heap, so it lives until edge_reset); strings
 * with escapes are decoded into the heap. Numbers keep their source text, so a value we do not
 * touch is written back exactly as it came.
 */
#include "edge_guest.h"

/* Deep enough for any Lambda@Edge or ALB event (about 10 levels), shallow enough that hostile
 * input cannot exhaust the wasm stack. */
#define EJ_MAX_DEPTH 256

/* ---- byte strings ---------------------------------------------------------------------- */

ej_str ej_cstr(const char *s) {
    size_t n = 0;
    while (s[n]) n++;
    return (ej_str){s, n};
}

bool ej_str_eq(ej_str a, ej_str b) {
    if (a.len != b.len) return false;
    for (size_t i = 0; i < a.len; i++)
        if (a.ptr[i] != b.ptr[i]) return false;
    return true;
}

bool ej_str_eq_c(ej_str a, const char *s) { return ej_str_eq(a, ej_cstr(s)); }

bool ej_str_starts_with(ej_str s, const char *prefix) {
    ej_str p = ej_cstr(prefix);
    return s.len >= p.len && ej_str_eq((ej_str){s.ptr, p.len}, p);
}

bool ej_str_contains(ej_str s, const char *needle) {
    ej_str n = ej_cstr(needle);
    if (n.len > s.len) return false;
    for (size_t i = 0; i + n.len <= s.len; i++)
        if (ej_str_eq((ej_str){s.ptr + i, n.len}, n)) return true;
    return false;
}

ej_str ej_str_concat(ej_str a, ej_str b) {
    char *buf = edge_heap_alloc(a.len + b.len);
    for (size_t i = 0; i < a.len; i++) buf[i] = a.ptr[i];
    for (size_t i = 0; i < b.len; i++) buf[a.len + i] = b.ptr[i];
    return (ej_str){buf, a.len + b.len};
}

/* The characters for which Python's str.isspace() is true. */
static bool is_python_space(uint32_t cp) {
    return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 ||
           cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
           cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

/* Decode the UTF-8 sequence of `n` bytes at `p`; 0xFFFFFFFF when it is not well formed. */
static uint32_t utf8_decode(const unsigned char *p, size_t n) {
    if (n == 1) return p[0] < 0x80 ? p[0] : 0xFFFFFFFFu;
    for (size_t i = 1; i < n; i++)
        if ((p[i] & 0xC0) != 0x80) return 0xFFFFFFFFu;
    if (n == 2 && (p[0] & 0xE0) == 0xC0) return ((uint32_t)(p[0] & 0x1F) << 6) | (p[1] & 0x3F);
    if (n == 3 && (p[0] & 0xF0) == 0xE0)
        return ((uint32_t)(p[0] & 0x0F) << 12) | ((uint32_t)(p[1] & 0x3F) << 6) | (p[2] & 0x3F);
    return 0xFFFFFFFFu; /* no 4-byte character is whitespace */
}

static size_t utf8_length(unsigned char lead) {
    if (lead < 0x80) return 1;
    if ((lead & 0xE0) == 0xC0) return 2;
    if ((lead & 0xF0) == 0xE0) return 3;
    return 4;
}

ej_str ej_str_strip(ej_str s) {
    const unsigned char *p = (const unsigned char *)s.ptr;
    size_t start = 0, end = s.len;
    while (start < end) {
        size_t n = utf8_length(p[start]);
        if (n > end - start || !is_python_space(utf8_decode(p + start, n))) break;
        start += n;
    }
    while (end > start) {
        size_t lead = end - 1;
        while (lead > start && (p[lead] & 0xC0) == 0x80 && end - lead < 4) lead--;
        if (!is_python_space(utf8_decode(p + lead, end - lead))) break;
        end = lead;
    }
    return (ej_str){s.ptr + start, end - start};
}

/* ---- parser ---------------------------------------------------------------------------- */

typedef struct {
    const char *p;
    const char *end;
    int depth;
} ej_parser;

static void skip_space(ej_parser *ps) {
    /* RFC 8259 §2: only these four are insignificant whitespace. */
    while (ps->p < ps->end &&
           (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
        ps->p++;
}

static int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int32_t hex4(const char *s) {
    int32_t v = 0;
    for (int i = 0; i < 4; i++) {
        int d = hex_digit(s[i]);
        if (d < 0) return -1;
        v = (v << 4) | d;
    }
    return v;
}

/* UTF-8 for a code point; a lone surrogate (which JSON allows in \u escapes and Python keeps)
 * becomes its 3-byte WTF-8 form, turned back into \uXXXX by the writer. */
static size_t encode_utf8(uint32_t cp, char *out) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* At the opening quote. RFC 8259 §7. */
static bool parse_string(ej_parser *ps, ej_str *out) {
    const char *start = ++ps->p;
    const char *q = start;
    bool has_escape = false;
    while (q < ps->end && *q != '"') {
        if ((unsigned char)*q < 0x20) return false; /* control characters must be escaped */
        if (*q == '\\') {
            has_escape = true;
            if (++q >= ps->end) return false;
        }
        q++;
    }
    if (q >= ps->end) return false;
    ps->p = q + 1;
    if (!has_escape) {
        *out = (ej_str){start, (size_t)(q - start)};
        return true;
    }
    /* Decoding never lengthens: "\n" is 2 bytes for 1, "\uXXXX" 6 for at most 3, a surrogate
     * pair 12 for 4. */
    char *buf = edge_heap_alloc((size_t)(q - start));
    size_t n = 0;
    const char *s = start;
    while (s < q) {
        if (*s != '\\') {
            buf[n++] = *s++;
            continue;
        }
        s++;
        char esc = *s++;
        switch (esc) {
        case '"': buf[n++] = '"'; break;
        case '\\': buf[n++] = '\\'; break;
        case '/': buf[n++] = '/'; break;
        case 'b': buf[n++] = '\b'; break;
        case 'f': buf[n++] = '\f'; break;
        case 'n': buf[n++] = '\n'; break;
        case 'r': buf[n++] = '\r'; break;
        case 't': buf[n++] = '\t'; break;
        case 'u': {
            if (q - s < 4) return false;
            int32_t unit = hex4(s);
            if (unit < 0) return false;
            s += 4;
            uint32_t cp = (uint32_t)unit;
            if (cp >= 0xD800 && cp <= 0xDBFF && q - s >= 6 && s[0] == '\\' && s[1] == 'u') {
                int32_t low = hex4(s + 2);
                if (low >= 0xDC00 && low <= 0xDFFF) {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + ((uint32_t)low - 0xDC00);
                    s += 6;
                }
            }
            n += encode_utf8(cp, buf + n);
            break;
        }
        default:
            return false;
        }
    }
    *out = (ej_str){buf, n};
    return true;
}

static bool is_digit(const ej_parser *ps) {
    return ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9';
}

/* RFC 8259 §6: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static bool parse_number(ej_parser *ps, ej_str *out) {
    const char *start = ps->p;
    if (ps->p < ps->end && *ps->p == '-') ps->p++;
    if (!is_digit(ps)) return false;
    if (*ps->p == '0') {
        ps->p++;
    } else {
        while (is_digit(ps)) ps->p++;
    }
    if (ps->p < ps->end && *ps->p == '.') {
        ps->p++;
        if (!is_digit(ps)) return false;
        while (is_digit(ps)) ps->p++;
    }
    if (ps->p < ps->end && (*ps->p == 'e' || *ps->p == 'E')) {
        ps->p++;
        if (ps->p < ps->end && (*ps->p == '+' || *ps->p == '-')) ps->p++;
        if (!is_digit(ps)) return false;
        while (is_digit(ps)) ps->p++;
    }
    *out = (ej_str){start, (size_t)(ps->p - start)};
    return true;
}

static bool parse_literal(ej_parser *ps, const char *word) {
    ej_str w = ej_cstr(word);
    if ((size_t)(ps->end - ps->p) < w.len || !ej_str_eq((ej_str){ps->p, w.len}, w)) return false;
    ps->p += w.len;
    return true;
}

static void link_child(ej_value *parent, ej_value *child) {
    child->next = NULL;
    if (parent->last) {
        parent->last->next = child;
    } else {
        parent->first = child;
    }
    parent->last = child;
}

static ej_value *parse_value(ej_parser *ps);

/* At '[' or '{'. */
static ej_value *parse_container(ej_parser *ps, bool is_object) {
    if (++ps->depth > EJ_MAX_DEPTH) return NULL;
    char close = is_object ? '}' : ']';
    ej_value *container = ej_new(is_object ? EJ_OBJECT : EJ_ARRAY);
    ps->p++;
    skip_space(ps);
    if (ps->p < ps->end && *ps->p == close) {
        ps->p++;
        ps->depth--;
        return container;
    }
    for (;;) {
        ej_str key = {0, 0};
        if (is_object) {
            skip_space(ps);
            if (ps->p >= ps->end || *ps->p != '"' || !parse_string(ps, &key)) return NULL;
            skip_space(ps);
            if (ps->p >= ps->end || *ps->p != ':') return NULL;
            ps->p++;
        }
        ej_value *item = parse_value(ps);
        if (!item) return NULL;
        item->key = key;
        link_child(container, item);
        skip_space(ps);
        if (ps->p >= ps->end) return NULL;
        if (*ps->p == ',') {
            ps->p++;
            continue;
        }
        if (*ps->p != close) return NULL;
        ps->p++;
        ps->depth--;
        return container;
    }
}

static ej_value *parse_value(ej_parser *ps) {
    skip_space(ps);
    if (ps->p >= ps->end) return NULL;
    ej_value *v;
    switch (*ps->p) {
    case '{': return parse_container(ps, true);
    case '[': return parse_container(ps, false);
    case '"':
        v = ej_new(EJ_STRING);
        return parse_string(ps, &v->text) ? v : NULL;
    case 't': return parse_literal(ps, "true") ? ej_new(EJ_TRUE) : NULL;
    case 'f': return parse_literal(ps, "false") ? ej_new(EJ_FALSE) : NULL;
    case 'n': return parse_literal(ps, "null") ? ej_new(EJ_NULL) : NULL;
    default:
        v = ej_new(EJ_NUMBER);
        return parse_number(ps, &v->text) ? v : NULL;
    }
}

ej_value *ej_parse(const char *json, size_t len) {
    ej_parser ps = {json, json + len, 0};
    ej_value *root = parse_value(&ps);
    if (!root) return NULL;
    skip_space(&ps);
    return ps.p == ps.end ? root : NULL;
}

/* ---- lookup and edits ------------------------------------------------------------------ */

ej_value *ej_new(ej_kind kind) {
    ej_value *v = edge_heap_alloc(sizeof *v);
    *v = (ej_value){.kind = kind};
    return v;
}

ej_value *ej_new_string(ej_str text) {
    ej_value *v = ej_new(EJ_STRING);
    v->text = text;
    return v;
}

bool ej_is(const ej_value *value, ej_kind kind) { return value && value->kind == kind; }

ej_str ej_string_of(const ej_value *value) {
    return ej_is(value, EJ_STRING) ? value->text : (ej_str){0, 0};
}

ej_value *ej_get(const ej_value *object, const char *name) {
    if (!ej_is(object, EJ_OBJECT)) return NULL;
    ej_str key = ej_cstr(name);
    ej_value *found = NULL;
    for (ej_value *m = object->first; m; m = m->next)
        if (ej_str_eq(m->key, key)) found = m;
    return found;
}

ej_value *ej_at(const ej_value *array, size_t index) {
    if (!ej_is(array, EJ_ARRAY)) return NULL;
    ej_value *e = array->first;
    while (e && index--) e = e->next;
    return e;
}

ej_value *ej_path(const ej_value *root, const char *path) {
    ej_value *v = (ej_value *)root;
    char segment[64];
    while (v && *path) {
        size_t n = 0;
        bool digits = true;
        while (*path && *path != '.') {
            if (n + 1 >= sizeof segment) return NULL;
            digits = digits && *path >= '0' && *path <= '9';
            segment[n++] = *path++;
        }
        segment[n] = 0;
        if (*path == '.') path++;
        if (digits && n > 0 && v->kind == EJ_ARRAY) {
            size_t index = 0;
            for (size_t i = 0; i < n; i++) index = index * 10 + (size_t)(segment[i] - '0');
            v = ej_at(v, index);
        } else {
            v = ej_get(v, segment);
        }
    }
    return v;
}

void ej_set(ej_value *object, const char *name, ej_value *value) {
    if (!ej_is(object, EJ_OBJECT)) edge_fail("ej_set: not an object");
    ej_str key = ej_cstr(name);
    value->key = key;
    ej_value *prev = NULL, *found = NULL, *found_prev = NULL;
    for (ej_value *m = object->first; m; prev = m, m = m->next) {
        if (ej_str_eq(m->key, key)) {
            found = m;
            found_prev = prev;
        }
    }
    if (!found) {
        link_child(object, value);
        return;
    }
    value->next = found->next;
    if (found_prev) {
        found_prev->next = value;
    } else {
        object->first = value;
    }
    if (object->last == found) object->last = value;
}

bool ej_remove(ej_value *object, const char *name) {
    if (!ej_is(object, EJ_OBJECT)) return false;
    ej_str key = ej_cstr(name);
    bool removed = false;
    ej_value *prev = NULL;
    for (ej_value *m = object->first; m; m = m->next) {
        if (!ej_str_eq(m->key, key)) {
            prev = m;
            continue;
        }
        removed = true;
        if (prev) {
            prev->next = m->next;
        } else {
            object->first = m->next;
        }
        if (object->last == m) object->last = prev;
    }
    return removed;
}

void ej_append(ej_value *array, ej_value *value) {
    if (!ej_is(array, EJ_ARRAY)) edge_fail("ej_append: not an array");
    value->key = (ej_str){0, 0};
    link_child(array, value);
}

/* ---- writer ---------------------------------------------------------------------------- */

/* Two passes over the tree: the first (out == NULL) only counts, so the second writes into a
 * buffer of exactly the right size -- no reallocation in a bump heap. */
typedef struct {
    char *out;
    size_t n;
} ej_writer;

static void put(ej_writer *w, char c) {
    if (w->out) w->out[w->n] = c;
    w->n++;
}

static void put_raw(ej_writer *w, ej_str s) {
    for (size_t i = 0; i < s.len; i++) put(w, s.ptr[i]);
}

static void put_u_escape(ej_writer *w, uint32_t unit) {
    static const char hex[] = "0123456789abcdef";
    put(w, '\\');
    put(w, 'u');
    for (int shift = 12; shift >= 0; shift -= 4) put(w, hex[(unit >> shift) & 0xF]);
}

/* RFC 8259 §7: quotation mark, reverse solidus and the control characters must be escaped. */
static void put_string(ej_writer *w, ej_str s) {
    const unsigned char *p = (const unsigned char *)s.ptr;
    put(w, '"');
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = p[i];
        switch (c) {
        case '"': put(w, '\\'); put(w, '"'); continue;
        case '\\': put(w, '\\'); put(w, '\\'); continue;
        case '\b': put(w, '\\'); put(w, 'b'); continue;
        case '\f': put(w, '\\'); put(w, 'f'); continue;
        case '\n': put(w, '\\'); put(w, 'n'); continue;
        case '\r': put(w, '\\'); put(w, 'r'); continue;
        case '\t': put(w, '\\'); put(w, 't'); continue;
        default: break;
        }
        if (c < 0x20) {
            put_u_escape(w, c);
        } else if (c == 0xED && i + 2 < s.len && (p[i + 1] & 0xE0) == 0xA0) {
            /* A lone surrogate kept from the input (WTF-8): give it back as \uDXXX. */
            put_u_escape(w, ((uint32_t)(c & 0x0F) << 12) | ((uint32_t)(p[i + 1] & 0x3F) << 6) |
                                (p[i + 2] & 0x3F));
            i += 2;
        } else {
            put(w, (char)c);
        }
    }
    put(w, '"');
}

static void put_value(ej_writer *w, const ej_value *v) {
    switch (v->kind) {
    case EJ_NULL: put_raw(w, ej_cstr("null")); return;
    case EJ_FALSE: put_raw(w, ej_cstr("false")); return;
    case EJ_TRUE: put_raw(w, ej_cstr("true")); return;
    case EJ_NUMBER: put_raw(w, v->text); return;
    case EJ_STRING: put_string(w, v->text); return;
    case EJ_ARRAY:
    case EJ_OBJECT: {
        bool is_object = v->kind == EJ_OBJECT;
        put(w, is_object ? '{' : '[');
        for (const ej_value *e = v->first; e; e = e->next) {
            if (e != v->first) put(w, ',');
            if (is_object) {
                put_string(w, e->key);
                put(w, ':');
            }
            put_value(w, e);
        }
        put(w, is_object ? '}' : ']');
        return;
    }
    }
}

ej_str ej_write(const ej_value *value) {
    ej_writer w = {0, 0};
    put_value(&w, value);
    size_t size = w.n;
    w = (ej_writer){edge_heap_alloc(size ? size : 1), 0};
    put_value(&w, value);
    return (ej_str){w.out, size};
}
