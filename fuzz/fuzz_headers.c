/*
 * fuzz/fuzz_headers.c - libFuzzer target for the status-line and header parser (src/headers.c),
 * the only C in gemini.core that parses bytes from the network (libcurl parses the rest).
 *
 *   make fuzz        (tools/check/fuzz.sh), or by hand:
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Isrc fuzz/fuzz_headers.c src/headers.c -o fuzz_headers
 *   ./fuzz_headers -max_total_time=60 fuzz/corpus/headers
 *
 * The input is split into lines the way libcurl's header callback delivers them (each line with
 * its LF). Invariants checked: every stored entry lies inside the buffer, names are lowercase
 * token characters, the buffer never exceeds the limit, and the status, when set, is 100..999.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "headers.h"

#define LIMIT 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const gm_headers *h) {
  size_t i, k;
  if (h->len > h->limit || h->len > h->cap) abort();
  if (h->status != 0 && (h->status < 100 || h->status > 999)) abort();
  for (i = 0; i < h->n; i++) {
    const gm_header_ent *e = &h->ents[i];
    if (e->name_len == 0) abort();
    if (e->name + e->name_len > h->len || e->value + e->value_len > h->len) abort();
    for (k = 0; k < e->name_len; k++) {
      char c = h->buf[e->name + k];
      if (c >= 'A' && c <= 'Z') abort();
      if (c == ':' || c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\0') abort();
    }
    for (k = 0; k < e->value_len; k++) {
      char c = h->buf[e->value + k];
      if (c == '\r' || c == '\n' || c == '\0') abort();
    }
    if (e->value_len > 0) {
      char first = h->buf[e->value], last = h->buf[e->value + e->value_len - 1];
      if (first == ' ' || first == '\t' || last == ' ' || last == '\t' || last == '\n' || last == '\r') abort();
    }
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  gm_headers h;
  size_t start = 0, i;
  int version, status;
  gm_headers_init(&h, LIMIT);
  for (i = 0; i <= size; i++) {
    if (i == size || data[i] == '\n') {
      size_t end = i < size ? i + 1 : i;
      if (end > start) {
        /* copy so ASan catches reads past the line, as libcurl's buffer would not be ours */
        char *line = (char *)malloc(end - start);
        if (line == NULL) break;
        memcpy(line, data + start, end - start);
        (void)gm_parse_status_line(line, end - start, &version, &status);
        (void)gm_headers_feed(&h, line, end - start);
        free(line);
        check(&h);
      }
      start = end;
    }
  }
  gm_headers_clear(&h);
  check(&h);
  gm_headers_free(&h);
  return 0;
}
