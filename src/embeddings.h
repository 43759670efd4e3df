/*
 * embeddings.h - a narrowly scoped JSON decoder for the two embedding replies of the API, straight
 * into float32 arrays (pure C, no Lua; fuzzed by fuzz/fuzz_embeddings.c). The one exception to
 * "the C core never reads JSON" (HACKING.md): gemini.core's decode_embeddings (vector.c) uses it.
 *
 * Accepted, and nothing else (any other input is an error, so the caller falls back to a general
 * JSON decoder):
 *   {"embedding": {"value": [n, ...]}}                  (EmbedTextResponse)
 *   {"embeddings": [{"value": [n, ...]}, ...]}          (BatchEmbedTextResponse)
 * JSON whitespace anywhere, keys in any order, unknown keys (at either object level) skipped when
 * their value is well-formed JSON nested at most GM_EMB_MAX_DEPTH deep. Numbers follow the strict
 * JSON grammar and must fit a float32 (|x| <= FLT_MAX; tinier values round to 0 or a subnormal).
 * Duplicate known keys, a missing "value", null, or trailing bytes are errors.
 */
#ifndef GEMINI_EMBEDDINGS_H
#define GEMINI_EMBEDDINGS_H

#include <stddef.h>

#define GM_EMB_MAX_DEPTH 64

typedef struct gm_emb_vec {
  size_t off, len;          /* vals[off .. off+len-1] */
} gm_emb_vec;

typedef struct gm_emb {
  float *vals;       size_t nvals, capvals;
  gm_emb_vec *vecs;  size_t nvecs, capvecs;
  int has_single;           /* "embedding" was present: its vector is vecs[single] */
  size_t single;
  int has_batch;            /* "embeddings" was present: vecs[batch_first .. batch_first+batch_count-1] */
  size_t batch_first, batch_count;
  char err[96];             /* on failure: what was wrong, and the byte offset */
} gm_emb;

/* Parses s[0..n-1]. Returns 0 on success, -1 on failure (r->err set). Either way the caller calls
 * gm_emb_free(r) afterwards. r needs no initialisation. */
int gm_emb_decode(gm_emb *r, const char *s, size_t n);
void gm_emb_free(gm_emb *r);

#endif
