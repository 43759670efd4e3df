/*
 * gemini.h - internal declarations shared by the C files of gemini.core (not installed).
 *
 * Ownership: a client owns its multi handle, every transfer (in flight, finished-but-uncollected,
 * or idle in the pool) and the option strings. A transfer owns its easy handle, header list,
 * request body copy, response buffer and parsed headers. Nothing is owned by Lua except the
 * client userdata block itself, whose __gc releases all of the above.
 */
#ifndef GEMINI_INTERNAL_H
#define GEMINI_INTERNAL_H

#include <stddef.h>
#include <curl/curl.h>

#include "compat.h"
#include "headers.h"

#define GM_CORE_VERSION   "0.1.0"
#define GM_CLIENT_MT      "gemini.core.client"
#define GM_CLOSED_MSG     "gemini.core: client is closed"

typedef struct gm_buf {
  char *data;
  size_t len, cap;
} gm_buf;

struct gm_client;

typedef struct gm_transfer {
  CURL *easy;
  struct gm_client *client;
  lua_Integer id;
  struct curl_slist *slist;
  gm_buf reqbody;
  gm_buf resp;
  gm_headers hdrs;
  size_t max_bytes;        /* response body cap for this exchange */
  long timeout_ms;         /* effective limits, for error messages */
  long connect_timeout_ms;
  long stall_s;
  int too_large;           /* the write/header callback refused data over the cap */
  int nomem;               /* a callback failed to allocate */
  CURLcode result;
  struct gm_transfer *prev, *next;   /* in-flight list (doubly linked) / done queue / pool */
  char errbuf[CURL_ERROR_SIZE];
} gm_transfer;

typedef struct gm_sockev {
  curl_socket_t fd;
  int what;                /* CURL_POLL_IN / OUT / INOUT / REMOVE */
} gm_sockev;

typedef struct gm_client {
  CURLM *multi;
  CURLSH *share;           /* TLS sessions shared by the client's easy handles (one thread: no locks) */
  int closed;
  lua_Integer next_id;
  /* options */
  long connect_timeout_ms, timeout_ms, stall_s, max_connections;
  size_t max_bytes;
  int insecure, http2;
  char *proxy, *ca_file, *ca_path, *user_agent;
  /* the User-Agent request header, made once per client: "User-Agent: <user_agent>", NULL when the
     user agent is "" (no header, as CURLOPT_USERAGENT "" sent none). It goes into every transfer's
     header list (t->slist) unless the request's own headers carry a User-Agent, and, as the one entry
     of proxy_headers, into the CONNECT request to a proxy (CURLOPT_PROXYHEADER). */
  char *ua_header;
  struct curl_slist *proxy_headers;
  /* transfers */
  gm_transfer *inflight;   size_t ninflight;
  gm_transfer *done_head, *done_tail; size_t ndone;
  gm_transfer *pool;       size_t npool;
  /* socket interface: once the callbacks are installed (sockcb), perform() drives libcurl with
     curl_multi_socket_action over `live` (every socket libcurl watches now) and timer_at, so the
     socket callback always sees what happens. In event mode Lua also takes the recorded changes. */
  int sockcb;
  gm_sockev *live;         size_t nlive, caplive;
  double timer_at;         /* when libcurl wants socket_action(TIMEOUT), monotonic seconds; < 0: never */
  /* event-loop mode: what libcurl asked for, recorded for Lua to take (only while event_mode) */
  int event_mode;
  gm_sockev *socks;        size_t nsocks, capsocks;
  long timer_ms;           int timer_set;
} gm_client;

/* core.c */
const char *gm_libcurl_version(void);   /* "7.88.1"; computed once (libcurl's own call is not thread-safe) */

/* client.c */
gm_client *gm_checkclient(lua_State *L, int idx);   /* raises on wrong type or closed client */
int gm_client_new(lua_State *L);
void gm_client_register(lua_State *L);

/* transfer.c */
gm_transfer *gm_transfer_acquire(gm_client *c);     /* from the pool or new; NULL on OOM */
void gm_transfer_release(gm_client *c, gm_transfer *t); /* back to the pool (or freed) */
void gm_transfer_destroy(gm_transfer *t);
int gm_transfer_setup(lua_State *L, gm_client *c, gm_transfer *t, int argidx); /* 0 ok, else msg pushed */
void gm_push_result(lua_State *L, gm_transfer *t, int lines); /* lines: headers as one string */
int gm_l_start(lua_State *L);
int gm_has_ctl(const char *s, size_t len, int allow_tab);   /* a control character (a tab: unless allowed)? */

/* multi.c */
void gm_inflight_unlink(gm_client *c, gm_transfer *t);
void gm_inflight_link(gm_client *c, gm_transfer *t);
gm_transfer *gm_inflight_find(gm_client *c, lua_Integer id);   /* NULL: not in flight */
gm_transfer *gm_done_find(gm_client *c, lua_Integer id, gm_transfer **prevp); /* in the completion queue */
void gm_done_unlink(gm_client *c, gm_transfer *t, gm_transfer *prev);         /* out of it (prev: the one before) */
void gm_drain_info(gm_client *c);
CURLMcode gm_event_mode(gm_client *c);   /* switch to event mode (idempotent) */
int gm_l_perform(lua_State *L);
int gm_l_completions(lua_State *L);
int gm_l_await(lua_State *L);
int gm_l_socket_action(lua_State *L);
int gm_l_take_events(lua_State *L);
int gm_l_event_mode(lua_State *L);

/* handle.c */
void gm_handle_register(lua_State *L);   /* adds handle/handle_methods/handle_kind/handle_fields to the table on top */

/* codec.c */
void gm_codec_register(lua_State *L);    /* adds codec_plan to the table on top */

/* jsondec.c */
int gm_l_json_decode(lua_State *L);      /* core.json_decode */

/* vector.c */
void gm_vector_register(lua_State *L);   /* the gemini.vector metatable; adds vector/decode_embeddings to the table on top */

#endif
