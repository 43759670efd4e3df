/*
 * core.c - luaopen_gemini_core: process-wide libcurl initialisation (exactly once, thread-safe)
 * and the module table. The module keeps no mutable global state.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <time.h>

#include "gemini.h"
#include "gemini_core.h"

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static CURLcode init_result = CURLE_FAILED_INIT;   /* written once, under pthread_once */

static char curl_version_str[256];                 /* copied once, under pthread_once: curl_version() writes a
                                                      static buffer on every call (a data race between states) */

static char curl_version_num[64];                  /* "7.88.1", for the default user agent; likewise
                                                      curl_version_info() rewrites static data on each call */

static void global_init(void) {
  init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
  if (init_result == CURLE_OK) {
    curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
    snprintf(curl_version_str, sizeof curl_version_str, "%s", curl_version());
    snprintf(curl_version_num, sizeof curl_version_num, "%s", v != NULL && v->version ? v->version : "?");
  }
}

const char *gm_libcurl_version(void) {
  (void)pthread_once(&init_once, global_init);
  return curl_version_num;
}

/*** @module gemini.core */

/***
 * Monotonic clock in seconds (fractions included), for deadlines and backoff; not wall time.
 * @function now
 * @treturn number
 */
static int l_now(lua_State *L) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
  return 1;
}

/***
 * Block the calling thread for `seconds` (fractions ok; resumes after signals).
 * @function sleep
 * @tparam number seconds
 */
static int l_sleep(lua_State *L) {
  lua_Number s = luaL_checknumber(L, 1);
  struct timespec req, rem;
  if (!(s >= 0) || s > 1e9) return luaL_argerror(L, 1, "seconds must be a non-negative number");
  req.tv_sec = (time_t)s;
  req.tv_nsec = (long)((s - (lua_Number)req.tv_sec) * 1e9);
  if (req.tv_nsec > 999999999L) req.tv_nsec = 999999999L;
  while (nanosleep(&req, &rem) != 0 && errno == EINTR) req = rem;
  return 0;
}

static const luaL_Reg core_funcs[] = {
  {"client", gm_client_new},
  {"now", l_now},
  {"sleep", l_sleep},
  {"json_decode", gm_l_json_decode},
  {NULL, NULL}
};

/***
 * Load the module: `core.VERSION`, `core.curl_version`, `core.client`, `core.now`, `core.sleep`, `core.handle`,
 * `core.handle_methods`, `core.handle_kind`, `core.handle_fields`, `core.vector`, `core.decode_embeddings`,
 * `core.codec_plan`, `core.json_decode`.
 * @function luaopen_gemini_core
 */
GEMINI_CORE_API int luaopen_gemini_core(lua_State *L) {
  if (pthread_once(&init_once, global_init) != 0 || init_result != CURLE_OK)
    return luaL_error(L, "gemini.core: curl_global_init failed");
  gm_client_register(L);
  gm_newlib(L, core_funcs);
  gm_handle_register(L);
  gm_vector_register(L);
  gm_codec_register(L);
  lua_pushliteral(L, GM_CORE_VERSION);
  lua_setfield(L, -2, "VERSION");
  lua_pushstring(L, curl_version_str);
  lua_setfield(L, -2, "curl_version");
  return 1;
}
