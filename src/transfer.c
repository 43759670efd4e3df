/*
 * transfer.c - one HTTP exchange: the request copied into memory the transfer owns, a response
 * buffer capped while receiving, status and headers parsed by headers.c, and the mapping of a
 * CURLcode to the `kind` strings of HACKING.md. The libcurl callbacks here only touch C memory.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gemini.h"

#define GM_HEADER_LIMIT   ((size_t)1024 * 1024)   /* bytes of header names+values per response */
#define GM_KEEP_BUF       ((size_t)256 * 1024)    /* larger buffers are freed, not pooled (bounds idle RSS) */
#define GM_KEEP_HDR       ((size_t)64 * 1024)
#define GM_POOL_MAX       64

/* ---- buffers ------------------------------------------------------------------------------- */

static int buf_reserve(gm_buf *b, size_t need) {
  size_t ncap;
  char *nd;
  if (need <= b->cap) return 0;
  ncap = b->cap ? b->cap : 4096;
  while (ncap < need) {
    if (ncap > ((size_t)-1) / 2) { ncap = need; break; }
    ncap *= 2;
  }
  nd = (char *)realloc(b->data, ncap);
  if (nd == NULL) return -1;
  b->data = nd;
  b->cap = ncap;
  return 0;
}

static void buf_trim(gm_buf *b, size_t keep) {
  b->len = 0;
  if (b->cap > keep) {
    free(b->data);
    b->data = NULL;
    b->cap = 0;
  }
}

/* ---- libcurl callbacks: C memory only, never the Lua API ------------------------------------ */

static size_t on_write(char *p, size_t size, size_t n, void *ud) {
  gm_transfer *t = (gm_transfer *)ud;
  size_t len = size * n;
  if (t->max_bytes > 0 && (len > t->max_bytes || t->resp.len > t->max_bytes - len)) {
    t->too_large = 1;
    return 0;                                 /* aborts the transfer: CURLE_WRITE_ERROR */
  }
  if (buf_reserve(&t->resp, t->resp.len + len) != 0) {
    t->nomem = 1;
    return 0;
  }
  memcpy(t->resp.data + t->resp.len, p, len);
  t->resp.len += len;
  return len;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud) {
  gm_transfer *t = (gm_transfer *)ud;
  size_t len = size * n;
  int rc = gm_headers_feed(&t->hdrs, p, len);
  if (rc == GM_HDR_TOOBIG) { t->too_large = 1; return 0; }
  if (rc == GM_HDR_NOMEM) { t->nomem = 1; return 0; }
  if (t->resp.len > 0 && len >= 5 && memcmp(p, "HTTP/", 5) == 0 && t->hdrs.n == 0) {
    /* a new response started (after an interim one): drop any body of the previous */
    t->resp.len = 0;
  }
  return len;
}

/* ---- lifetime ------------------------------------------------------------------------------ */

static const char *configure_static(gm_client *c, gm_transfer *t);

gm_transfer *gm_transfer_acquire(gm_client *c) {
  gm_transfer *t = c->pool;
  if (t != NULL) {
    c->pool = t->next;
    c->npool--;
  } else {
    t = (gm_transfer *)calloc(1, sizeof *t);
    if (t == NULL) return NULL;
    t->easy = curl_easy_init();
    if (t->easy == NULL) { free(t); return NULL; }
    gm_headers_init(&t->hdrs, GM_HEADER_LIMIT);
    if (configure_static(c, t) != NULL) {
      gm_transfer_destroy(t);
      return NULL;
    }
  }
  t->client = c;
  t->prev = t->next = NULL;
  t->id = 0;
  t->too_large = t->nomem = 0;
  t->result = CURLE_OK;
  t->errbuf[0] = '\0';
  t->resp.len = 0;
  t->reqbody.len = 0;
  gm_headers_clear(&t->hdrs);
  return t;
}

