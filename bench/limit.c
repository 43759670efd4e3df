/*
 * bench/limit.c -- the transport's limit: libcurl driven from C, no Lua at all.
 *
 * Sequential mode (--conc 1): ONE easy handle, reused for every request (keep-alive, one TLS session),
 * the same method, headers and body as the Lua contenders, and the whole response body copied into a
 * growing buffer (so "reading the body" costs what it costs any client).
 * Concurrent mode (--conc N): N reused easy handles on one multi handle, HTTP/2 multiplexing allowed,
 * a new request started on a handle as soon as its previous one completes.
 *
 * Every run is bounded: it stops after --n requests or --time seconds, whichever comes first, and prints
 *   RESULT n=<completed> secs=<elapsed> bytes=<last body size> http=<1.1|2> errors=<count>
 *
 * usage: limit --url URL [--data FILE] [--header "K: V"]... [--ca FILE] [--n N] [--time S] [--conc N]
 *              [--timing]   (also print the per-request transfer time of the last request)
 */
#define _POSIX_C_SOURCE 200809L
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_HEADERS 32
#define MAX_CONC 256

typedef struct {
  char *data;
  size_t len, cap;
} buf_t;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t on_write(char *ptr, size_t size, size_t nmemb, void *ud) {
  buf_t *b = ud;
  size_t n = size * nmemb;
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n + 1) cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p) return 0;
    b->data = p;
    b->cap = cap;
  }
  memcpy(b->data + b->len, ptr, n);
  b->len += n;
  b->data[b->len] = '\0';
  return n;
}

static char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *s = malloc((size_t)n + 1);
  if (!s) { fclose(f); return NULL; }
  if (fread(s, 1, (size_t)n, f) != (size_t)n) { free(s); fclose(f); return NULL; }
  s[n] = '\0';
  fclose(f);
  *len = (size_t)n;
  return s;
}

static const char *url, *ca_file;
static char *body;
static size_t body_len;
static struct curl_slist *headers;

static void setup(CURL *e, buf_t *b) {
  curl_easy_setopt(e, CURLOPT_URL, url);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
  if (body) {
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
  }
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, b);
  curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
  curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
  if (ca_file) curl_easy_setopt(e, CURLOPT_CAINFO, ca_file);
}

static long version_of(CURL *e) {
  long v = 0;
  curl_easy_getinfo(e, CURLINFO_HTTP_VERSION, &v);
  return v;
}

static const char *version_name(long v) {
  return v == CURL_HTTP_VERSION_2_0 ? "2" : v == CURL_HTTP_VERSION_1_1 ? "1.1" : v == CURL_HTTP_VERSION_1_0 ? "1.0" : "?";
}

int main(int argc, char **argv) {
  long n = 1000, conc = 1;
  double max_time = 5.0;
  const char *data_file = NULL;
  int timing = 0;
  headers = NULL;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--timing")) { timing = 1; continue; }
    if (!v) { fprintf(stderr, "limit: %s needs a value\n", a); return 2; }
    if (!strcmp(a, "--url")) url = v;
    else if (!strcmp(a, "--data")) data_file = v;
    else if (!strcmp(a, "--header")) headers = curl_slist_append(headers, v);
    else if (!strcmp(a, "--ca")) ca_file = v;
    else if (!strcmp(a, "--n")) n = atol(v);
    else if (!strcmp(a, "--time")) max_time = atof(v);
    else if (!strcmp(a, "--conc")) conc = atol(v);
    else { fprintf(stderr, "limit: unknown option %s\n", a); return 2; }
    i++;
  }
  if (!url || n < 1 || conc < 1 || conc > MAX_CONC || max_time <= 0) {
    fprintf(stderr, "usage: limit --url URL [--data FILE] [--header H].. [--ca FILE] [--n N] [--time S] [--conc N]\n");
    return 2;
  }
  if (data_file) {
    body = read_file(data_file, &body_len);
    if (!body) { fprintf(stderr, "limit: cannot read %s\n", data_file); return 2; }
  }
  /* libcurl adds "Expect: 100-continue" to big POSTs; the client turns it off, so does the limit */
  headers = curl_slist_append(headers, "Expect:");
  curl_global_init(CURL_GLOBAL_DEFAULT);

  long done = 0, errors = 0, version = 0;
  size_t last_len = 0;
  double t0 = now(), elapsed = 0, last_time = 0;

  if (conc == 1) {
    buf_t b = { NULL, 0, 0 };
    CURL *e = curl_easy_init();
    setup(e, &b);
    /* warm-up: connect (and TLS handshake) outside the timed loop, as every contender does */
    if (curl_easy_perform(e) != CURLE_OK) fprintf(stderr, "limit: warm-up request failed\n");
    t0 = now();
    while (done < n) {
      b.len = 0;
      CURLcode rc = curl_easy_perform(e);
      long status = 0;
      curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
      if (rc != CURLE_OK || status != 200) {
        if (errors++ == 0) fprintf(stderr, "limit: %s (status %ld)\n", curl_easy_strerror(rc), status);
        if (errors > 10) break;
      } else {
        done++;
        last_len = b.len;
      }
      curl_easy_getinfo(e, CURLINFO_TOTAL_TIME, &last_time);
      elapsed = now() - t0;
      if (elapsed >= max_time) break;
    }
    version = version_of(e);
    curl_easy_cleanup(e);
    free(b.data);
  } else {
    static buf_t bufs[MAX_CONC];
    static CURL *easy[MAX_CONC];
    CURLM *m = curl_multi_init();
    curl_multi_setopt(m, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
    long started = 0;
    for (long i = 0; i < conc && started < n; i++) {
      easy[i] = curl_easy_init();
      setup(easy[i], &bufs[i]);
      curl_easy_setopt(easy[i], CURLOPT_PRIVATE, (void *)&bufs[i]);
      curl_multi_add_handle(m, easy[i]);
      started++;
    }
    int running = 1;
    int stop = 0;
    while (running > 0) {
      curl_multi_perform(m, &running);
      CURLMsg *msg;
      int left;
      while ((msg = curl_multi_info_read(m, &left))) {
        if (msg->msg != CURLMSG_DONE) continue;
        CURL *e = msg->easy_handle;
        buf_t *b;
        long status = 0;
        curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&b);
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
        if (msg->data.result != CURLE_OK || status != 200) {
          if (errors++ == 0) fprintf(stderr, "limit: %s (status %ld)\n", curl_easy_strerror(msg->data.result), status);
          if (errors > 10) stop = 1;
        } else {
          done++;
          last_len = b->len;
        }
        version = version_of(e);
        curl_multi_remove_handle(m, e);
        b->len = 0;
        if (!stop && started < n && now() - t0 < max_time) {
          curl_multi_add_handle(m, e);
          started++;
          running++;
        }
      }
      if (running > 0) curl_multi_poll(m, NULL, 0, 1000, NULL);
      if (now() - t0 > max_time + 30) break; /* hard bound even if the server stalls */
    }
    elapsed = now() - t0;
    for (long i = 0; i < conc; i++) {
      if (easy[i]) { curl_multi_remove_handle(m, easy[i]); curl_easy_cleanup(easy[i]); }
      free(bufs[i].data);
    }
    curl_multi_cleanup(m);
  }
  printf("RESULT n=%ld secs=%.6f bytes=%zu http=%s errors=%ld", done, elapsed, last_len, version_name(version),
         errors);
  if (timing) printf(" last_total=%.6f", last_time);
  printf("\n");
  curl_slist_free_all(headers);
  free(body);
  curl_global_cleanup();
  return done > 0 ? 0 : 1;
}
