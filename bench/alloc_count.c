/*
 * bench/alloc_count.c -- a minimal Lua 5.4 host that counts allocations.
 *
 *   alloc_count SCRIPT [ARGS...]      (runs SCRIPT like `lua5.4 SCRIPT ARGS...`, with `arg` set)
 *
 * Two counters:
 *  - Lua allocations: a custom lua_Alloc counts every new block (ptr == NULL) and every resize of the Lua
 *    state (strings, tables, closures, userdata; everything Lua code and C modules allocate through Lua);
 *  - C allocations: malloc/calloc/realloc are interposed in this executable (glibc's __libc_* do the work),
 *    so libcurl's, OpenSSL's, nghttp2's and the C core's own mallocs are counted too. The Lua allocator above
 *    calls __libc_* directly, so its blocks are not counted twice.
 * Lua code reads them with   local ac = require "alloc_count"; ac.stats() --> table; ac.reset()
 * Build: cc -std=c99 -O2 -rdynamic -o alloc_count alloc_count.c -I/usr/include/lua5.4 -llua5.4
 */
#define _GNU_SOURCE
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);

static unsigned long long lua_new, lua_resize, lua_frees, lua_bytes;
static unsigned long long c_calls, c_bytes;

#define ADD(var, v) __atomic_fetch_add(&(var), (v), __ATOMIC_RELAXED)

void *malloc(size_t n) {
  ADD(c_calls, 1);
  ADD(c_bytes, n);
  return __libc_malloc(n);
}

void *calloc(size_t a, size_t b) {
  ADD(c_calls, 1);
  ADD(c_bytes, a * b);
  return __libc_calloc(a, b);
}

void *realloc(void *p, size_t n) {
  ADD(c_calls, 1);
  ADD(c_bytes, n);
  return __libc_realloc(p, n);
}

static void *l_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  (void)ud;
  if (nsize == 0) {
    if (ptr) lua_frees++;
    __libc_free(ptr);
    return NULL;
  }
  if (ptr == NULL) {
    lua_new++;
    lua_bytes += nsize;
  } else {
    lua_resize++;
    if (nsize > osize) lua_bytes += nsize - osize;
  }
  return __libc_realloc(ptr, nsize);
}

static int l_stats(lua_State *L) {
  lua_createtable(L, 0, 6);
  lua_pushinteger(L, (lua_Integer)lua_new);    lua_setfield(L, -2, "lua_allocs");
  lua_pushinteger(L, (lua_Integer)lua_resize); lua_setfield(L, -2, "lua_resizes");
  lua_pushinteger(L, (lua_Integer)lua_frees);  lua_setfield(L, -2, "lua_frees");
  lua_pushinteger(L, (lua_Integer)lua_bytes);  lua_setfield(L, -2, "lua_bytes");
  lua_pushinteger(L, (lua_Integer)c_calls);    lua_setfield(L, -2, "c_allocs");
  lua_pushinteger(L, (lua_Integer)c_bytes);    lua_setfield(L, -2, "c_bytes");
  return 1;
}

static int l_reset(lua_State *L) {
  (void)L;
  lua_new = lua_resize = lua_frees = lua_bytes = 0;
  __atomic_store_n(&c_calls, 0, __ATOMIC_RELAXED);
  __atomic_store_n(&c_bytes, 0, __ATOMIC_RELAXED);
  return 0;
}

static int luaopen_alloc_count(lua_State *L) {
  lua_createtable(L, 0, 2);
  lua_pushcfunction(L, l_stats); lua_setfield(L, -2, "stats");
  lua_pushcfunction(L, l_reset); lua_setfield(L, -2, "reset");
  return 1;
}

static int traceback(lua_State *L) {
  luaL_traceback(L, L, lua_tostring(L, 1), 1);
  return 1;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: alloc_count SCRIPT [ARGS...]\n");
    return 2;
  }
  lua_State *L = lua_newstate(l_alloc, NULL);
  if (!L) return 1;
  luaL_openlibs(L);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, luaopen_alloc_count);
  lua_setfield(L, -2, "alloc_count");
  lua_pop(L, 1);
  lua_createtable(L, argc, 1);
  for (int i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - 1);
  }
  lua_setglobal(L, "arg");
  lua_pushcfunction(L, traceback);
  if (luaL_loadfile(L, argv[1]) != LUA_OK) {
    fprintf(stderr, "alloc_count: %s\n", lua_tostring(L, -1));
    lua_close(L);
    return 1;
  }
  for (int i = 2; i < argc; i++) lua_pushstring(L, argv[i]);
  int rc = lua_pcall(L, argc - 2, 0, 1);
  if (rc != LUA_OK) fprintf(stderr, "alloc_count: %s\n", lua_tostring(L, -1));
  lua_close(L);
  return rc == LUA_OK ? 0 : 1;
}
