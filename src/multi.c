/*
 * multi.c - driving transfers: perform() (curl_multi_poll + curl_multi_perform), the completion
 * queue drained by completions(), and the event-loop mode where libcurl's socket and timer
 * callbacks only record into C arrays that take_events() hands to Lua after curl has returned.
 */
#define _POSIX_C_SOURCE 200809L
/* curl_multi_socket_all (resync of transfers started before the socket interface was on) is marked
   deprecated in favour of socket_action, which cannot do that job */
#define CURL_DISABLE_DEPRECATION 1
#include <poll.h>
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

static CURLMcode drive_sockets(gm_client *c, int ms);

/* The optional `wait` argument of perform() and await(): non-negative seconds, at most a day. */
static lua_Number opt_wait(lua_State *L, int idx) {
  lua_Number wait = luaL_optnumber(L, idx, 0);
  if (!(wait >= 0)) luaL_argerror(L, idx, "wait must be a non-negative number of seconds");
  return wait > 86400 ? 86400 : wait;
}

/* Drive libcurl until done(c, ud) holds after a round, nothing more can be waited for (wait <= 0:
   one round), or `wait` seconds are over. A round: once the socket interface is on, wait for a live
   socket or the timer and act on it (drive_sockets); otherwise curl_multi_perform, then
   curl_multi_poll for what is left of the wait. Finished transfers go to the completion queue after
   each round, before done() is asked. Raises on a libcurl error. perform() and await() both drive
   with this; only their done() differs. */
static void drive_until(lua_State *L, gm_client *c, lua_Number wait, int (*done)(gm_client *, void *), void *ud) {
  double deadline = wait > 0 ? now_s() + wait : 0;
  int running;
  CURLMcode mc;
  if (c->sockcb) {
    for (;;) {
      double left = wait > 0 ? deadline - now_s() : 0;
      mc = drive_sockets(c, left > 0 ? (int)(left * 1000 + 0.999) : 0);
      if (mc != CURLM_OK) luaL_error(L, "gemini.core: curl_multi_socket_action: %s", curl_multi_strerror(mc));
      gm_drain_info(c);
      if (done(c, ud) || wait <= 0 || now_s() >= deadline) return;
    }
  }
  for (;;) {
    double left;
    mc = curl_multi_perform(c->multi, &running);
    if (mc != CURLM_OK) luaL_error(L, "gemini.core: curl_multi_perform: %s", curl_multi_strerror(mc));
    gm_drain_info(c);
    if (done(c, ud) || wait <= 0) return;
    left = deadline - now_s();
    if (left <= 0) return;
    mc = curl_multi_poll(c->multi, NULL, 0, (int)(left * 1000 + 0.999), NULL);
    if (mc != CURLM_OK) luaL_error(L, "gemini.core: curl_multi_poll: %s", curl_multi_strerror(mc));
  }
}

/* perform()'s done: a transfer finished since the call (the queue grew past *before), or none is in flight */
static int perform_done(gm_client *c, void *before) {
  return c->ndone > *(const size_t *)before || c->ninflight == 0;
}

/*** @module gemini.core */

/***
 * Do the work that is ready and wait at most `wait` seconds (default 0: never block) for more.
 * Returns as soon as at least one transfer finished, nothing is in flight, or the wait is over.
 * Finished transfers are queued for completions(). Once the socket interface is on (event mode,
 * now or before), this drives libcurl through curl_multi_socket_action on the sockets libcurl
 * announced, so every socket change is recorded for take_events(); otherwise curl_multi_perform
 * and curl_multi_poll.
 * @function client:perform
 * @tparam[opt=0] number wait seconds
 * @treturn integer transfers still in flight
 */
int gm_l_perform(lua_State *L) {
  gm_client *c = gm_checkclient(L, 1);
  lua_Number wait = opt_wait(L, 2);
  size_t before = c->ndone;
  drive_until(L, c, wait, perform_done, &before);
  lua_pushinteger(L, (lua_Integer)c->ninflight);
  return 1;
}