void gm_transfer_destroy(gm_transfer *t) {
  if (t == NULL) return;
  if (t->easy != NULL) curl_easy_cleanup(t->easy);
  curl_slist_free_all(t->slist);
  free(t->reqbody.data);
  free(t->resp.data);
  gm_headers_free(&t->hdrs);
  free(t);
}

void gm_transfer_release(gm_client *c, gm_transfer *t) {
  /* t->slist stays: the next exchange on this transfer usually sends the same headers */
  if (c->closed || c->npool >= GM_POOL_MAX) {
    gm_transfer_destroy(t);
    return;
  }
  buf_trim(&t->resp, GM_KEEP_BUF);
  buf_trim(&t->reqbody, GM_KEEP_BUF);
  if (t->hdrs.cap > GM_KEEP_HDR) gm_headers_free(&t->hdrs);
  gm_headers_clear(&t->hdrs);
  t->prev = NULL;
  t->next = c->pool;
  c->pool = t;
  c->npool++;
}

/* ---- start --------------------------------------------------------------------------------- */

static int valid_method(const char *m, size_t len) {
  size_t i;
  if (len == 0 || len > 32) return 0;
  for (i = 0; i < len; i++)
    if (m[i] < 'A' || m[i] > 'Z') return 0;
  return 1;
}

/* Does s hold a control character (CR, LF, NUL, DEL...; a tab only when !allow_tab)? A header value
   or URL with one would break the request line or inject a header. */
int gm_has_ctl(const char *s, size_t len, int allow_tab) {
  size_t i;
  for (i = 0; i < len; i++) {
    unsigned char ch = (unsigned char)s[i];
    if ((ch < 0x20 && !(allow_tab && ch == '\t')) || ch == 0x7f) return 1;
  }
  return 0;
}

static int starts_with_ci(const char *s, size_t len, const char *prefix) {
  size_t i, n = strlen(prefix);
  if (len < n) return 0;
  for (i = 0; i < n; i++) {
    char a = s[i];
    if (a >= 'A' && a <= 'Z') a = (char)(a - 'A' + 'a');
    if (a != prefix[i]) return 0;
  }
  return 1;
}

#define CHECK(x) do { if ((x) != CURLE_OK) goto fail; } while (0)

static const char empty[] = "";

/* Options that depend only on the client: set once per easy handle, which is reused without
   curl_easy_reset (only the per-request options below change between exchanges). */
static const char *configure_static(gm_client *c, gm_transfer *t) {
  CURL *e = t->easy;
  CHECK(curl_easy_setopt(e, CURLOPT_PRIVATE, (void *)t));
  CHECK(curl_easy_setopt(e, CURLOPT_SHARE, c->share));
  CHECK(curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L));
  CHECK(curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->errbuf));
  CHECK(curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write));
  CHECK(curl_easy_setopt(e, CURLOPT_WRITEDATA, (void *)t));
  CHECK(curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header));
  CHECK(curl_easy_setopt(e, CURLOPT_HEADERDATA, (void *)t));
  CHECK(curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L));
#if LIBCURL_VERSION_NUM >= 0x075500
  CHECK(curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https"));
#else
  CHECK(curl_easy_setopt(e, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS)));
