/*
 * A C host embedding Lua with lua-gemini linked in statically: the shape of a game engine or any
 * application with its own main loop.
 *
 *   host [--lua-dir DIR] [--script FILE] [--requests N] [--max-frames N] [--frame-ms N] BASE_URL
 *
 * 1. Opens a Lua state and registers the C core (the src/ C files compiled into this program) as the module
 *    "gemini.core", so `require "gemini"` finds it without any shared library.
 * 2. Puts the Lua layer (the lua/gemini modules) on package.path and runs a script (examples/embed/game.lua)
 *    that creates a client and starts requests, each with a callback.
 * 3. Runs a frame loop: every frame calls client:poll(0), which never blocks, then "renders" by
 *    sleeping the rest of the frame. It stops when no request is in flight.
 * 4. Asks the script whether every reply arrived, checks that no poll(0) took long, and exits 0 or 1.
 *
 * Builds warning-free as C99 against Lua 5.4 (and 5.1/LuaJIT/5.3: see register_core).
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lua.h"
#include "lauxlib.h"
#include "lualib.h"

/* The one C entry point of the core (src/core.c). Nothing else in src/ is called by an embedder. */
int luaopen_gemini_core(lua_State *L);

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(long ms) {
  struct timespec ts;
  if (ms <= 0) return;
  ts.tv_sec = ms / 1000;
  ts.tv_nsec = (ms % 1000) * 1000000L;
  nanosleep(&ts, NULL);
}

/* Message handler for lua_pcall: the error plus a traceback. */
static int traceback(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (msg == NULL) msg = "(error object is not a string)";
#if LUA_VERSION_NUM >= 502 || defined(luaL_newlib) /* luaL_newlib: LuaJIT 2.1 has the 5.2 auxlib */
  luaL_traceback(L, L, msg, 1);
#else
  lua_pushstring(L, msg); /* plain Lua 5.1 has no luaL_traceback */
#endif
  return 1;
}

/* lua_pcall with the traceback handler; on error prints it, pops it and returns 0. */
static int call(lua_State *L, int nargs, int nresults, const char *what) {
  int base = lua_gettop(L) - nargs;
  int rc;
  lua_pushcfunction(L, traceback);
  lua_insert(L, base);
  rc = lua_pcall(L, nargs, nresults, base);
  lua_remove(L, base);
  if (rc != 0) {
    fprintf(stderr, "embed: %s: %s\n", what, lua_tostring(L, -1));
    lua_pop(L, 1);
    return 0;
  }
  return 1;
}

/* Registers the statically linked core as "gemini.core". */
static void register_core(lua_State *L) {
#if LUA_VERSION_NUM >= 502
  luaL_requiref(L, "gemini.core", luaopen_gemini_core, 0); /* sets package.loaded["gemini.core"] */
  lua_pop(L, 1);
#else
  /* Lua 5.1 / LuaJIT: package.preload["gemini.core"] = luaopen_gemini_core */
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "preload");
  lua_pushcfunction(L, luaopen_gemini_core);
  lua_setfield(L, -2, "gemini.core");
  lua_pop(L, 2);
#endif
}

/* package.path = DIR/?.lua;DIR/?/init.lua;<previous> */
static void add_lua_dir(lua_State *L, const char *dir) {
  lua_getglobal(L, "package");
  lua_pushfstring(L, "%s/?.lua;%s/?/init.lua;", dir, dir);
  lua_getfield(L, -2, "path");
  lua_concat(L, 2);
  lua_setfield(L, -2, "path");
  lua_pop(L, 1);
}

static void usage(void) {
  fprintf(stderr, "usage: host [--lua-dir DIR] [--script FILE] [--requests N] [--max-frames N] "
                  "[--frame-ms N] BASE_URL\n");
}

