/*
 * compat.h - shims so the same C source builds against Lua 5.1, LuaJIT 2.1, Lua 5.3 and Lua 5.4.
 *
 * Everything here is prefixed gm_ so it never collides with what a given Lua (or LuaJIT, which
 * already ships a few 5.2 functions such as luaL_setfuncs and luaL_testudata) provides itself.
 */
#ifndef GEMINI_COMPAT_H
#define GEMINI_COMPAT_H

#include <lua.h>
#include <lauxlib.h>

/* LuaJIT 2.1 is a 5.1 ABI whose lauxlib.h already has some 5.2 functions (luaL_setfuncs,
 * luaL_testudata, luaL_newlib). luajit.h, where LUAJIT_VERSION_NUM lives, is not included here,
 * so detect it by what its lauxlib.h declares. */
#if LUA_VERSION_NUM == 501 && defined(luaL_newlib)
#define GM_LUAJIT21 1
#else
#define GM_LUAJIT21 0
#endif

/* Full userdata with one user value (5.4) / uservalue (5.2, 5.3) / environment table (5.1, LuaJIT). */
#if LUA_VERSION_NUM >= 504
#define gm_newuserdata(L, sz) lua_newuserdatauv((L), (sz), 1)
#define gm_setuv(L, idx)      ((void)lua_setiuservalue((L), (idx), 1))
#define gm_getuv(L, idx)      ((void)lua_getiuservalue((L), (idx), 1))
#elif LUA_VERSION_NUM >= 502
#define gm_newuserdata(L, sz) lua_newuserdata((L), (sz))
#define gm_setuv(L, idx)      lua_setuservalue((L), (idx))
#define gm_getuv(L, idx)      ((void)lua_getuservalue((L), (idx)))
#else
#define gm_newuserdata(L, sz) lua_newuserdata((L), (sz))
#define gm_setuv(L, idx)      ((void)lua_setfenv((L), (idx)))
#define gm_getuv(L, idx)      lua_getfenv((L), (idx))
#endif

#if LUA_VERSION_NUM >= 502
#define gm_rawlen(L, idx) lua_rawlen((L), (idx))
#else
#define gm_rawlen(L, idx) lua_objlen((L), (idx))
#endif

/* luaL_setfuncs: native in 5.2+ and in LuaJIT 2.1; a local copy for plain 5.1. */
#if LUA_VERSION_NUM >= 502 || GM_LUAJIT21
#define gm_setfuncs(L, l, nup) luaL_setfuncs((L), (l), (nup))
#else
static inline void gm_setfuncs(lua_State *L, const luaL_Reg *l, int nup) {
  luaL_checkstack(L, nup + 1, "too many upvalues");
  for (; l->name != NULL; l++) {
    int i;
    for (i = 0; i < nup; i++) lua_pushvalue(L, -nup);
    lua_pushcclosure(L, l->func, nup);
    lua_setfield(L, -(nup + 2), l->name);
  }
  lua_pop(L, nup);
}
#endif

#define gm_newlib(L, l) (lua_newtable(L), gm_setfuncs((L), (l), 0))

/* luaL_testudata: native in 5.2+ and in LuaJIT 2.1. */
#if LUA_VERSION_NUM >= 502 || GM_LUAJIT21
#define gm_testudata(L, i, t) luaL_testudata((L), (i), (t))
#else
static inline void *gm_testudata(lua_State *L, int i, const char *tname) {
  void *p = lua_touserdata(L, i);
  if (p != NULL && lua_getmetatable(L, i)) {
    lua_getfield(L, LUA_REGISTRYINDEX, tname);
    if (!lua_rawequal(L, -1, -2)) p = NULL;
    lua_pop(L, 2);
    return p;
  }
  return NULL;
}
#endif

/* lua_isinteger: 5.3+; elsewhere a number with no fractional part. */
#if LUA_VERSION_NUM >= 503
#define gm_isinteger(L, i) lua_isinteger((L), (i))
#else
static inline int gm_isinteger(lua_State *L, int i) {
  if (lua_type(L, i) == LUA_TNUMBER) {
    lua_Number n = lua_tonumber(L, i);
    return n == (lua_Number)(lua_Integer)n;
  }
  return 0;
}
#endif

#endif
