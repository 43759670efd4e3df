/*
 * fuzz/fuzz_embeddings.c - libFuzzer target for the embedding-reply decoder (src/embeddings.c), the
 * one JSON reader in gemini.core: core.decode_embeddings parses reply bodies from the network with it.
 *
 *   make fuzz        (tools/check/fuzz.sh), or by hand:
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Isrc fuzz/fuzz_embeddings.c src/embeddings.c -o fuzz_embeddings
 *   ./fuzz_embeddings -max_total_time=60 fuzz/corpus/embeddings
 *
 * fuzz-sources: src/embeddings.c
 *
 * The input is decoded from a copy with no terminating NUL (ASan flags any read past the end).
 * Invariants checked on success: every vector lies inside the value buffer, the batch range lies inside
 * the vector list, at least one of the two keys was seen, and every value is a finite float within
 * +-FLT_MAX. On failure the message is a terminated, non-empty string.
 */
#include <float.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "embeddings.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  gm_emb r;
  char *copy = (char *)malloc(size ? size : 1);
  size_t i;
  if (copy == NULL) return 0;
  if (size) memcpy(copy, data, size);
  if (gm_emb_decode(&r, copy, size) == 0) {
    if (!r.has_single && !r.has_batch) abort();
    if (r.nvals > r.capvals || r.nvecs > r.capvecs) abort();
    for (i = 0; i < r.nvecs; i++) {
      if (r.vecs[i].off > r.nvals || r.vecs[i].len > r.nvals - r.vecs[i].off) abort();
    }
    if (r.has_single && r.single >= r.nvecs) abort();
    if (r.has_batch && (r.batch_first > r.nvecs || r.batch_count > r.nvecs - r.batch_first)) abort();
    for (i = 0; i < r.nvals; i++) {
      float f = r.vals[i];
      if (!(f >= -FLT_MAX && f <= FLT_MAX)) abort();
    }
    if (r.nvals > size) abort();   /* each value takes at least one byte */
  } else {
    if (memchr(r.err, '\0', sizeof r.err) == NULL || r.err[0] == '\0') abort();
  }
  gm_emb_free(&r);
  free(copy);
  return 0;
}
