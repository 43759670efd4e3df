/*
 * headers.c - HTTP status-line and header-line parser (see headers.h). No Lua, no libcurl.
 */
#include <stdlib.h>
#include <string.h>

#include "headers.h"

#define GM_HDR_MAX_ENTRIES 4096

void gm_headers_init(gm_headers *h, size_t limit) {
  memset(h, 0, sizeof *h);
  h->limit = limit;
}

void gm_headers_clear(gm_headers *h) {
  h->len = 0;
  h->n = 0;
  h->status = 0;
  h->version = 0;
  h->ended = 0;
}

void gm_headers_free(gm_headers *h) {
  free(h->buf);
  free(h->ents);
  h->buf = NULL;
  h->ents = NULL;
  h->len = h->cap = h->n = h->ncap = 0;
}

static int is_digit(char c) { return c >= '0' && c <= '9'; }
static int is_ows(char c) { return c == ' ' || c == '\t'; }
/* Trimmed around values; inside a value, CR, LF and NUL are replaced by SP (RFC 9110 5.5). */
static int is_blank(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\0'; }

static void copy_value(char *dst, const char *src, size_t n) {
  size_t i;
  for (i = 0; i < n; i++) {
    char c = src[i];
    dst[i] = (c == '\r' || c == '\n' || c == '\0') ? ' ' : c;
  }
}

/* A header-name character: RFC 9110 tchar. */
static int is_tchar(unsigned char c) {
  if (c >= 'a' && c <= 'z') return 1;
  if (c >= 'A' && c <= 'Z') return 1;
  if (c >= '0' && c <= '9') return 1;
  return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static size_t strip_eol(const char *line, size_t len) {
  while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) len--;
  return len;
}

int gm_parse_status_line(const char *line, size_t len, int *version, int *status) {
  size_t i;
  int major, minor = 0, code;
  len = strip_eol(line, len);
  if (len < 5 || memcmp(line, "HTTP/", 5) != 0) return 0;
  i = 5;
  if (i >= len || !is_digit(line[i])) return 0;
  major = line[i++] - '0';
  if (i < len && line[i] == '.') {
    i++;
    if (i >= len || !is_digit(line[i])) return 0;
    minor = line[i++] - '0';
  }
  if (i >= len || line[i] != ' ') return 0;
  while (i < len && line[i] == ' ') i++;
  if (i + 3 > len || !is_digit(line[i]) || !is_digit(line[i + 1]) || !is_digit(line[i + 2])) return 0;
  code = (line[i] - '0') * 100 + (line[i + 1] - '0') * 10 + (line[i + 2] - '0');
  i += 3;
  if (i < len && line[i] != ' ') return 0;   /* "HTTP/1.1 2000" is not a status line */
  if (code < 100) return 0;
  *version = major * 10 + minor;
  *status = code;
  return 1;
}

static int reserve(gm_headers *h, size_t extra) {
  size_t need, ncap;
  char *nb;
  if (extra > h->limit || h->len > h->limit - extra) return GM_HDR_TOOBIG;
  need = h->len + extra;
  if (need <= h->cap) return GM_HDR_OK;
  ncap = h->cap ? h->cap : 256;
  while (ncap < need) ncap *= 2;
  nb = (char *)realloc(h->buf, ncap);
  if (nb == NULL) return GM_HDR_NOMEM;
  h->buf = nb;
  h->cap = ncap;
  return GM_HDR_OK;
}

int gm_headers_feed(gm_headers *h, const char *line, size_t len) {
  size_t colon, ns, ne, vs, ve, k;
  int version, status, rc;
  gm_header_ent *e;

  len = strip_eol(line, len);
  if (gm_parse_status_line(line, len, &version, &status)) {
    gm_headers_clear(h);
    h->version = version;
    h->status = status;
    return GM_HDR_OK;
  }
  if (len == 0) {
    h->ended = 1;
    return GM_HDR_OK;
  }
  if (is_ows(line[0])) {
    /* obsolete line folding: append to the previous value, which ends the buffer */
    if (h->n == 0) return GM_HDR_OK;
    vs = 0;
    ve = len;
    while (vs < ve && is_blank(line[vs])) vs++;
    while (ve > vs && is_blank(line[ve - 1])) ve--;
    if (vs == ve) return GM_HDR_OK;
    rc = reserve(h, ve - vs + 1);
    if (rc != GM_HDR_OK) return rc;
    e = &h->ents[h->n - 1];
    if (e->value_len > 0) h->buf[h->len++] = ' ';
    copy_value(h->buf + h->len, line + vs, ve - vs);
    h->len += ve - vs;
    e->value_len = h->len - e->value;
    return GM_HDR_OK;
  }
  for (colon = 0; colon < len && line[colon] != ':'; colon++) {
    if (!is_tchar((unsigned char)line[colon])) return GM_HDR_OK;   /* not a header line */
  }
  if (colon == len || colon == 0) return GM_HDR_OK;
  ns = 0;
  ne = colon;
  vs = colon + 1;
  ve = len;
  while (vs < ve && is_blank(line[vs])) vs++;
  while (ve > vs && is_blank(line[ve - 1])) ve--;

  if (h->n >= GM_HDR_MAX_ENTRIES) return GM_HDR_TOOBIG;
  if (h->n == h->ncap) {
    size_t nc = h->ncap ? h->ncap * 2 : 16;
    gm_header_ent *ne2 = (gm_header_ent *)realloc(h->ents, nc * sizeof *ne2);
    if (ne2 == NULL) return GM_HDR_NOMEM;
    h->ents = ne2;
    h->ncap = nc;
  }
  rc = reserve(h, (ne - ns) + (ve - vs));
  if (rc != GM_HDR_OK) return rc;
  e = &h->ents[h->n++];
  e->name = h->len;
  e->name_len = ne - ns;
  for (k = ns; k < ne; k++) {
    char c = line[k];
    if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
    h->buf[h->len++] = c;
  }
  e->value = h->len;
  e->value_len = ve - vs;
  if (ve > vs) copy_value(h->buf + h->len, line + vs, ve - vs);
  h->len += ve - vs;
  return GM_HDR_OK;
}
