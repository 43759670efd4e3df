/*
 * headers.h - the HTTP status-line and header-line parser used by the transfer header callback.
 *
 * Pure C: no Lua, no libcurl, so it can be fuzzed on its own (fuzz/fuzz_headers.c). It is fed one
 * line at a time, exactly as libcurl's CURLOPT_HEADERFUNCTION delivers them, and stores what it
 * keeps in memory it owns (one byte buffer plus an array of offsets), reused across transfers.
 */
#ifndef GEMINI_HEADERS_H
#define GEMINI_HEADERS_H

#include <stddef.h>

#define GM_HDR_OK      0
#define GM_HDR_TOOBIG  1   /* storing the line would exceed the limit */
#define GM_HDR_NOMEM   2

typedef struct gm_header_ent {
  size_t name, name_len;     /* offsets into gm_headers.buf; name is lowercased */
  size_t value, value_len;   /* value without surrounding whitespace */
} gm_header_ent;

typedef struct gm_headers {
  char *buf;                 /* names and values, back to back */
  size_t len, cap;
  gm_header_ent *ents;
  size_t n, ncap;
  size_t limit;              /* maximum bytes kept in buf for one response */
  int status;                /* last status code seen (0: none yet) */
  int version;               /* 10, 11, 20, 30 (0: none yet) */
  int ended;                 /* the blank line that ends the header block was seen */
} gm_headers;

void gm_headers_init(gm_headers *h, size_t limit);
/* Forget the contents, keep the memory (for reuse by the next transfer). */
void gm_headers_clear(gm_headers *h);
void gm_headers_free(gm_headers *h);

/*
 * Parse one line (with or without its CRLF). A status line ("HTTP/1.1 200 OK", "HTTP/2 404")
 * starts a new response: earlier headers (an interim 1xx, a proxy's CONNECT reply) are dropped.
 * "Name: value" is stored with the name lowercased; a line starting with SP/HT continues the
 * previous value (obsolete folding). Malformed lines are ignored. Returns GM_HDR_*.
 */
int gm_headers_feed(gm_headers *h, const char *line, size_t len);

/* Parse a status line. Returns 1 and sets *version (10, 11, 20, 30...) and *status, or 0. */
int gm_parse_status_line(const char *line, size_t len, int *version, int *status);

#endif
