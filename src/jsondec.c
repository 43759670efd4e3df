/*
 * jsondec.c - core.json_decode: a strict JSON reader that builds the same Lua values as gemini.json's
 * default codec (a private lua-cjson instance with decode_invalid_numbers off), faster, or says it is
 * not sure and leaves the text to cjson.
 *
 *   local v = core.json_decode(text, null)   -- the value, or nil: decode with cjson instead
 *
 * It accepts a subset of what cjson accepts and gives the same value for it: an object or array at the
 * top, strict JSON inside, numbers that convert exactly (below). Whatever else it meets (a syntax
 * error, a lone surrogate, a NUL byte, cjson's own leniencies such as `1.`, nesting deeper than
 * GM_JD_MAXDEPTH, a number outside the exact path) makes it answer nil, and the
 * caller's cjson.decode either decodes the text or names the error, exactly as before. So replies
 * decode to the same tables, and bad ones fail with the same messages, with or without this file.
 *
 * Values as cjson makes them: objects and arrays are tables filled with rawset/rawseti in document
 * order (a repeated key: the last one wins; arrays are made at their final size, see JD_BATCH), every
 * number is a Lua float (cjson pushes lua_Number),
 * null is the `null` argument, strings are the bytes between the quotes with escapes decoded (\uXXXX
 * and surrogate pairs to UTF-8; other bytes, raw control characters included, pass through unchecked,
 * as in cjson).
 *
 * Numbers: cjson converts with strtod (correctly rounded). Here a number with at most 19 significant
 * digits m and a decimal exponent e is converted as m * 10^e or m / 10^-e when m <= 2^53 and |e| <= 22:
 * both operands are exact doubles, so the one IEEE operation rounds correctly and the result is
 * strtod's (Clinger's fast path). Others (long mantissas, far exponents) go to cjson.
 *
 * Safety: no C allocation (escaped strings are built in a luaL_Buffer on the Lua stack), so a memory
 * error raised by Lua leaves nothing to free; every read is bounds-checked against the text's length;
 * recursion is capped at GM_JD_MAXDEPTH.
 */
#include <float.h>
#include <stdint.h>
#include <string.h>

#include "gemini.h"
#include "jsonlex.h"

#define GM_JD_MAXDEPTH 200   /* cjson allows 1000; deeper documents go to it */

/* The fast path needs double arithmetic without extended precision (x87 would round twice). */
#if defined(FLT_EVAL_METHOD) && FLT_EVAL_METHOD == 0
#define JD_EXACT_OPS 1
#else
#define JD_EXACT_OPS 0
#endif

typedef struct jd {
  lua_State *L;
  const char *end;
  int null_idx;
  int depth;
} jd;


static const double POW10[23] = { 1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                  1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22 };

static const char *value(jd *d, const char *p);

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? converted exactly, or NULL */
static const char *number(jd *d, const char *p) {
  const char *end = d->end;
  uint64_t m = 0;
  int nd = 0, neg = 0, e = 0;
  long x = 0;
  double v;
  if (*p == '-') {
    neg = 1;
    if (++p >= end) return NULL;
  }
  if (*p == '0') {
    p++;
    if (p < end && gm_json_isdigit(*p)) return NULL;   /* a leading zero: cjson names the error */
  } else if (gm_json_isdigit(*p)) {
    for (; p < end && gm_json_isdigit(*p); p++) {
      if (++nd > 19) return NULL;
      m = m * 10 + (uint64_t)(*p - '0');
    }
  } else {
    return NULL;
  }
  if (p < end && *p == '.') {
    if (++p >= end || !gm_json_isdigit(*p)) return NULL;   /* `1.` is cjson's leniency, not JSON */
    for (; p < end && gm_json_isdigit(*p); p++) {
      if (--e < -100000) return NULL;            /* (a fraction that long: far from the exact path) */
      if (m == 0 && *p == '0') continue;         /* leading zeros of a fraction carry no digit */
      if (++nd > 19) return NULL;
      m = m * 10 + (uint64_t)(*p - '0');
    }
  }
  if (p < end && (*p == 'e' || *p == 'E')) {
    int xneg = 0;
    if (++p < end && (*p == '+' || *p == '-')) xneg = *p++ == '-';
    if (p >= end || !gm_json_isdigit(*p)) return NULL;
    for (; p < end && gm_json_isdigit(*p); p++) {
      if (x < 100000) x = x * 10 + (*p - '0');   /* saturates; far exponents go to cjson */
    }
    if (xneg) x = -x;
  }
  if (m == 0) {
    v = 0.0;
  } else {
    long ex = (long)e + x;
    if (m > ((uint64_t)1 << 53) || ex < -22 || ex > 22) return NULL;
    if (!JD_EXACT_OPS && ex != 0) return NULL;
    v = (double)m;
    if (ex < 0) v /= POW10[-ex];
    else v *= POW10[ex];
  }
  lua_pushnumber(d->L, (lua_Number)(neg ? -v : v));
  return p;
}