#endif
  if (c->http2) {
    CHECK(curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS));
    /* CURLOPT_PIPEWAIT is set per exchange in configure(): https only */
  } else {
    CHECK(curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1));
  }
  CHECK(curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, empty));
  CHECK(curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L));
  CHECK(curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, c->connect_timeout_ms));
  if (c->stall_s > 0) {
    CHECK(curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L));
    CHECK(curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, c->stall_s));
  }
  CHECK(curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)c->max_bytes));   /* 0: no limit */
  if (c->proxy != NULL) {
    CHECK(curl_easy_setopt(e, CURLOPT_PROXY, c->proxy));
    CHECK(curl_easy_setopt(e, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L));
  }
  if (c->ca_file != NULL) CHECK(curl_easy_setopt(e, CURLOPT_CAINFO, c->ca_file));
  if (c->ca_path != NULL) CHECK(curl_easy_setopt(e, CURLOPT_CAPATH, c->ca_path));
  CHECK(curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, c->insecure ? 0L : 1L));
  CHECK(curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, c->insecure ? 0L : 2L));
  /* No CURLOPT_USERAGENT: the User-Agent line travels in the header lists (configure), formatted once
     per client instead of by libcurl on every request. CURLHEADER_SEPARATE (libcurl's default since
     7.42.1, set here because the API key depends on it): the request's headers never go to a proxy's
     CONNECT, which gets CURLOPT_PROXYHEADER (c->proxy_headers: the User-Agent alone) instead. */
  CHECK(curl_easy_setopt(e, CURLOPT_HEADEROPT, (long)CURLHEADER_SEPARATE));
  return NULL;
fail:
  return "curl_easy_setopt failed (unsupported option in this libcurl?)";
}

/* Does t->slist already hold exactly the header list this request needs? (It usually does for
   sequential requests of one client: the pool hands back the same transfer.) */
static int slist_matches(lua_State *L, gm_transfer *t, int hidx, int nheaders, const char *ua, int add_ctype) {
  const struct curl_slist *sl = t->slist;
  int i;
  if (sl == NULL || strcmp(sl->data, "Expect:") != 0) return 0;
  sl = sl->next;
  if (ua != NULL) {
    if (sl == NULL || strcmp(sl->data, ua) != 0) return 0;
    sl = sl->next;
  }
  if (add_ctype) {
    if (sl == NULL || strcmp(sl->data, "Content-Type:") != 0) return 0;
    sl = sl->next;
  }
  for (i = 1; i <= nheaders; i++, sl = sl->next) {
    int same;
    if (sl == NULL) return 0;
    lua_rawgeti(L, hidx, i);
    same = strcmp(sl->data, lua_tostring(L, -1)) == 0;
    lua_pop(L, 1);
    if (!same) return 0;
  }
  return sl == NULL;
}

