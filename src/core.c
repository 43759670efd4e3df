/*
 * core.c - luaopen_gemini_core: process-wide libcurl initialisation (exactly once, thread-safe)
 * and the module table. The module keeps no mutable global state.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>

#include "gemini.h"

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static CURLcode init_result = CURLE_FAILED_INIT;   /* written once, under pthread_once */

static void global_init(void) {
  init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static const luaL_Reg core_funcs[] = {
  {"client", gm_client_new},
  {NULL, NULL}
};

/***
 * Load the module: `core.VERSION`, `core.curl_version`, `core.client`, `core.handle`,
 * `core.handle_methods`, `core.handle_kind`, `core.handle_fields`.
 * @function luaopen_gemini_core
 */
int luaopen_gemini_core(lua_State *L);
int luaopen_gemini_core(lua_State *L) {
  if (pthread_once(&init_once, global_init) != 0 || init_result != CURLE_OK)
    return luaL_error(L, "gemini.core: curl_global_init failed");
  gm_client_register(L);
  gm_newlib(L, core_funcs);
  gm_handle_register(L);
  lua_pushliteral(L, GM_CORE_VERSION);
  lua_setfield(L, -2, "VERSION");
  lua_pushstring(L, curl_version());
  lua_setfield(L, -2, "curl_version");
  return 1;
}
