/*
 * client.c - the client userdata: options, one CURLM multi handle, a pool of reusable transfers
 * (each with its easy handle, so connections, TLS sessions and buffers are reused), close/__gc.
 */
#define _POSIX_C_SOURCE 200809L
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gemini.h"

#define DEFAULT_CONNECT_TIMEOUT_MS 10000L
#define DEFAULT_TIMEOUT_MS         60000L
#define DEFAULT_MAX_BYTES          ((size_t)64 * 1024 * 1024)
#define DEFAULT_MAX_CONNECTIONS    16L

static void client_close(gm_client *c) {
  gm_transfer *t;
  if (c->closed) return;
  c->closed = 1;
  while ((t = c->inflight) != NULL) {
    gm_inflight_unlink(c, t);
    if (c->multi != NULL) curl_multi_remove_handle(c->multi, t->easy);
    gm_transfer_destroy(t);
  }
  while ((t = c->done_head) != NULL) {
    c->done_head = t->next;
    gm_transfer_destroy(t);
  }
  c->done_tail = NULL;
  c->ndone = 0;
  while ((t = c->pool) != NULL) {
    c->pool = t->next;
    gm_transfer_destroy(t);
  }
  c->npool = 0;
  if (c->multi != NULL) curl_multi_cleanup(c->multi);
  c->multi = NULL;
  if (c->share != NULL) curl_share_cleanup(c->share);   /* after every easy handle is gone */
  c->share = NULL;
  free(c->proxy);
  free(c->ca_file);
  free(c->ca_path);
  free(c->user_agent);
  free(c->ua_header);
  curl_slist_free_all(c->proxy_headers);   /* after every easy handle that pointed at it is gone */
  free(c->socks);
  free(c->live);
  c->proxy = c->ca_file = c->ca_path = c->user_agent = c->ua_header = NULL;
  c->proxy_headers = NULL;
  c->socks = c->live = NULL;
  c->nsocks = c->capsocks = c->nlive = c->caplive = 0;
}

/* The client methods get the metatable as upvalue 1: comparing with it is much cheaper than
   luaL_checkudata's registry lookup by name, which only runs to report a wrong argument. */
gm_client *gm_checkclient(lua_State *L, int idx) {
  gm_client *c = (gm_client *)lua_touserdata(L, idx);
  if (c != NULL && lua_getmetatable(L, idx)) {
    int same = lua_rawequal(L, -1, lua_upvalueindex(1));
    lua_pop(L, 1);
    if (!same) c = NULL;
  } else {
    c = NULL;
  }
  if (c == NULL) c = (gm_client *)luaL_checkudata(L, idx, GM_CLIENT_MT);
  if (c->closed) luaL_error(L, GM_CLOSED_MSG);
  return c;
}

/* ---- options ------------------------------------------------------------------------------- */

static long seconds_to_ms(lua_State *L, int idx, const char *name) {
  lua_Number s;
  if (lua_type(L, idx) != LUA_TNUMBER)
    luaL_error(L, "bad argument #1 to 'client' (option '%s' must be a number of seconds, got %s)", name,
               luaL_typename(L, idx));
  s = lua_tonumber(L, idx);
  if (!(s >= 0) || s > (lua_Number)(LONG_MAX / 2000))
    luaL_error(L, "bad argument #1 to 'client' (option '%s' must be a non-negative number of seconds)", name);
  if (s > 0 && s * 1000 < 1) return 1;
  return (long)(s * 1000 + 0.5);
}

static char *opt_string(lua_State *L, int idx, const char *name) {
  size_t len;
  const char *s;
  char *copy;
  if (lua_isnil(L, idx)) return NULL;
  if (lua_type(L, idx) != LUA_TSTRING)
    luaL_error(L, "bad argument #1 to 'client' (option '%s' must be a string, got %s)", name, luaL_typename(L, idx));
  s = lua_tolstring(L, idx, &len);
  if (strlen(s) != len) luaL_error(L, "bad argument #1 to 'client' (option '%s' contains a NUL byte)", name);
  copy = (char *)malloc(len + 1);
  if (copy == NULL) luaL_error(L, "gemini.core: out of memory");
  memcpy(copy, s, len + 1);
  return copy;
}

static int opt_bool(lua_State *L, int idx, const char *name) {
  if (lua_type(L, idx) != LUA_TBOOLEAN)
    luaL_error(L, "bad argument #1 to 'client' (option '%s' must be a boolean, got %s)", name, luaL_typename(L, idx));
  return lua_toboolean(L, idx);
}