/* Configure t->easy for one exchange. No Lua API call that can raise happens here. */
static const char *configure(gm_client *c, gm_transfer *t, const char *method, size_t mlen, const char *url,
                             lua_State *L, int hidx, int nheaders, int has_ctype, int has_ua, const char *body,
                             size_t blen, long timeout_ms, int fresh) {
  CURL *e = t->easy;
  int is_post = mlen == 4 && memcmp(method, "POST", 4) == 0;
  int is_https = starts_with_ci(url, strlen(url), "https://");
  int i, add_ctype = (body != NULL || is_post) && !has_ctype;   /* curl would add a form type */
  const char *ua = has_ua ? NULL : c->ua_header;   /* the request's own User-Agent wins, as with CURLOPT_USERAGENT */
  struct curl_slist *sl;

  t->max_bytes = c->max_bytes;
  t->timeout_ms = timeout_ms;
  t->connect_timeout_ms = c->connect_timeout_ms;
  t->stall_s = c->stall_s;

  CHECK(curl_easy_setopt(e, CURLOPT_URL, url));
  CHECK(curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms));
  /* a new connection: libcurl resends a request by itself only on a reused connection that died */
  CHECK(curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, fresh ? 1L : 0L));
  /* Wait for a pending connection that may multiplex (HTTP/2) instead of opening another: only where
     HTTP/2 can be negotiated (https, ALPN). Over http:// it is HTTP/1.1 anyway, and PIPEWAIT would make
     a request wait for the earlier, unanswered connections to the host. */
  CHECK(curl_easy_setopt(e, CURLOPT_PIPEWAIT, c->http2 && is_https ? 1L : 0L));
  /* The User-Agent for a proxy's CONNECT (https through a proxy, CURLOPT_PROXY or the environment's).
     Not for http://: a proxy that is not tunnelling gets the request's headers and, with
     CURLHEADER_SEPARATE, the proxy headers too, which would send the User-Agent line twice. */
  CHECK(curl_easy_setopt(e, CURLOPT_PROXYHEADER, is_https ? c->proxy_headers : NULL));

  /* headers: "Expect:" first (no 100-continue round trip), the User-Agent, then the caller's */
  if (!slist_matches(L, t, hidx, nheaders, ua, add_ctype)) {
    curl_slist_free_all(t->slist);
    t->slist = NULL;
    sl = curl_slist_append(NULL, "Expect:");
    if (sl == NULL) return "out of memory";
    t->slist = sl;
    if (ua != NULL) {
      sl = curl_slist_append(t->slist, ua);
      if (sl == NULL) return "out of memory";
      t->slist = sl;
    }
    if (add_ctype) {
      sl = curl_slist_append(t->slist, "Content-Type:");   /* no made-up form content type */
      if (sl == NULL) return "out of memory";
      t->slist = sl;
    }
    for (i = 1; i <= nheaders; i++) {
      lua_rawgeti(L, hidx, i);                 /* validated strings: nothing here can raise */
      sl = curl_slist_append(t->slist, lua_tostring(L, -1));
      lua_pop(L, 1);
      if (sl == NULL) return "out of memory";
      t->slist = sl;
    }
  }
  CHECK(curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->slist));

  /* the method; every option an earlier exchange on this handle may have set is overwritten */
  CHECK(curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, (char *)NULL));
  CHECK(curl_easy_setopt(e, CURLOPT_HTTPGET, 1L));   /* resets POST, NOBODY and upload */
  if (body != NULL || is_post) {
    const char *data = empty;
    if (blen > 0) {
      if (buf_reserve(&t->reqbody, blen) != 0) return "out of memory";
      memcpy(t->reqbody.data, body, blen);
      t->reqbody.len = blen;
      data = t->reqbody.data;
    }
    CHECK(curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)blen));
    CHECK(curl_easy_setopt(e, CURLOPT_POSTFIELDS, data));
    if (!is_post) CHECK(curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method));
  } else if (mlen == 4 && memcmp(method, "HEAD", 4) == 0) {
    CHECK(curl_easy_setopt(e, CURLOPT_NOBODY, 1L));
  } else if (!(mlen == 3 && memcmp(method, "GET", 3) == 0)) {
    CHECK(curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method));
  }
  return NULL;
fail:
  return "curl_easy_setopt failed (unsupported option in this libcurl?)";
}

/*** @module gemini.core */

/***
 * Start one HTTP exchange; never blocks. The request table has `method` (default "GET"),
 * `url` (http or https), `headers` (array of "Name: value" strings), `body` (string or nil)
 * and `timeout` (seconds, overrides the client's for this request), `fresh_connect` (true: use a
 * new connection; libcurl silently resends a request whose reused connection died before any reply
 * byte, which a side-effecting POST must not suffer). Method, url, headers and body are copied. Misuse (bad types, control characters, a closed client) raises.
 * @function client:start
 * @tparam table request
 * @treturn integer id, reported back in the completion
 */
