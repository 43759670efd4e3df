/*
 * fuzz/fuzz_jsondec.c - libFuzzer target for core.json_decode (src/jsondec.c), differential against
 * lua-cjson: the reader either declines (nil) or returns exactly what cjson.decode returns for the same
 * text (same types, number subtypes, the sign of zero, string bytes, table contents).
 *
 *   make fuzz        (tools/check/fuzz.sh), or by hand:
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Isrc -I/usr/include/lua5.4 fuzz/fuzz_jsondec.c \
 *     src/jsondec.c -llua5.4 -o fuzz_jsondec
 *   ./fuzz_jsondec -max_total_time=60 fuzz/corpus/jsondec
 *
 * fuzz-sources: src/jsondec.c
 * fuzz-libs: -llua5.4
 *
 * One Lua state for the whole run (cjson loaded once, as a private cjson.new() instance with
 * decode_invalid_numbers off, as gemini.json's default codec). A disagreement, or a Lua stack that is
 * not back where it was, aborts.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int gm_l_json_decode(lua_State *L);

static const char CHECK[] =
  "local decode, cj = ...\n"
  "local function differ(a, b)\n"
  "  if type(a) ~= type(b) then return true end\n"
  "  if type(a) == 'number' then\n"
  "    if math.type(a) ~= math.type(b) then return true end\n"
  "    return a ~= b or (a == 0 and 1 / a ~= 1 / b)\n"
  "  end\n"
  "  if type(a) ~= 'table' then return a ~= b end\n"
  "  for k, v in pairs(a) do if differ(v, b[k]) then return true end end\n"
  "  for k in pairs(b) do if a[k] == nil then return true end end\n"
  "  return false\n"
  "end\n"
  "return function(s)\n"
  "  local mine = decode(s, cj.null)\n"
  "  if mine == nil then return 'declined' end\n"
  "  local ok, theirs = pcall(cj.decode, s)\n"
  "  if not ok then return 'accepted what cjson refuses: ' .. tostring(theirs) end\n"
  "  if differ(mine, theirs) then return 'differs from cjson' end\n"
  "  return 'same'\n"
  "end\n";

static lua_State *state(void) {
  static lua_State *L;
  if (L != NULL) return L;
  L = luaL_newstate();
  if (L == NULL) abort();
  luaL_openlibs(L);
  if (luaL_loadstring(L, CHECK) != LUA_OK) abort();
  lua_pushcfunction(L, gm_l_json_decode);
  if (luaL_dostring(L, "local c = require('cjson').new(); c.decode_invalid_numbers(false); return c") != LUA_OK) {
    fprintf(stderr, "fuzz_jsondec: %s\n", lua_tostring(L, -1));
    abort();
  }
  if (lua_pcall(L, 2, 1, 0) != LUA_OK) abort();
  lua_setfield(L, LUA_REGISTRYINDEX, "fuzz_jsondec.check");
  return L;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  lua_State *L = state();
  int top = lua_gettop(L);
  const char *verdict;
  lua_getfield(L, LUA_REGISTRYINDEX, "fuzz_jsondec.check");
  lua_pushlstring(L, (const char *)data, size);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
    fprintf(stderr, "fuzz_jsondec: raised: %s\n", lua_tostring(L, -1));
    abort();
  }
  verdict = lua_tostring(L, -1);
  if (verdict == NULL || (strcmp(verdict, "same") != 0 && strcmp(verdict, "declined") != 0)) {
    fprintf(stderr, "fuzz_jsondec: %s\n", verdict ? verdict : "(no verdict)");
    abort();
  }
  lua_pop(L, 1);
  if (lua_gettop(L) != top) abort();
  lua_gc(L, LUA_GCSTEP, 0);
  return 0;
}
