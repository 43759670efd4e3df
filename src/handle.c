/*
 * handle.c - resource handles: a small userdata per resource (model, tunedModel, corpus,
 * permission, operation, request...). One metatable per kind, registered under
 * "gemini.handle.<kind>". Each handle's own field table (its user value / environment) always
 * holds `name`; `__index` looks there first, then in the kind's methods table.
 */
#define _POSIX_C_SOURCE 200809L
#include <string.h>

#include "gemini.h"

#define GM_HANDLE_PREFIX "gemini.handle."

typedef struct gm_handle {
  unsigned char unused;   /* all state lives in the field table */
} gm_handle;

static void check_kind(lua_State *L, int idx) {
  size_t len, i;
  const char *k = luaL_checklstring(L, idx, &len);
  if (len == 0 || len > 32) luaL_argerror(L, idx, "kind must be a short identifier");
  for (i = 0; i < len; i++) {
    char ch = k[i];
    if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_'))
      luaL_argerror(L, idx, "kind must be a short identifier");
  }
}

static int h_index(lua_State *L) {
  gm_getuv(L, 1);
  if (lua_istable(L, -1)) {
    lua_pushvalue(L, 2);
    lua_rawget(L, -2);
    if (!lua_isnil(L, -1)) return 1;
    lua_pop(L, 2);
  } else {
    lua_pop(L, 1);
  }
  lua_getfield(L, lua_upvalueindex(1), "__methods");
  if (!lua_istable(L, -1)) return 0;
  lua_pushvalue(L, 2);
  lua_rawget(L, -2);
  return 1;
}

static int h_newindex(lua_State *L) {
  if (lua_type(L, 2) == LUA_TSTRING && strcmp(lua_tostring(L, 2), "name") == 0 && lua_type(L, 3) != LUA_TSTRING)
    return luaL_error(L, "gemini.core: a handle's name must be a string");
  gm_getuv(L, 1);
  lua_pushvalue(L, 2);
  lua_pushvalue(L, 3);
  lua_rawset(L, -3);
  return 0;
}

static int h_tostring(lua_State *L) {
  const char *kind;
  lua_getfield(L, lua_upvalueindex(1), "__kind");
  kind = lua_tostring(L, -1);
  gm_getuv(L, 1);
  lua_getfield(L, -1, "name");
  lua_pushfstring(L, "gemini.%s(%s)", kind ? kind : "handle", lua_isstring(L, -1) ? lua_tostring(L, -1) : "?");
  return 1;
}

static int h_eq(lua_State *L) {
  int eq = 0;
  if (lua_getmetatable(L, 1) && lua_getmetatable(L, 2)) {
    if (lua_rawequal(L, -1, -2)) {
      gm_getuv(L, 1);
      lua_getfield(L, -1, "name");
      gm_getuv(L, 2);
      lua_getfield(L, -1, "name");
      eq = lua_rawequal(L, -1, -3);
    }
  }
  lua_pushboolean(L, eq);
  return 1;
}

static int h_gc(lua_State *L) {
  (void)L;   /* nothing owned outside Lua: the field table is collected with the handle */
  return 0;
}

/* Push the metatable for the kind at idx, creating it on first use. */
static void push_kind_mt(lua_State *L, int idx) {
  const char *kind = lua_tostring(L, idx);
  lua_pushfstring(L, GM_HANDLE_PREFIX "%s", kind);
  if (luaL_newmetatable(L, lua_tostring(L, -1))) {
    int mt = lua_gettop(L);
    lua_pushvalue(L, idx);
    lua_setfield(L, mt, "__kind");
    lua_pushfstring(L, "gemini.%s", kind);
    lua_setfield(L, mt, "__name");
    lua_newtable(L);
    lua_setfield(L, mt, "__methods");
    lua_pushvalue(L, mt);
    lua_pushcclosure(L, h_index, 1);
    lua_setfield(L, mt, "__index");
    lua_pushcfunction(L, h_newindex);
    lua_setfield(L, mt, "__newindex");
    lua_pushvalue(L, mt);
    lua_pushcclosure(L, h_tostring, 1);
    lua_setfield(L, mt, "__tostring");
    lua_pushcfunction(L, h_eq);
    lua_setfield(L, mt, "__eq");
    lua_pushcfunction(L, h_gc);
    lua_setfield(L, mt, "__gc");
  }
  lua_remove(L, -2);   /* the registry key */
}

