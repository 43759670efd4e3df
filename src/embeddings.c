/*
 * embeddings.c - the embedding-reply decoder declared in embeddings.h: a hand-written recursive
 * descent over exactly two shapes, numbers straight into a float32 buffer. Pure C (no Lua, no libm).
 *
 * Robustness: every read is bounds-checked against n; recursion happens only when skipping unknown
 * values and is capped at GM_EMB_MAX_DEPTH; buffer growth is overflow-checked; a number's exponent
 * and digit counts saturate, so no input overflows an integer; numbers outside the float32 range are
 * an error (never a float conversion out of range).
 */
#include <float.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "embeddings.h"
#include "jsonlex.h"

typedef struct P {
  const char *s;
  size_t n, i;
  gm_emb *r;
} P;

#define EXP_LIMIT 1000000L   /* saturation for decimal exponents: far beyond any float */
#define KEY_CAP 16           /* keys are compared only when this short (ours: "value", "embedding(s)") */

static int fail(P *p, const char *what) {
  snprintf(p->r->err, sizeof p->r->err, "%s at byte %lu", what, (unsigned long)p->i);
  return -1;
}

static void ws(P *p) {
  p->i = (size_t)(gm_json_ws(p->s + p->i, p->s + p->n) - p->s);
}

static int peek(P *p) {
  return p->i < p->n ? (unsigned char)p->s[p->i] : -1;
}

static int expect(P *p, char c, const char *what) {
  if (p->i >= p->n || p->s[p->i] != c) return fail(p, what);
  p->i++;
  return 0;
}


/* Up to `room` digits at *qp into *m (no more than end); returns how many were taken. */
static int digits(const char **qp, const char *end, uint64_t *m, int room) {
  const char *q = *qp, *lim = end - q > room ? q + room : end;
  uint64_t v = *m;
  unsigned d;
  while (q < lim && (d = (unsigned)(unsigned char)*q - '0') < 10u) { v = v * 10 + d; q++; }
  room = (int)(q - *qp);
  *qp = q;
  *m = v;
  return room;
}

/* Makes room for one more element in the array *buf of *cap elements of `size` bytes, holding `used`:
 * starts at `first` elements and doubles, with the multiplication checked for overflow. */
static int grow(P *p, void **buf, size_t *cap, size_t used, size_t size, size_t first) {
  size_t nc;
  void *nb;
  if (used < *cap) return 0;
  nc = *cap ? *cap : first;
  if (*cap) {
    if (nc > SIZE_MAX / 2 / size) return fail(p, "out of memory");
    nc *= 2;
  }
  nb = realloc(*buf, nc * size);
  if (nb == NULL) return fail(p, "out of memory");
  *buf = nb;
  *cap = nc;
  return 0;
}

static int push_val(P *p, float f) {
  gm_emb *r = p->r;
  void *buf = r->vals;
  if (grow(p, &buf, &r->capvals, r->nvals, sizeof(float), 1024) != 0) return -1;
  r->vals = (float *)buf;
  r->vals[r->nvals++] = f;
  return 0;
}

static int push_vec(P *p, size_t off, size_t len, size_t *index) {
  gm_emb *r = p->r;
  void *buf = r->vecs;
  if (grow(p, &buf, &r->capvecs, r->nvecs, sizeof(gm_emb_vec), 16) != 0) return -1;
  r->vecs = (gm_emb_vec *)buf;
  r->vecs[r->nvecs].off = off;
  r->vecs[r->nvecs].len = len;
  *index = r->nvecs++;
  return 0;
}

static int hex4(P *p, unsigned *out) {
  if (p->n - p->i < 4) return fail(p, "a short \\u escape");
  if (!gm_json_hex4(p->s + p->i, out)) return fail(p, "a bad \\u escape");
  p->i += 4;
  return 0;
}

/* A JSON string at p->i. With key != NULL, its decoded bytes when they are at most KEY_CAP ASCII
 * characters (*klen), else *klen = (size_t)-1 (it matches none of our keys). */
static int string(P *p, char *key, size_t *klen) {
  size_t k = 0;
  int fits = 1;
  if (expect(p, '"', "a string expected") != 0) return -1;
  for (;;) {
    unsigned c;
    if (p->i >= p->n) return fail(p, "an unterminated string");
    c = (unsigned char)p->s[p->i];
    if (c == '"') { p->i++; break; }
    if (c < 0x20) return fail(p, "a control character in a string");
    p->i++;
    if (c == '\\') {
      if (p->i >= p->n) return fail(p, "an unterminated string");
      c = (unsigned char)p->s[p->i++];
      if (c != 'u') {
        int e = gm_json_escape_byte((int)c);
        if (e < 0) {
          p->i--;
          return fail(p, "a bad escape");
        }
        c = (unsigned)e;
      } else {
        if (hex4(p, &c) != 0) return -1;
        if (c >= 0xDC00 && c <= 0xDFFF) return fail(p, "a lone low surrogate");
        if (c >= 0xD800 && c <= 0xDBFF) {
          unsigned lo;
          if (p->n - p->i < 2 || p->s[p->i] != '\\' || p->s[p->i + 1] != 'u')
            return fail(p, "a lone high surrogate");
          p->i += 2;
          if (hex4(p, &lo) != 0) return -1;
          if (lo < 0xDC00 || lo > 0xDFFF) return fail(p, "a lone high surrogate");
          c = 0x10000;   /* non-ASCII: matches no key */
        }
      }
    }
    if (key != NULL) {
      if (fits && c < 0x80 && k < KEY_CAP) key[k++] = (char)c;
      else fits = 0;
    }
  }
  if (key != NULL) *klen = fits ? k : (size_t)-1;
  return 0;
}