int gm_l_start(lua_State *L) {
  gm_client *c = gm_checkclient(L, 1);
  const char *method = "GET", *url, *body = NULL, *err;
  size_t mlen = 3, ulen, blen = 0;
  int nheaders = 0, i, has_ctype = 0, has_ua = 0;
  long timeout_ms = c->timeout_ms;
  gm_transfer *t;
  CURLMcode mc;

  luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 2);
  lua_getfield(L, 2, "method");    /* 3 */
  lua_getfield(L, 2, "url");       /* 4 */
  lua_getfield(L, 2, "headers");   /* 5 */
  lua_getfield(L, 2, "body");      /* 6 */
  lua_getfield(L, 2, "timeout");   /* 7 */
  lua_getfield(L, 2, "fresh_connect"); /* 8: a new connection, so libcurl never resends it on its own */

  if (!lua_isnil(L, 3)) {
    if (lua_type(L, 3) != LUA_TSTRING) return luaL_argerror(L, 2, "field 'method' must be a string");
    method = lua_tolstring(L, 3, &mlen);
    if (!valid_method(method, mlen)) return luaL_argerror(L, 2, "field 'method' must be an upper-case HTTP method");
  }
  if (lua_type(L, 4) != LUA_TSTRING) return luaL_argerror(L, 2, "field 'url' must be a string");
  url = lua_tolstring(L, 4, &ulen);
  if (gm_has_ctl(url, ulen, 0) || memchr(url, ' ', ulen) != NULL)
    return luaL_argerror(L, 2, "field 'url' contains a space or control character");
  if (!starts_with_ci(url, ulen, "http://") && !starts_with_ci(url, ulen, "https://"))
    return luaL_argerror(L, 2, "field 'url' must start with http:// or https://");
  if (!lua_isnil(L, 5)) {
    if (lua_type(L, 5) != LUA_TTABLE) return luaL_argerror(L, 2, "field 'headers' must be an array of strings");
    nheaders = (int)gm_rawlen(L, 5);
    for (i = 1; i <= nheaders; i++) {
      size_t hl;
      const char *h;
      lua_rawgeti(L, 5, i);
      if (lua_type(L, -1) != LUA_TSTRING)
        return luaL_argerror(L, 2, lua_pushfstring(L, "headers[%d] must be a string, got %s", i, luaL_typename(L, -1)));
      h = lua_tolstring(L, -1, &hl);
      if (gm_has_ctl(h, hl, 1))
        return luaL_argerror(L, 2, lua_pushfstring(L, "headers[%d] contains a control character", i));
      if (hl == 0 || (memchr(h, ':', hl) == NULL && h[hl - 1] != ';') || h[0] == ':' || h[0] == ' ')
        return luaL_argerror(L, 2, lua_pushfstring(L, "headers[%d] must look like 'Name: value'", i));
      if (starts_with_ci(h, hl, "content-type:")) has_ctype = 1;
      /* libcurl's test for a header of the caller's (Curl_checkheaders): the name, then ':' or ';' */
      if (starts_with_ci(h, hl, "user-agent") && hl > 10 && (h[10] == ':' || h[10] == ';')) has_ua = 1;
      lua_pop(L, 1);
    }
  }
  if (!lua_isnil(L, 6)) {
    if (lua_type(L, 6) != LUA_TSTRING) return luaL_argerror(L, 2, "field 'body' must be a string or nil");
    body = lua_tolstring(L, 6, &blen);
  }
  if (!lua_isnil(L, 7)) {
    lua_Number s;
    if (lua_type(L, 7) != LUA_TNUMBER) return luaL_argerror(L, 2, "field 'timeout' must be a number of seconds");
    s = lua_tonumber(L, 7);
    if (!(s >= 0) || s > 1e9) return luaL_argerror(L, 2, "field 'timeout' must be a non-negative number of seconds");
    timeout_ms = (s > 0 && s * 1000 < 1) ? 1 : (long)(s * 1000 + 0.5);
  }

  t = gm_transfer_acquire(c);
  if (t == NULL) return luaL_error(L, "gemini.core: out of memory");
  err = configure(c, t, method, mlen, url, L, 5, nheaders, has_ctype, has_ua, body, blen, timeout_ms,
                  lua_toboolean(L, 8));
  if (err == NULL && lua_toboolean(L, 8) && curl_easy_setopt(t->easy, CURLOPT_FRESH_CONNECT, 1L) != CURLE_OK)
    err = "curl_easy_setopt(CURLOPT_FRESH_CONNECT) failed";
  if (err != NULL) {
    gm_transfer_release(c, t);
    return luaL_error(L, "gemini.core: %s", err);
  }
  mc = curl_multi_add_handle(c->multi, t->easy);
  if (mc != CURLM_OK) {
    gm_transfer_release(c, t);
    return luaL_error(L, "gemini.core: curl_multi_add_handle: %s", curl_multi_strerror(mc));
  }
  t->id = ++c->next_id;
  gm_inflight_link(c, t);
  lua_pushinteger(L, t->id);
  return 1;
}