int main(int argc, char **argv) {
  const char *lua_dir = "lua", *script = "examples/embed/game.lua", *url = NULL;
  long requests = 12, max_frames = 2000, frame_ms = 5;
  long frame = 0, in_flight = -1, slow_polls = 0;
  double t0, max_poll = 0, total_poll = 0, elapsed;
  int i, game_ref, client_ref, ok = 0;
  lua_State *L;

  for (i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--lua-dir") == 0 && i + 1 < argc) lua_dir = argv[++i];
    else if (strcmp(argv[i], "--script") == 0 && i + 1 < argc) script = argv[++i];
    else if (strcmp(argv[i], "--requests") == 0 && i + 1 < argc) requests = atol(argv[++i]);
    else if (strcmp(argv[i], "--max-frames") == 0 && i + 1 < argc) max_frames = atol(argv[++i]);
    else if (strcmp(argv[i], "--frame-ms") == 0 && i + 1 < argc) frame_ms = atol(argv[++i]);
    else if (argv[i][0] != '-' && url == NULL) url = argv[i];
    else { usage(); return 2; }
  }
  if (url == NULL || requests < 1 || max_frames < 1) { usage(); return 2; }

  L = luaL_newstate();
  if (L == NULL) { fprintf(stderr, "embed: out of memory\n"); return 1; }
  luaL_openlibs(L);
  register_core(L);
  add_lua_dir(L, lua_dir);

  /* game = dofile(script); client = game.start(url, requests) */
  if (luaL_loadfile(L, script) != 0) {
    fprintf(stderr, "embed: %s\n", lua_tostring(L, -1));
    lua_close(L);
    return 1;
  }
  if (!call(L, 0, 1, script) || !lua_istable(L, -1)) {
    fprintf(stderr, "embed: %s must return a table\n", script);
    lua_close(L);
    return 1;
  }
  game_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_rawgeti(L, LUA_REGISTRYINDEX, game_ref);
  lua_getfield(L, -1, "start");
  lua_remove(L, -2);
  lua_pushstring(L, url);
  lua_pushinteger(L, (lua_Integer)requests);
  if (!call(L, 2, 1, "game.start")) { lua_close(L); return 1; }
  client_ref = luaL_ref(L, LUA_REGISTRYINDEX);

  /* The frame loop: poll(0) once per frame while requests are in flight. */
  t0 = now_s();
  for (frame = 0; frame < max_frames; frame++) {
    double p0 = now_s(), dt;
    lua_rawgeti(L, LUA_REGISTRYINDEX, client_ref); /* client */
    lua_getfield(L, -1, "poll");                   /* client, client.poll */
    lua_insert(L, -2);                             /* client.poll, client */
    lua_pushnumber(L, 0);                          /* client.poll, client, 0 */
    if (!call(L, 2, 1, "client:poll(0)")) break;   /* callbacks run inside poll */
    in_flight = (long)lua_tointeger(L, -1);
    lua_pop(L, 1);
    dt = now_s() - p0;
    total_poll += dt;
    if (dt > max_poll) max_poll = dt;
    if (dt > 0.05) slow_polls++;
    if (in_flight == 0) break;
    sleep_ms(frame_ms); /* the rest of the frame: simulate, render, swap buffers */
  }
  elapsed = now_s() - t0;

  /* ok, summary = game.finish() */
  lua_rawgeti(L, LUA_REGISTRYINDEX, game_ref);
  lua_getfield(L, -1, "finish");
  lua_remove(L, -2);
  if (call(L, 0, 2, "game.finish")) {
    ok = lua_toboolean(L, -2);
    printf("embed: %s\n", lua_isstring(L, -1) ? lua_tostring(L, -1) : "(no summary)");
    lua_pop(L, 2);
  }
  printf("embed: %ld frames in %.0f ms, poll(0) max %.1f ms, mean %.2f ms, in flight at end %ld\n",
         frame + 1, elapsed * 1000, max_poll * 1000, total_poll * 1000 / (double)(frame + 1), in_flight);
  if (in_flight != 0) { fprintf(stderr, "embed: requests still in flight after %ld frames\n", frame); ok = 0; }
  if (slow_polls > 0) { fprintf(stderr, "embed: %ld poll(0) calls took over 50 ms\n", slow_polls); ok = 0; }
  if (frame < 10) { fprintf(stderr, "embed: only %ld frames: did poll(0) block?\n", frame); ok = 0; }

  luaL_unref(L, LUA_REGISTRYINDEX, client_ref);
  luaL_unref(L, LUA_REGISTRYINDEX, game_ref);
  lua_close(L); /* collects the client: its __gc closes the core client and curl handles */
  return ok ? 0 : 1;
}