static lua_Number opt_count(lua_State *L, int idx, const char *name, lua_Number max) {
  lua_Number n;
  if (lua_type(L, idx) != LUA_TNUMBER)
    luaL_error(L, "bad argument #1 to 'client' (option '%s' must be an integer, got %s)", name, luaL_typename(L, idx));
  n = lua_tonumber(L, idx);
  if (!(n >= 0) || n > max) luaL_error(L, "bad argument #1 to 'client' (option '%s' is out of range)", name);
  if (n != (lua_Number)(unsigned long long)n)   /* 1e6 is fine, 1.5 is not */
    luaL_error(L, "bad argument #1 to 'client' (option '%s' must be an integer, got a fraction)", name);
  return n;
}

/* key at -2, value at -1 */
static void set_option(lua_State *L, gm_client *c) {
  const char *k;
  char **slot = NULL;
  if (lua_type(L, -2) != LUA_TSTRING)
    luaL_error(L, "bad argument #1 to 'client' (option names must be strings, got %s)", luaL_typename(L, -2));
  k = lua_tostring(L, -2);
  if (strcmp(k, "connect_timeout") == 0) c->connect_timeout_ms = seconds_to_ms(L, -1, k);
  else if (strcmp(k, "timeout") == 0) c->timeout_ms = seconds_to_ms(L, -1, k);
  else if (strcmp(k, "stall_timeout") == 0) {
    long ms = seconds_to_ms(L, -1, k);
    c->stall_s = (ms + 999) / 1000;   /* CURLOPT_LOW_SPEED_TIME has whole seconds: round up */
  }
  else if (strcmp(k, "max_response_bytes") == 0) c->max_bytes = (size_t)opt_count(L, -1, k, 9007199254740992.0);
  else if (strcmp(k, "max_connections") == 0) c->max_connections = (long)opt_count(L, -1, k, 65536);
  else if (strcmp(k, "insecure") == 0) c->insecure = opt_bool(L, -1, k);
  else if (strcmp(k, "http2") == 0) c->http2 = opt_bool(L, -1, k);
  else if (strcmp(k, "proxy") == 0) slot = &c->proxy;
  else if (strcmp(k, "ca_file") == 0) slot = &c->ca_file;
  else if (strcmp(k, "ca_path") == 0) slot = &c->ca_path;
  else if (strcmp(k, "user_agent") == 0) {
    size_t n;
    const char *ua = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &n) : NULL;
    if (ua != NULL && gm_has_ctl(ua, n, 1))   /* it goes into a header line: CR/LF would inject one */
      luaL_error(L, "bad argument #1 to 'client' (option '%s' contains a control character)", k);
    slot = &c->user_agent;
  }
  else luaL_error(L, "bad argument #1 to 'client' (unknown option '%s')", k);
  if (slot != NULL) {
    char *s = opt_string(L, -1, k);
    free(*slot);
    *slot = s;
  }
}

/***
 * The C core on libcurl (`require "gemini.core"`): clients and their transfers, resource handles,
 * compact vectors, a monotonic clock. `gemini` is built on it; most programs never call it directly.
 * (Every C file in src/ with LDoc comments declares this module; LDoc takes this description from
 * client.c, the first of them it reads.)
 * @module gemini.core
 */

/***
 * Create a client: one libcurl multi handle plus a pool of reusable easy handles.
 * Every option is optional: connect_timeout, timeout, stall_timeout (seconds; 0 = none),
 * max_response_bytes, max_connections, proxy, ca_file, ca_path, insecure, user_agent, http2.
 * Unknown options and wrong types raise an argument error.
 * @function client
 * @tparam[opt] table options
 * @treturn userdata client
 */