/* ---- results ------------------------------------------------------------------------------- */

static int is_tls_error(CURLcode rc) {
  switch (rc) {
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_USE_SSL_FAILED:
#if LIBCURL_VERSION_NUM >= 0x074d00
    case CURLE_SSL_CLIENTCERT:
#endif
      return 1;
    default:
      return 0;
  }
}

static double ms_to_s(long ms) { return (double)ms / 1000.0; }

/* Fill kind and a message naming what failed. */
static const char *classify(gm_transfer *t, char *msg, size_t msglen) {
  CURLcode rc = t->result;
  const char *detail = t->errbuf[0] ? t->errbuf : curl_easy_strerror(rc);
  long connect_code = 0;
  int has_proxy = t->client != NULL && t->client->proxy != NULL;

  if (t->too_large || rc == CURLE_FILESIZE_EXCEEDED) {
    snprintf(msg, msglen, "response larger than max_response_bytes (%lu bytes)", (unsigned long)t->max_bytes);
    return "too_large";
  }
  if (t->nomem || rc == CURLE_OUT_OF_MEMORY) {
    snprintf(msg, msglen, "out of memory while receiving the response");
    return "other";
  }
  curl_easy_getinfo(t->easy, CURLINFO_HTTP_CONNECTCODE, &connect_code);
  switch (rc) {
    case CURLE_OPERATION_TIMEDOUT: {
      /* which limit tripped: the low-speed check (stall_timeout), or the clock before the
         connection was made (connect_timeout) or after it (timeout) */
      int before_connect;
      if (t->stall_s > 0 && strncmp(t->errbuf, "Operation too slow", 18) == 0) {
        snprintf(msg, msglen, "transfer stalled: no data for stall_timeout (%ld s) (%s)", t->stall_s, detail);
        return "stall";
      }
      if (strncmp(t->errbuf, "Operation timed out", 19) == 0) {
        before_connect = 0;
      } else {
        curl_off_t ct = 0;
        curl_easy_getinfo(t->easy, CURLINFO_CONNECT_TIME_T, &ct);
        before_connect = ct == 0;
      }
      if (before_connect && t->connect_timeout_ms > 0 &&
          (t->timeout_ms == 0 || t->connect_timeout_ms <= t->timeout_ms)) {
        snprintf(msg, msglen, "no connection within connect_timeout (%g s) (%s)", ms_to_s(t->connect_timeout_ms),
                 detail);
        return "connect_timeout";
      }
      snprintf(msg, msglen, "no complete response within timeout (%g s) (%s)", ms_to_s(t->timeout_ms), detail);
      return "timeout";
    }
    case CURLE_COULDNT_RESOLVE_PROXY:
#if LIBCURL_VERSION_NUM >= 0x074900
    case CURLE_PROXY:
#endif
      snprintf(msg, msglen, "proxy failed (%s)", detail);
      return "proxy";
    default:
      break;
  }
  if (connect_code != 0 && (connect_code < 200 || connect_code > 299)) {
    snprintf(msg, msglen, "proxy refused the tunnel with status %ld (%s)", connect_code, detail);
    return "proxy";
  }
  if (is_tls_error(rc)) {
    snprintf(msg, msglen, "TLS failed (%s)", detail);
    return "tls";
  }
  switch (rc) {
    case CURLE_COULDNT_CONNECT:
      if (has_proxy) {
        snprintf(msg, msglen, "could not connect to the proxy (%s)", detail);
        return "proxy";
      }
      snprintf(msg, msglen, "could not connect (%s)", detail);
      return "connect";
    case CURLE_COULDNT_RESOLVE_HOST:
      snprintf(msg, msglen, "could not resolve host (%s)", detail);
      return "resolve";
    case CURLE_SEND_ERROR:
      snprintf(msg, msglen, "failed sending the request (%s)", detail);
      return "send";
    case CURLE_RECV_ERROR:
    case CURLE_PARTIAL_FILE:
    case CURLE_GOT_NOTHING:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
      snprintf(msg, msglen, "failed receiving the response (%s)", detail);
      return "recv";
    default:
      snprintf(msg, msglen, "transfer failed (%s)", detail);
      return "other";
  }
}