/*** @module gemini.core */

/***
 * Set the methods table used by `__index` for every handle of a kind (replaces any earlier one).
 * @function handle_methods
 * @tparam string kind e.g. "model", "tunedModel", "corpus", "permission", "operation", "request"
 * @tparam table methods
 */
static int l_handle_methods(lua_State *L) {
  check_kind(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  push_kind_mt(L, 1);
  lua_pushvalue(L, 2);
  lua_setfield(L, -2, "__methods");
  return 0;
}

/***
 * Make a resource handle. Fields are copied into the handle's own table; `name` is set last.
 * `tostring(h)` is "gemini.<kind>(<name>)"; two handles of one kind with the same name are ==.
 * @function handle
 * @tparam string kind
 * @tparam string name
 * @tparam[opt] table fields
 * @treturn userdata
 */
static int l_handle(lua_State *L) {
  check_kind(L, 1);
  luaL_checkstring(L, 2);
  if (lua_type(L, 2) != LUA_TSTRING) return luaL_argerror(L, 2, "name must be a string");
  if (!lua_isnoneornil(L, 3)) luaL_checktype(L, 3, LUA_TTABLE);
  lua_settop(L, 3);
  (void)gm_newuserdata(L, sizeof(gm_handle));   /* 4 */
  lua_newtable(L);                             /* 5 */
  if (lua_istable(L, 3)) {
    lua_pushnil(L);
    while (lua_next(L, 3) != 0) {
      lua_pushvalue(L, -2);
      lua_insert(L, -2);
      lua_rawset(L, 5);
    }
  }
  lua_pushvalue(L, 2);
  lua_setfield(L, 5, "name");
  gm_setuv(L, 4);
  push_kind_mt(L, 1);
  lua_setmetatable(L, 4);
  return 1;
}

/* Is the value at idx a handle? Leaves its metatable on the stack when it is. */
static int is_handle(lua_State *L, int idx) {
  if (lua_type(L, idx) != LUA_TUSERDATA || !lua_getmetatable(L, idx)) return 0;
  lua_getfield(L, -1, "__kind");
  if (lua_type(L, -1) == LUA_TSTRING) {
    lua_pushfstring(L, GM_HANDLE_PREFIX "%s", lua_tostring(L, -1));
    lua_rawget(L, LUA_REGISTRYINDEX);
    if (lua_rawequal(L, -1, -3)) {
      lua_pop(L, 2);
      return 1;
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 2);
  return 0;
}

/***
 * The kind of a handle, or nil for any other value.
 * @function handle_kind
 * @param v
 * @treturn string|nil
 */
static int l_handle_kind(lua_State *L) {
  if (!is_handle(L, 1)) {
    lua_pushnil(L);
    return 1;
  }
  lua_getfield(L, -1, "__kind");
  return 1;
}

/***
 * The handle's own field table (live, not a copy), for iteration or bulk updates.
 * @function handle_fields
 * @tparam userdata h
 * @treturn table
 */
static int l_handle_fields(lua_State *L) {
  if (!is_handle(L, 1)) return luaL_argerror(L, 1, "gemini handle expected");
  gm_getuv(L, 1);
  return 1;
}

static const luaL_Reg handle_funcs[] = {
  {"handle", l_handle},
  {"handle_methods", l_handle_methods},
  {"handle_kind", l_handle_kind},
  {"handle_fields", l_handle_fields},
  {NULL, NULL}
};

void gm_handle_register(lua_State *L) {
  gm_setfuncs(L, handle_funcs, 0);
}