static int keyis(const char *key, size_t klen, const char *want) {
  size_t n = strlen(want);
  return klen == n && memcmp(key, want, n) == 0;
}

static const double P10[] = {
  1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
  1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22
};

/* A JSON number at p->i (strict grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?).
 * With out != NULL its float32 value; an error when |x| > FLT_MAX. The hot path of the decoder:
 * local pointers only, no per-digit saturation (digit counts are bounded where they matter). */
static int number(P *p, float *out) {
  const char *q = p->s + p->i, *end = p->s + p->n, *start;
  int neg = 0, nsig = 0, k;
  uint64_t m = 0;
  long e10 = 0;
  if (q < end && *q == '-') { neg = 1; q++; }
  if (q >= end || !gm_json_isdigit((unsigned char)*q)) {
    p->i = (size_t)(q - p->s);
    return fail(p, "a digit expected");
  }
  if (*q == '0') {
    q++;
  } else {
    nsig = digits(&q, end, &m, 19);
    start = q;
    while (q < end && gm_json_isdigit((unsigned char)*q)) q++;   /* dropped integer digits scale by 10 each */
    e10 = q - start > EXP_LIMIT ? EXP_LIMIT : (long)(q - start);
  }
  if (q < end && *q == '.') {
    q++;
    if (q >= end || !gm_json_isdigit((unsigned char)*q)) {
      p->i = (size_t)(q - p->s);
      return fail(p, "a digit expected after '.'");
    }
    if (m == 0) {                                      /* leading zeros of a fraction are not significant */
      start = q;
      while (q < end && *q == '0') q++;
      e10 -= q - start > EXP_LIMIT ? EXP_LIMIT : (long)(q - start);
    }
    k = digits(&q, end, &m, 19 - nsig);
    nsig += k;
    e10 -= k;
    while (q < end && gm_json_isdigit((unsigned char)*q)) q++;   /* further fraction digits are below precision */
  }
  if (q < end && (*q == 'e' || *q == 'E')) {
    int eneg = 0;
    long ex = 0;
    q++;
    if (q < end && (*q == '+' || *q == '-')) { eneg = *q == '-'; q++; }
    if (q >= end || !gm_json_isdigit((unsigned char)*q)) {
      p->i = (size_t)(q - p->s);
      return fail(p, "a digit expected in an exponent");
    }
    while (q < end && gm_json_isdigit((unsigned char)*q)) {
      if (ex < EXP_LIMIT) ex = ex * 10 + (*q - '0');
      q++;
    }
    e10 += eneg ? -ex : ex;
  }
  if (out != NULL) {
    double v;
    if (m == 0) {
      v = 0;
    } else if (m <= ((uint64_t)1 << 53) && e10 >= -22 && e10 <= 22) {
      v = e10 < 0 ? (double)m / P10[-e10] : (double)m * P10[e10];    /* exact inputs, one rounding */
    } else {
      long mag = (long)nsig - 1 + e10;              /* 10^mag <= value < 10^(mag+1) */
      if (mag > 38) return fail(p, "a number out of the float32 range");
      if (mag < -47) {
        v = 0;                                      /* below half the smallest subnormal float */
      } else {
        long double x = (long double)m, b = 10;
        long k = e10 < 0 ? -e10 : e10;              /* |e10| <= 66 here */
        long double pw = 1;
        while (k > 0) { if (k & 1) pw *= b; b *= b; k >>= 1; }
        x = e10 < 0 ? x / pw : x * pw;
        v = (double)x;
      }
    }
    if (v > FLT_MAX) return fail(p, "a number out of the float32 range");
    *out = (float)(neg ? -v : v);
  }
  p->i = (size_t)(q - p->s);
  return 0;
}

static int literal(P *p, const char *word) {
  size_t n = strlen(word);
  if (p->n - p->i < n || memcmp(p->s + p->i, word, n) != 0) return fail(p, "a value expected");
  p->i += n;
  return 0;
}

/* After an item of an array or a member of an object: 1 at ',' (consumed, then blanks), 0 at `close`
   (consumed), -1 (failed) at anything else. */
static int next_item(P *p, int close) {
  int c;
  ws(p);
  c = peek(p);
  if (c == ',') { p->i++; ws(p); return 1; }
  if (c == close) { p->i++; return 0; }
  return fail(p, close == '}' ? "',' or '}' expected" : "',' or ']' expected");
}