static void add_utf8(luaL_Buffer *b, unsigned cp) {
  char u[4];
  size_t n;
  if (cp < 0x80) {
    u[0] = (char)cp;
    n = 1;
  } else if (cp < 0x800) {
    u[0] = (char)(0xC0 | (cp >> 6));
    u[1] = (char)(0x80 | (cp & 0x3F));
    n = 2;
  } else if (cp < 0x10000) {
    u[0] = (char)(0xE0 | (cp >> 12));
    u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    u[2] = (char)(0x80 | (cp & 0x3F));
    n = 3;
  } else {
    u[0] = (char)(0xF0 | (cp >> 18));
    u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    u[3] = (char)(0x80 | (cp & 0x3F));
    n = 4;
  }
  luaL_addlstring(b, u, n);
}

/* One escape after the backslash at p; returns the byte after it, or NULL. */
static const char *escape(jd *d, const char *p, luaL_Buffer *b) {
  const char *end = d->end;
  unsigned cp, lo;
  int c;
  if (++p >= end) return NULL;
  if (*p != 'u') {
    if ((c = gm_json_escape_byte((unsigned char)*p)) < 0) return NULL;
    luaL_addchar(b, (char)c);
    return p + 1;
  }
  if (end - p < 5 || !gm_json_hex4(p + 1, &cp)) return NULL;
  p += 5;
  if (cp >= 0xDC00 && cp <= 0xDFFF) return NULL;            /* a lone low surrogate */
  if (cp >= 0xD800 && cp <= 0xDBFF) {                       /* needs its low half next */
    if (end - p < 6 || p[0] != '\\' || p[1] != 'u' || !gm_json_hex4(p + 2, &lo) || lo < 0xDC00 || lo > 0xDFFF)
      return NULL;
    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
    p += 6;
  }
  add_utf8(b, cp);
  return p;
}

/* The string whose opening quote is at p, pushed; returns the byte after its closing quote, or NULL.
   Bytes other than the quote and the backslash pass through, raw control characters included, as in
   cjson (a NUL byte anywhere was refused up front: cjson stops at one). */
static const char *string(jd *d, const char *p) {
  const char *end = d->end, *s = ++p, *q, *bs;
  luaL_Buffer b;
  q = (const char *)memchr(p, '"', (size_t)(end - p));
  if (q == NULL) return NULL;
  bs = (const char *)memchr(p, '\\', (size_t)(q - p));
  if (bs == NULL) {
    lua_pushlstring(d->L, s, (size_t)(q - s));
    return q + 1;
  }
  luaL_buffinit(d->L, &b);
  for (;;) {
    luaL_addlstring(&b, s, (size_t)(bs - s));           /* the run before the backslash */
    if ((p = escape(d, bs, &b)) == NULL) return NULL;
    if (p >= end) return NULL;
    if (p > q && (q = (const char *)memchr(p, '"', (size_t)(end - p))) == NULL) return NULL;
    s = p;
    bs = (const char *)memchr(p, '\\', (size_t)(q - p));
    if (bs == NULL) break;
  }
  luaL_addlstring(&b, s, (size_t)(q - s));
  luaL_pushresult(&b);
  return q + 1;
}

/* Arrays are filled in batches: up to JD_BATCH items wait on the Lua stack above the array's slot, so the
   table is made with its final size when it has at most that many (no rehash while it grows); a longer one
   is made at the first batch's size and grows from there as cjson's arrays do. The stack is grown a few
   slots at a time (Lua 5.1 allows a C function 8000 in all): where it cannot grow, the reader declines.
   Objects are made as cjson makes them (an empty table, each pair set as it is read), so their keys come
   out of pairs() in the same order as from cjson's tables: the reply check names the first misfit it
   meets in that order, and its message must not depend on which decoder ran. */