/* Push the completion table for a finished transfer. May raise (memory) only; t stays valid.
   lines: the headers as one string `header_lines`, "name:value\n" each in arrival order (names are
   tchar, values hold no CR/LF/NUL: the split is exact), instead of the `headers` table. */
void gm_push_result(lua_State *L, gm_transfer *t, int lines) {
  lua_createtable(L, 0, 7);
  lua_pushinteger(L, t->id);
  lua_setfield(L, -2, "id");
  if (t->result == CURLE_OK && !t->too_large) {
    long code = 0, ver = 0;
    double total = 0;
    size_t i;
    curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_getinfo(t->easy, CURLINFO_HTTP_VERSION, &ver);
    curl_easy_getinfo(t->easy, CURLINFO_TOTAL_TIME, &total);
    lua_pushinteger(L, (lua_Integer)code);
    lua_setfield(L, -2, "status");
    if (lines) {
      luaL_Buffer b;
      luaL_buffinit(L, &b);
      for (i = 0; i < t->hdrs.n; i++) {
        const gm_header_ent *e = &t->hdrs.ents[i];
        luaL_addlstring(&b, t->hdrs.buf + e->name, e->name_len);
        luaL_addchar(&b, ':');
        luaL_addlstring(&b, t->hdrs.buf + e->value, e->value_len);
        luaL_addchar(&b, '\n');
      }
      luaL_pushresult(&b);
      lua_setfield(L, -2, "header_lines");
    } else {
      lua_createtable(L, 0, (int)t->hdrs.n);
      for (i = 0; i < t->hdrs.n; i++) {
        const gm_header_ent *e = &t->hdrs.ents[i];
        lua_pushlstring(L, t->hdrs.buf + e->name, e->name_len);
        lua_pushlstring(L, t->hdrs.buf + e->value, e->value_len);
        lua_rawset(L, -3);
      }
      lua_setfield(L, -2, "headers");
    }
    lua_pushlstring(L, t->resp.data ? t->resp.data : "", t->resp.len);
    lua_setfield(L, -2, "body");
    switch (ver) {
      case CURL_HTTP_VERSION_1_0: lua_pushnumber(L, 1.0); break;
      case CURL_HTTP_VERSION_1_1: lua_pushnumber(L, 1.1); break;
      case CURL_HTTP_VERSION_2_0: lua_pushinteger(L, 2); break;
#if LIBCURL_VERSION_NUM >= 0x074200
      case CURL_HTTP_VERSION_3: lua_pushinteger(L, 3); break;
#endif
      default: lua_pushnumber(L, t->hdrs.version / 10.0); break;
    }
    lua_setfield(L, -2, "http_version");
    lua_pushnumber(L, total);
    lua_setfield(L, -2, "total_time");
  } else {
    char msg[CURL_ERROR_SIZE + 256];
    const char *kind = classify(t, msg, sizeof msg);
    lua_pushstring(L, msg);
    lua_setfield(L, -2, "error");
    lua_pushstring(L, kind);
    lua_setfield(L, -2, "kind");
    lua_pushinteger(L, (lua_Integer)t->result);
    lua_setfield(L, -2, "curl_code");
    if (t->hdrs.status > 0) {
      lua_pushinteger(L, t->hdrs.status);
      lua_setfield(L, -2, "status");
    }
  }
}