/***
 * Take the results finished since the last call, oldest first (may be empty). Success:
 * `{id=, status=, headers={lowercased name = value}, body=, http_version=, total_time=}`;
 * transport failure: `{id=, error=, kind=, curl_code=, status=nil or partial}`.
 * With `lines` true, a response's headers come as one string `header_lines` instead of the
 * `headers` table, as await() gives them.
 * @function client:completions
 * @tparam[opt] boolean lines
 * @treturn table array of results
 */
int gm_l_completions(lua_State *L) {
  gm_client *c = gm_checkclient(L, 1);
  int i = 0, lines = lua_toboolean(L, 2);
  gm_transfer *t;
  lua_createtable(L, (int)c->ndone, 0);
  while ((t = c->done_head) != NULL) {
    gm_push_result(L, t, lines);   /* if this raises (memory), t stays queued: nothing is lost */
    lua_rawseti(L, -2, ++i);
    gm_done_unlink(c, t, NULL);
    gm_transfer_release(c, t);
  }
  return 1;
}

/* The finished transfer `id` in the completion queue, or NULL; *prevp gets the one before it. */
gm_transfer *gm_done_find(gm_client *c, lua_Integer id, gm_transfer **prevp) {
  gm_transfer *t, *prev = NULL;
  for (t = c->done_head; t != NULL; prev = t, t = t->next)
    if (t->id == id) break;
  *prevp = prev;
  return t;
}

/* Takes t (after prev, NULL for the head) out of the completion queue; the caller owns it then. */
void gm_done_unlink(gm_client *c, gm_transfer *t, gm_transfer *prev) {
  if (prev != NULL) prev->next = t->next;
  else c->done_head = t->next;
  if (c->done_tail == t) c->done_tail = prev;
  c->ndone--;
}

/* The transfer `id` in flight, or NULL. */
gm_transfer *gm_inflight_find(gm_client *c, lua_Integer id) {
  gm_transfer *t;
  for (t = c->inflight; t != NULL; t = t->next)
    if (t->id == id) break;
  return t;
}

/* await()'s done: transfer `id` is in the completion queue (found: t, and prev, the one before it) */
struct awaited {
  lua_Integer id;
  gm_transfer *t, *prev;
};

static int await_done(gm_client *c, void *ud) {
  struct awaited *a = (struct awaited *)ud;
  a->t = gm_done_find(c, a->id, &a->prev);
  return a->t != NULL;
}

/***
 * Drive like perform(wait), but until transfer `id` has finished: then take its result out of the
 * queue and return it: the table completions() would list, except that the headers of a response
 * come as one string, `header_lines` ("name:value\n" each, names lowercased, in arrival order), not
 * as the `headers` table. Results of other transfers stay queued for completions(). Returns nil when `wait` is over first, or when `id` is neither in flight nor
 * queued. Returns false, doing nothing, once the socket interface is on (event mode, now or before):
 * drive with perform() and completions() then. A blocking call alone in flight waits with this.
 * @function client:await
 * @tparam integer id from start()
 * @tparam[opt=0] number wait seconds
 * @treturn table|nil|false the result
 */
int gm_l_await(lua_State *L) {
  gm_client *c = gm_checkclient(L, 1);
  lua_Integer id = luaL_checkinteger(L, 2);
  lua_Number wait = opt_wait(L, 3);
  struct awaited a;
  if (c->sockcb) {
    lua_pushboolean(L, 0);
    return 1;
  }
  a.id = id;
  if (!await_done(c, &a)) {
    if (gm_inflight_find(c, id) == NULL) {
      lua_pushnil(L);
      return 1;
    }
    drive_until(L, c, wait, await_done, &a);
  }
  if (a.t == NULL) {
    lua_pushnil(L);
    return 1;
  }
  gm_push_result(L, a.t, 1);       /* if this raises (memory), a.t stays queued: nothing is lost */
  gm_done_unlink(c, a.t, a.prev);
  gm_transfer_release(c, a.t);
  return 1;
}

/* ---- the socket interface and event-loop mode --------------------------------------------- */

