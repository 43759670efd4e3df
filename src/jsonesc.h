/*
 * jsonesc.h - the pieces of JSON string escapes shared by the two readers in gemini.core
 * (embeddings.c, pure C, and jsondec.c, into Lua values).
 */
#ifndef GEMINI_JSONESC_H
#define GEMINI_JSONESC_H

/* The value of one hex digit, or -1. */
static inline int gm_json_hexval(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
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