int gm_client_new(lua_State *L) {
  gm_client *c;
  int has_opts = !lua_isnoneornil(L, 1);
  if (has_opts) luaL_checktype(L, 1, LUA_TTABLE);
  c = (gm_client *)gm_newuserdata(L, sizeof *c);
  memset(c, 0, sizeof *c);
  c->connect_timeout_ms = DEFAULT_CONNECT_TIMEOUT_MS;
  c->timeout_ms = DEFAULT_TIMEOUT_MS;
  c->max_bytes = DEFAULT_MAX_BYTES;
  c->max_connections = DEFAULT_MAX_CONNECTIONS;
  c->http2 = 1;
  c->timer_ms = -1;
  c->timer_at = -1;
  luaL_getmetatable(L, GM_CLIENT_MT);
  lua_setmetatable(L, -2);   /* from here on, __gc frees whatever was allocated */
  if (has_opts) {
    lua_pushnil(L);
    while (lua_next(L, 1) != 0) {
      set_option(L, c);
      lua_pop(L, 1);
    }
  }
  if (c->user_agent == NULL) {
    char ua[128];
    size_t n;
    snprintf(ua, sizeof ua, "lua-gemini/%s libcurl/%s", GM_CORE_VERSION, gm_libcurl_version());
    n = strlen(ua);
    c->user_agent = (char *)malloc(n + 1);
    if (c->user_agent == NULL) return luaL_error(L, "gemini.core: out of memory");
    memcpy(c->user_agent, ua, n + 1);
  }
  /* The User-Agent line is formatted here once; libcurl would format it with aprintf on every request
     if it were set as CURLOPT_USERAGENT (see transfer.c, configure). */
  if (c->user_agent[0] != '\0') {
    static const char name[] = "User-Agent: ";
    size_t n = strlen(c->user_agent);
    c->ua_header = (char *)malloc(sizeof name + n);
    if (c->ua_header == NULL) return luaL_error(L, "gemini.core: out of memory");
    memcpy(c->ua_header, name, sizeof name - 1);
    memcpy(c->ua_header + sizeof name - 1, c->user_agent, n + 1);
    c->proxy_headers = curl_slist_append(NULL, c->ua_header);
    if (c->proxy_headers == NULL) return luaL_error(L, "gemini.core: out of memory");
  }
  c->multi = curl_multi_init();
  if (c->multi == NULL) return luaL_error(L, "gemini.core: curl_multi_init failed");
  c->share = curl_share_init();
  if (c->share == NULL) return luaL_error(L, "gemini.core: curl_share_init failed");
  curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
  if (c->http2) curl_multi_setopt(c->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
  else curl_multi_setopt(c->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_NOTHING);
  curl_multi_setopt(c->multi, CURLMOPT_MAX_HOST_CONNECTIONS, c->max_connections);
  return 1;
}

/* ---- methods ------------------------------------------------------------------------------- */

/***
 * Close the client: abort and free every transfer in flight, release the connection pool.
 * Idempotent; also run by __gc and __close. Queued completions are discarded.
 * @function client:close
 */
static int l_close(lua_State *L) {
  gm_client *c = (gm_client *)luaL_checkudata(L, 1, GM_CLIENT_MT);
  client_close(c);
  return 0;
}

/***
 * A short description that never contains options, headers or other secrets.
 * @function client:__tostring
 * @treturn string "gemini.core.client (0x...)" or "gemini.core.client (closed)"
 */
static int l_tostring(lua_State *L) {
  gm_client *c = (gm_client *)luaL_checkudata(L, 1, GM_CLIENT_MT);
  if (c->closed) lua_pushliteral(L, "gemini.core.client (closed)");
  else lua_pushfstring(L, "gemini.core.client (%p)", (void *)c);
  return 1;
}

/***
 * Number of started transfers that have not finished yet (finished ones waiting in the
 * completion queue are not counted).
 * @function client:in_flight
 * @treturn integer
 */
static int l_in_flight(lua_State *L) {
  gm_client *c = gm_checkclient(L, 1);
  lua_pushinteger(L, (lua_Integer)c->ninflight);
  return 1;
}

/***
 * Abort a transfer and free it at once. No completion is reported for it, even if it had
 * already finished and was waiting in the completion queue.
 * @function client:cancel
 * @tparam integer id as returned by start
 * @treturn boolean true if a transfer with this id existed
 */
static int l_cancel(lua_State *L) {
  gm_client *c = gm_checkclient(L, 1);
  lua_Integer id = luaL_checkinteger(L, 2);
  gm_transfer *prev, *t = gm_inflight_find(c, id);
  if (t != NULL) {
    gm_inflight_unlink(c, t);
    curl_multi_remove_handle(c->multi, t->easy);
  } else if ((t = gm_done_find(c, id, &prev)) != NULL) {
    gm_done_unlink(c, t, prev);
  }
  if (t != NULL) gm_transfer_release(c, t);
  lua_pushboolean(L, t != NULL);
  return 1;
}

static const luaL_Reg client_methods[] = {
  {"start", gm_l_start},
  {"perform", gm_l_perform},
  {"completions", gm_l_completions},
  {"await", gm_l_await},
  {"cancel", l_cancel},
  {"in_flight", l_in_flight},
  {"socket_action", gm_l_socket_action},
  {"take_events", gm_l_take_events},
  {"event_mode", gm_l_event_mode},
  {"close", l_close},
  {NULL, NULL}
};

void gm_client_register(lua_State *L) {
  if (luaL_newmetatable(L, GM_CLIENT_MT)) {
    lua_newtable(L);
    lua_pushvalue(L, -2);
    gm_setfuncs(L, client_methods, 1);   /* upvalue 1: the metatable (see gm_checkclient) */
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, l_close);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, l_close);
    lua_setfield(L, -2, "__close");
    lua_pushcfunction(L, l_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushliteral(L, GM_CLIENT_MT);
    lua_setfield(L, -2, "__name");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
  }
  lua_pop(L, 1);
}