#define JD_BATCH 1024

/* Moves the n values above slot t into t[first .. first+n-1], making the table at t when it is not yet. */
static void put_items(lua_State *L, int t, lua_Integer first, int n) {
  int i;
  if (lua_isnil(L, t)) {
    lua_createtable(L, n, 0);
    lua_replace(L, t);
  }
  for (i = n; i >= 1; i--) lua_rawseti(L, t, first + i - 1);
}

static const char *array(jd *d, const char *p) {
  lua_State *L = d->L;
  const char *end = d->end;
  lua_Integer done = 0;
  int t, n = 0;
  if (++d->depth > GM_JD_MAXDEPTH || !lua_checkstack(L, 4)) return NULL;
  lua_pushnil(L);                       /* the slot of the table */
  t = lua_gettop(L);
  p = gm_json_ws(p + 1, end);
  if (p < end && *p == ']') {
    lua_newtable(L);
    lua_replace(L, t);
    d->depth--;
    return p + 1;
  }
  for (;;) {
    if (!lua_checkstack(L, 4) || (p = value(d, p)) == NULL) return NULL;
    if (++n == JD_BATCH) {
      put_items(L, t, done + 1, n);
      done += n;
      n = 0;
    }
    p = gm_json_ws(p, end);
    if (p >= end) return NULL;
    if (*p == ']') break;
    if (*p != ',') return NULL;
    p = gm_json_ws(p + 1, end);
  }
  put_items(L, t, done + 1, n);
  d->depth--;
  return p + 1;
}

static const char *object(jd *d, const char *p) {
  lua_State *L = d->L;
  const char *end = d->end;
  if (++d->depth > GM_JD_MAXDEPTH || !lua_checkstack(L, 4)) return NULL;
  lua_newtable(L);
  p = gm_json_ws(p + 1, end);
  if (p < end && *p == '}') {
    d->depth--;
    return p + 1;
  }
  for (;;) {
    if (p >= end || *p != '"' || (p = string(d, p)) == NULL) return NULL;
    p = gm_json_ws(p, end);
    if (p >= end || *p != ':') return NULL;
    if ((p = value(d, gm_json_ws(p + 1, end))) == NULL) return NULL;
    lua_rawset(L, -3);
    p = gm_json_ws(p, end);
    if (p >= end) return NULL;
    if (*p == '}') break;
    if (*p != ',') return NULL;
    p = gm_json_ws(p + 1, end);
  }
  d->depth--;
  return p + 1;
}

/* The value at p (whitespace already skipped), pushed; returns the byte after it, or NULL. */
static const char *value(jd *d, const char *p) {
  const char *end = d->end;
  if (p >= end) return NULL;
  switch (*p) {
    case '{': return object(d, p);
    case '[': return array(d, p);
    case '"': return string(d, p);
    case 't':
      if (end - p < 4 || memcmp(p, "true", 4) != 0) return NULL;
      lua_pushboolean(d->L, 1);
      return p + 4;
    case 'f':
      if (end - p < 5 || memcmp(p, "false", 5) != 0) return NULL;
      lua_pushboolean(d->L, 0);
      return p + 5;
    case 'n':
      if (end - p < 4 || memcmp(p, "null", 4) != 0) return NULL;
      lua_pushvalue(d->L, d->null_idx);
      return p + 4;
    default:
      return number(d, p);
  }
}

/*** @module gemini.core */

/***
 * Decode JSON text the way gemini.json's default codec (lua-cjson) would, or decline.
 * @function json_decode
 * @tparam string text JSON text
 * @param null the value JSON null decodes to (the codec's `null`)
 * @return the decoded object or array; nil when the text is not one this reader is sure of (decode it
 *   with cjson then: it returns the same value or names the error)
 */
int gm_l_json_decode(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n), *end = s + n, *p;
  jd d;
  luaL_checkany(L, 2);
  lua_settop(L, 2);
  d.L = L;
  d.end = end;
  d.null_idx = 2;
  d.depth = 0;
  p = gm_json_ws(s, end);
  if (memchr(s, '\0', n) == NULL && p < end && (*p == '{' || *p == '[') && (p = value(&d, p)) != NULL
      && gm_json_ws(p, end) == end)
    return 1;
  lua_settop(L, 2);
  lua_pushnil(L);
  return 1;
}
