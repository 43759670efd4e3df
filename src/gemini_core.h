/*
 * gemini_core.h - the one C entry point of gemini.core, for hosts that embed Lua.
 *
 * A Lua interpreter loads gemini.core as a C module (build/<lua>/gemini/core.so) and needs nothing
 * from this header. A C host that links the core statically (compile src/[a-z]*.c into the program
 * and link libcurl) registers the module before the Lua layer (lua/gemini/) requires it:
 *
 *   #include "gemini_core.h"
 *   luaL_requiref(L, "gemini.core", luaopen_gemini_core, 0);  lua_pop(L, 1);      (Lua 5.2+)
 *   -- or, on any Lua: package.preload["gemini.core"] = luaopen_gemini_core
 *
 * luaopen_gemini_core may be called by many lua_States, from many threads at once: libcurl is
 * initialised exactly once (pthread_once), and the module keeps no mutable global state. Each
 * lua_State must be used by one thread at a time, as Lua requires; a client belongs to its state.
 * curl_global_cleanup is never called (it is not safe while another state may still use libcurl).
 */
#ifndef GEMINI_CORE_H
#define GEMINI_CORE_H

#include <lua.h>

#ifndef GEMINI_CORE_API
#if defined(_WIN32)
#define GEMINI_CORE_API __declspec(dllexport)
#elif defined(__GNUC__)
#define GEMINI_CORE_API __attribute__((visibility("default")))
#else
#define GEMINI_CORE_API
#endif
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Pushes the module table (gemini.core) and returns 1; raises if libcurl cannot be initialised. */
GEMINI_CORE_API int luaopen_gemini_core(lua_State *L);

#ifdef __cplusplus
}
#endif

#endif