/* Append an event to the queue Lua takes, coalesced with the latest one for this fd unless that one
   is a removal (the fd may be reused). Returns -1 when out of memory. */
static int queue_event(gm_client *c, curl_socket_t fd, int what) {
  size_t i;
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

/* libcurl's socket callback: keeps `live` (one entry per watched socket, so it never grows beyond the
   sockets libcurl uses) and, in event mode only, queues the change for Lua. C memory only. */
static int on_socket(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp) {
  gm_client *c = (gm_client *)userp;
  size_t i;
  (void)e;
  (void)socketp;
  for (i = 0; i < c->nlive && c->live[i].fd != fd; i++) {}
  if (what == CURL_POLL_REMOVE) {
    if (i < c->nlive) c->live[i] = c->live[--c->nlive];
  } else if (i < c->nlive) {
    c->live[i].what = what;
  } else {
    if (c->nlive == c->caplive) {
      size_t ncap = c->caplive ? c->caplive * 2 : 8;
      gm_sockev *nl = (gm_sockev *)realloc(c->live, ncap * sizeof *nl);
      if (nl == NULL) return -1;
      c->live = nl;
      c->caplive = ncap;
    }
    c->live[c->nlive].fd = fd;
    c->live[c->nlive].what = what;
    c->nlive++;
  }
  if (c->event_mode && queue_event(c, fd, what) != 0) return -1;
  return 0;
}

static int on_timer(CURLM *m, long timeout_ms, void *userp) {
  gm_client *c = (gm_client *)userp;
  (void)m;
  c->timer_at = timeout_ms < 0 ? -1 : now_s() + (double)timeout_ms / 1000;
  if (c->event_mode) {
    c->timer_ms = timeout_ms;
    c->timer_set = 1;
  }
  return 0;
}

/* Turn the socket interface on (for good): from here on perform() drives with socket_action too.
   Transfers already in flight were driven by curl_multi_perform, which announces no socket:
   curl_multi_socket_all makes libcurl announce theirs now. */
static CURLMcode socket_interface(gm_client *c) {
  int running;
  CURLMcode mc = CURLM_OK;
  if (c->sockcb) return CURLM_OK;
  c->sockcb = 1;
  curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
  curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, (void *)c);
  curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, on_timer);
  curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, (void *)c);
  if (c->ninflight > 0) {
    mc = curl_multi_socket_all(c->multi, &running);
    gm_drain_info(c);
  }
  return mc;
}

/* Wait at most ms for a live socket or libcurl's timer, then tell libcurl what happened. */
static CURLMcode drive_sockets(gm_client *c, int ms) {
  struct pollfd local[16], *pf = local;
  size_t n = c->nlive, i;
  int rc, running;
  CURLMcode mc = CURLM_OK;
  if (c->timer_at >= 0) {
    double left = c->timer_at - now_s();
    int tm = left > 0 ? (int)(left * 1000 + 0.999) : 0;
    if (tm < ms) ms = tm;
  }
  if (n > sizeof local / sizeof local[0]) {
    pf = (struct pollfd *)malloc(n * sizeof *pf);
    if (pf == NULL) return CURLM_OUT_OF_MEMORY;
  }
  for (i = 0; i < n; i++) {
    pf[i].fd = c->live[i].fd;
    pf[i].events = (short)(((c->live[i].what & CURL_POLL_IN) ? POLLIN : 0) |
                           ((c->live[i].what & CURL_POLL_OUT) ? POLLOUT : 0));
    pf[i].revents = 0;
  }
  rc = poll(pf, (nfds_t)n, ms);   /* an error (EINTR, ENOMEM): nothing is ready, the timer still runs */
  for (i = 0; rc > 0 && i < n; i++) {
    int mask = 0;
    if (pf[i].revents == 0) continue;
    if (pf[i].revents & (POLLIN | POLLHUP)) mask |= CURL_CSELECT_IN;
    if (pf[i].revents & POLLOUT) mask |= CURL_CSELECT_OUT;
    if (pf[i].revents & (POLLERR | POLLNVAL)) mask |= CURL_CSELECT_ERR;
    /* an earlier action may have closed this socket: libcurl then answers CURLM_BAD_SOCKET */
    mc = curl_multi_socket_action(c->multi, pf[i].fd, mask, &running);
    if (mc == CURLM_BAD_SOCKET) mc = CURLM_OK;
    if (mc != CURLM_OK) break;
  }
  if (pf != local) free(pf);
  if (mc == CURLM_OK && c->timer_at >= 0 && c->timer_at <= now_s() + 0.0005) {
    c->timer_at = -1;   /* libcurl calls on_timer again with what is next */
    mc = curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  }
  return mc;
}