/* An object member's key and its ':' (key NULL: not kept), with the blanks around them. */
static int member_key(P *p, char *key, size_t *klen) {
  if (string(p, key, klen) != 0) return -1;
  ws(p);
  if (expect(p, ':', "':' expected") != 0) return -1;
  ws(p);
  return 0;
}

/* Skips one well-formed JSON value; depth counts the enclosing containers. */
static int skip_value(P *p, int depth) {
  int c = peek(p);
  if (c == '{' || c == '[') {
    int close = c == '{' ? '}' : ']';
    if (depth >= GM_EMB_MAX_DEPTH) return fail(p, "values nested too deep");
    p->i++;
    ws(p);
    if (peek(p) == close) { p->i++; return 0; }
    for (;;) {
      int more;
      if (close == '}' && member_key(p, NULL, NULL) != 0) return -1;
      if (skip_value(p, depth + 1) != 0) return -1;
      more = next_item(p, close);
      if (more <= 0) return more;
    }
  }
  if (c == '"') return string(p, NULL, NULL);
  if (c == '-' || gm_json_isdigit(c)) return number(p, NULL);
  if (c == 't') return literal(p, "true");
  if (c == 'f') return literal(p, "false");
  if (c == 'n') return literal(p, "null");
  return fail(p, "a value expected");
}

/* [n, ...] into vals, at *off, *len values. */
static int float_array(P *p, size_t *off, size_t *len) {
  float f;
  if (expect(p, '[', "an array of numbers expected") != 0) return -1;
  *off = p->r->nvals;
  ws(p);
  if (peek(p) == ']') { p->i++; *len = 0; return 0; }
  for (;;) {
    int c = peek(p), more;
    if (c != '-' && !gm_json_isdigit(c)) return fail(p, "a number expected");
    if (number(p, &f) != 0 || push_val(p, f) != 0) return -1;
    more = next_item(p, ']');
    if (more < 0) return -1;
    if (more == 0) break;
  }
  *len = p->r->nvals - *off;
  return 0;
}

/* {"value": [...], unknown keys...} -> one vector; *index is its place in vecs. */
static int embedding(P *p, int depth, size_t *index) {
  char key[KEY_CAP];
  size_t klen, off = 0, len = 0;
  int have = 0;
  if (expect(p, '{', "an embedding object expected") != 0) return -1;
  ws(p);
  if (peek(p) == '}') {
    p->i++;
  } else {
    for (;;) {
      int more;
      if (member_key(p, key, &klen) != 0) return -1;
      if (keyis(key, klen, "value")) {
        if (have) return fail(p, "a duplicate \"value\"");
        if (float_array(p, &off, &len) != 0) return -1;
        have = 1;
      } else if (skip_value(p, depth + 1) != 0) {
        return -1;
      }
      more = next_item(p, '}');
      if (more < 0) return -1;
      if (more == 0) break;
    }
  }
  if (!have) return fail(p, "an embedding without \"value\"");
  return push_vec(p, off, len, index);
}

static int top(P *p) {
  gm_emb *r = p->r;
  char key[KEY_CAP];
  size_t klen;
  ws(p);
  if (expect(p, '{', "a JSON object expected") != 0) return -1;
  ws(p);
  if (peek(p) == '}') {
    p->i++;
  } else {
    for (;;) {
      int more;
      if (member_key(p, key, &klen) != 0) return -1;
      if (keyis(key, klen, "embedding")) {
        if (r->has_single) return fail(p, "a duplicate \"embedding\"");
        if (embedding(p, 1, &r->single) != 0) return -1;
        r->has_single = 1;
      } else if (keyis(key, klen, "embeddings")) {
        size_t idx;
        if (r->has_batch) return fail(p, "a duplicate \"embeddings\"");
        if (expect(p, '[', "an array of embeddings expected") != 0) return -1;
        r->batch_first = r->nvecs;
        ws(p);
        if (peek(p) == ']') {
          p->i++;
        } else {
          do {
            if (embedding(p, 2, &idx) != 0) return -1;
            more = next_item(p, ']');
          } while (more > 0);
          if (more < 0) return -1;
        }
        r->batch_count = r->nvecs - r->batch_first;
        r->has_batch = 1;
      } else if (skip_value(p, 1) != 0) {
        return -1;
      }
      more = next_item(p, '}');
      if (more < 0) return -1;
      if (more == 0) break;
    }
  }
  ws(p);
  if (p->i != p->n) return fail(p, "bytes after the JSON object");
  if (!r->has_single && !r->has_batch) return fail(p, "neither \"embedding\" nor \"embeddings\"");
  return 0;
}

int gm_emb_decode(gm_emb *r, const char *s, size_t n) {
  P p;
  memset(r, 0, sizeof *r);
  p.s = s;
  p.n = n;
  p.i = 0;
  p.r = r;
  if (s == NULL) { r->err[0] = '\0'; return fail(&p, "no input"); }
  return top(&p);
}

void gm_emb_free(gm_emb *r) {
  free(r->vals);
  free(r->vecs);
  r->vals = NULL;
  r->vecs = NULL;
  r->nvals = r->capvals = r->nvecs = r->capvecs = 0;
}
