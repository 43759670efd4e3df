/*
 * multi.c - driving transfers: perform() (curl_multi_poll + curl_multi_perform), the completion
 * queue drained by completions(), and the event-loop mode where libcurl's socket and timer
 * callbacks only record into C arrays that take_events() hands to Lua after curl has returned.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gemini.h"

void gm_inflight_link(gm_client *c, gm_transfer *t) {
  t->prev = NULL;
  t->next = c->inflight;
  if (c->inflight != NULL) c->inflight->prev = t;
  c->inflight = t;
  c->ninflight++;
}

void gm_inflight_unlink(gm_client *c, gm_transfer *t) {
  if (t->prev != NULL) t->prev->next = t->next;
  else c->inflight = t->next;
  if (t->next != NULL) t->next->prev = t->prev;
  t->prev = t->next = NULL;
  c->ninflight--;
}

/* Move every finished transfer from the multi handle to the completion queue. */
void gm_drain_info(gm_client *c) {
  CURLMsg *m;
  int left;
  while ((m = curl_multi_info_read(c->multi, &left)) != NULL) {
    gm_transfer *t;
    char *priv = NULL;
    CURLcode rc;
    if (m->msg != CURLMSG_DONE) continue;
    rc = m->data.result;
    curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &priv);
    t = (gm_transfer *)(void *)priv;
    if (t == NULL) continue;
    curl_multi_remove_handle(c->multi, t->easy);   /* m is invalid from here */
    t->result = rc;
    gm_inflight_unlink(c, t);
    t->next = NULL;
    if (c->done_tail != NULL) c->done_tail->next = t;
    else c->done_head = t;
    c->done_tail = t;
    c->ndone++;
  }
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/***
 * Do the work that is ready and wait at most `wait` seconds (default 0: never block) for more.
 * Returns as soon as at least one transfer finished, nothing is in flight, or the wait is over.
 * Finished transfers are queued for completions().
 * @function client:perform
 * @tparam[opt=0] number wait seconds
 * @treturn integer transfers still in flight
 */
int gm_l_perform(lua_State *L) {
  gm_client *c = gm_checkclient(L, 1);
  lua_Number wait = luaL_optnumber(L, 2, 0);
  size_t before = c->ndone;
  double deadline;
  int running;
  CURLMcode mc;
  if (!(wait >= 0)) return luaL_argerror(L, 2, "wait must be a non-negative number of seconds");
  if (wait > 86400) wait = 86400;
  deadline = wait > 0 ? now_s() + wait : 0;
  for (;;) {
    double left;
    int ms;
    mc = curl_multi_perform(c->multi, &running);
    if (mc != CURLM_OK) return luaL_error(L, "gemini.core: curl_multi_perform: %s", curl_multi_strerror(mc));
    gm_drain_info(c);
    if (c->ndone > before || c->ninflight == 0 || wait <= 0) break;
    left = deadline - now_s();
    if (left <= 0) break;
    ms = (int)(left * 1000 + 0.999);
    mc = curl_multi_poll(c->multi, NULL, 0, ms, NULL);
    if (mc != CURLM_OK) return luaL_error(L, "gemini.core: curl_multi_poll: %s", curl_multi_strerror(mc));
  }
  lua_pushinteger(L, (lua_Integer)c->ninflight);
  return 1;
}

/***
 * Take the results finished since the last call, oldest first (may be empty). Success:
 * `{id=, status=, headers={lowercased name = value}, body=, http_version=, total_time=}`;
 * transport failure: `{id=, error=, kind=, curl_code=, status=nil or partial}`.
 * @function client:completions
 * @treturn table array of results
 */
int gm_l_completions(lua_State *L) {
  gm_client *c = gm_checkclient(L, 1);
  int i = 0;
  gm_transfer *t;
  lua_createtable(L, (int)c->ndone, 0);
  while ((t = c->done_head) != NULL) {
    gm_push_result(L, t);          /* if this raises (memory), t stays queued: nothing is lost */
    lua_rawseti(L, -2, ++i);
    c->done_head = t->next;
    if (c->done_head == NULL) c->done_tail = NULL;
    c->ndone--;
    gm_transfer_release(c, t);
  }
  return 1;
}

/* ---- event-loop mode ------------------------------------------------------------------------ */