/* Event mode on: the socket interface, and a fresh record of every watched socket and the timer for
   Lua (the loop may be new: a later attach after event_mode(false) gets the whole picture). */
CURLMcode gm_event_mode(gm_client *c) {
  CURLMcode mc;
  size_t i;
  if (c->event_mode) return CURLM_OK;
  mc = socket_interface(c);
  c->event_mode = 1;
  c->nsocks = 0;
  for (i = 0; i < c->nlive; i++)
    if (queue_event(c, c->live[i].fd, c->live[i].what) != 0) return CURLM_OUT_OF_MEMORY;
  c->timer_set = 0;
  if (c->timer_at >= 0) {
    double left = c->timer_at - now_s();
    c->timer_ms = left > 0 ? (long)(left * 1000 + 0.999) : 0;
    c->timer_set = 1;
  }
  if (c->ninflight > 0) {
    /* transfers in flight: ask the loop to kick them off */
    c->timer_ms = 0;
    c->timer_set = 1;
  }
  return mc;
}

static void check_event_mode(lua_State *L, gm_client *c) {
  CURLMcode mc = gm_event_mode(c);
  if (mc != CURLM_OK) luaL_error(L, "gemini.core: event mode: %s", curl_multi_strerror(mc));
}

/***
 * Event-loop mode: tell libcurl that `fd` is readable, writable and/or in error, or (fd = -1) that
 * the timer fired. The first call of this or take_events() switches the client to event mode.
 * @function client:socket_action
 * @tparam integer fd socket, or -1 for a timeout
 * @tparam[opt] boolean readable
 * @tparam[opt] boolean writable
 * @tparam[opt] boolean error the poll reported an error on the socket (CURL_CSELECT_ERR)
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
  if (lua_toboolean(L, 5)) mask |= CURL_CSELECT_ERR;
  check_event_mode(L, c);
  if (fd < 0) c->timer_at = -1;   /* libcurl calls on_timer again with what is next */
  mc = curl_multi_socket_action(c->multi, fd < 0 ? CURL_SOCKET_TIMEOUT : (curl_socket_t)fd, fd < 0 ? 0 : mask,
                                &running);
  if (mc != CURLM_OK && mc != CURLM_BAD_SOCKET)
    return luaL_error(L, "gemini.core: curl_multi_socket_action: %s", curl_multi_strerror(mc));
  gm_drain_info(c);
  lua_pushinteger(L, (lua_Integer)c->ninflight);
  return 1;
}

/***
 * Event-loop mode on or off; returns whether it is on. On (as the first take_events() or
 * socket_action() does): the next take_events() reports every socket libcurl watches and the timer,
 * so a new loop starts from the whole picture. Off (an adapter detaching): nothing more is recorded
 * for Lua. Either way, once on, perform() keeps driving libcurl through its socket interface.
 * @function client:event_mode
 * @tparam[opt] boolean on
 * @treturn boolean
 */
int gm_l_event_mode(lua_State *L) {
  gm_client *c = gm_checkclient(L, 1);
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TBOOLEAN);
    if (lua_toboolean(L, 2)) {
      check_event_mode(L, c);
    } else if (c->event_mode) {
      c->event_mode = 0;
      free(c->socks);
      c->socks = NULL;
      c->nsocks = c->capsocks = 0;
      c->timer_set = 0;
    }
  }
  lua_pushboolean(L, c->event_mode);
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
  check_event_mode(L, c);
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
