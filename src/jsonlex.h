/*
 * jsonlex.h - the lexical pieces shared by the two JSON readers in gemini.core (embeddings.c, pure C,
 * and jsondec.c, into Lua values): whitespace, digits, and string escapes.
 */
#ifndef GEMINI_JSONLEX_H
#define GEMINI_JSONLEX_H

#include <stddef.h>

/* The first byte at or after p (up to end) that is not JSON whitespace. */
static inline const char *gm_json_ws(const char *p, const char *end) {
  while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')) p++;
  return p;
}

static inline int gm_json_isdigit(int c) { return (unsigned)(c - '0') < 10u; }

/* The value of one hex digit, or -1. */
static inline int gm_json_hexval(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* The four hex digits of a \uXXXX escape at s (the caller made sure four bytes are there): 1 and *out,
   or 0 when one is not a hex digit. */
static inline int gm_json_hex4(const char *s, unsigned *out) {
  unsigned v = 0;
  int i;
  for (i = 0; i < 4; i++) {
    int h = gm_json_hexval((unsigned char)s[i]);
    if (h < 0) return 0;
    v = v * 16 + (unsigned)h;
  }
  *out = v;
  return 1;
}

/* The byte a one-letter escape stands for (the letter after the backslash), or -1 for any other
   letter ('u' included: the caller reads its four hex digits). */
static inline int gm_json_escape_byte(int c) {
  switch (c) {
    case '"': case '\\': case '/': return c;
    case 'b': return '\b';
    case 'f': return '\f';
    case 'n': return '\n';
    case 'r': return '\r';
    case 't': return '\t';
    default: return -1;
  }
}

#endif