static int on_socket(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp) {
  gm_client *c = (gm_client *)userp;
  size_t i;
  (void)e;
  (void)socketp;
  /* coalesce with the latest event for this fd unless that one is a removal (fd may be reused) */
  for (i = c->nsocks; i > 0; i--) {
    if (c->socks[i - 1].fd == fd) {
      if (c->socks[i - 1].what != CURL_POLL_REMOVE) {
        c->socks[i - 1].what = what;
        return 0;
      }
      break;
    }
  }
  if (c->nsocks == c->capsocks) {
    size_t ncap = c->capsocks ? c->capsocks * 2 : 8;
    gm_sockev *ns = (gm_sockev *)realloc(c->socks, ncap * sizeof *ns);
    if (ns == NULL) return -1;
    c->socks = ns;
    c->capsocks = ncap;
  }
  c->socks[c->nsocks].fd = fd;
  c->socks[c->nsocks].what = what;
  c->nsocks++;
  return 0;
}

static int on_timer(CURLM *m, long timeout_ms, void *userp) {
  gm_client *c = (gm_client *)userp;
  (void)m;
  c->timer_ms = timeout_ms;
  c->timer_set = 1;
  return 0;
}

void gm_event_mode(gm_client *c) {
  if (c->event_mode) return;
  c->event_mode = 1;
  curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
  curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, (void *)c);
  curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, on_timer);
  curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, (void *)c);
  if (c->ninflight > 0) {
    /* transfers started before: ask the loop to kick them off */
    c->timer_ms = 0;
    c->timer_set = 1;
  }
}

/***
 * Event-loop mode: tell libcurl that `fd` is readable and/or writable, or (fd = -1) that the
 * timer fired. The first call of this or take_events() switches the client to event mode.
 * @function client:socket_action
 * @tparam integer fd socket, or -1 for a timeout
 * @tparam[opt] boolean readable
 * @tparam[opt] boolean writable
 * @treturn integer transfers still in flight
 */
int gm_l_socket_action(lua_State *L) {
  gm_client *c = gm_checkclient(L, 1);
  lua_Integer fd = luaL_checkinteger(L, 2);
  int mask = 0, running = 0;
  CURLMcode mc;
  if (fd < -1 || fd > 0x7fffffff) return luaL_argerror(L, 2, "fd must be a socket or -1 (timeout)");
  if (lua_toboolean(L, 3)) mask |= CURL_CSELECT_IN;
  if (lua_toboolean(L, 4)) mask |= CURL_CSELECT_OUT;
  gm_event_mode(c);
  mc = curl_multi_socket_action(c->multi, fd < 0 ? CURL_SOCKET_TIMEOUT : (curl_socket_t)fd, fd < 0 ? 0 : mask,
                                &running);
  if (mc != CURLM_OK && mc != CURLM_BAD_SOCKET)
    return luaL_error(L, "gemini.core: curl_multi_socket_action: %s", curl_multi_strerror(mc));
  gm_drain_info(c);
  lua_pushinteger(L, (lua_Integer)c->ninflight);
  return 1;
}

/***
 * Event-loop mode: return and clear what libcurl asked for since the last call:
 * `{ sockets = { {fd=, want="in"|"out"|"inout"|"remove"}, ... }, timeout_ms = n | -1 | nil }`
 * (timeout_ms -1: delete the timer; nil: unchanged). Switches the client to event mode.
 * @function client:take_events
 * @treturn table
 */
int gm_l_take_events(lua_State *L) {
  gm_client *c = gm_checkclient(L, 1);
  size_t i;
  gm_event_mode(c);
  lua_createtable(L, 0, 2);
  lua_createtable(L, (int)c->nsocks, 0);
  for (i = 0; i < c->nsocks; i++) {
    const char *want;
    switch (c->socks[i].what) {
      case CURL_POLL_IN: want = "in"; break;
      case CURL_POLL_OUT: want = "out"; break;
      case CURL_POLL_INOUT: want = "inout"; break;
      default: want = "remove"; break;
    }
    lua_createtable(L, 0, 2);
    lua_pushinteger(L, (lua_Integer)c->socks[i].fd);
    lua_setfield(L, -2, "fd");
    lua_pushstring(L, want);
    lua_setfield(L, -2, "want");
    lua_rawseti(L, -2, (int)i + 1);
  }
  lua_setfield(L, -2, "sockets");
  if (c->timer_set) {
    lua_pushinteger(L, (lua_Integer)c->timer_ms);
    lua_setfield(L, -2, "timeout_ms");
  }
  c->nsocks = 0;
  c->timer_set = 0;
  return 1;
}
