/*
 * tests/threads.c - two OS threads, each with its own lua_State and gemini.core client, making
 * requests at the same time against the URL given on argv[1]. gemini.core initialises libcurl
 * once (pthread_once) no matter how many states load it concurrently.
 *
 *   cc -std=c99 -Isrc -o threads tests/threads.c src/[a-z]*.c -I/usr/include/lua5.4 -llua5.4 -lcurl -lpthread
 *   ./threads http://127.0.0.1:PORT/path     -> "thread N: 25 ok" per thread, exit status 0
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#include "gemini_core.h"

#define REQUESTS 25

static const char *script =
  "local url, n = ...\n"
  "local core = require 'gemini.core'\n"
  "local c = core.client{ timeout = 20 }\n"
  "local ok = 0\n"
  "for i = 1, n do\n"
  "  local a = c:start{ url = url .. '?a' .. i }\n"
  "  local b = c:start{ url = url .. '?b' .. i, method = 'POST', body = 'x' }\n"
  "  local got = {}\n"
  "  while c:in_flight() > 0 do c:perform(1) end\n"
  "  for _, r in ipairs(c:completions()) do got[r.id] = r end\n"
  "  if got[a] and got[a].status == 200 and got[b] and got[b].status == 200 then ok = ok + 1\n"
  "  else\n"
  "    local function d(r)\n"
  "      if not r then return 'no result' end\n"
  "      return ('status %s kind %s curl_code %s: %s'):format(tostring(r.status), tostring(r.kind),\n"
  "        tostring(r.curl_code), tostring(r.error))\n"
  "    end\n"
  "    error('request ' .. i .. ' failed: a: ' .. d(got[a]) .. '; b: ' .. d(got[b]))\n"
  "  end\n"
  "end\n"
  "c:close()\n"
  "return ok\n";

struct job {
  int index;
  const char *url;
  int ok;
  char err[512];
};

static void *run(void *arg) {
  struct job *j = (struct job *)arg;
  lua_State *L = luaL_newstate();
  if (L == NULL) {
    snprintf(j->err, sizeof j->err, "luaL_newstate failed");
    return NULL;
  }
  luaL_openlibs(L);
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "preload");
  lua_pushcfunction(L, luaopen_gemini_core);
  lua_setfield(L, -2, "gemini.core");
  lua_pop(L, 2);
  if (luaL_loadstring(L, script) != 0) {
    snprintf(j->err, sizeof j->err, "%s", lua_tostring(L, -1));
  } else {
    lua_pushstring(L, j->url);
    lua_pushinteger(L, REQUESTS);
    if (lua_pcall(L, 2, 1, 0) != 0) snprintf(j->err, sizeof j->err, "%s", lua_tostring(L, -1));
    else j->ok = (int)lua_tointeger(L, -1);
  }
  lua_close(L);
  return NULL;
}

int main(int argc, char **argv) {
  pthread_t th[2];
  struct job jobs[2];
  int i, failed = 0;
  setvbuf(stdout, NULL, _IONBF, 0);   /* nothing lost if the process dies later */
  if (argc < 2) {
    fprintf(stderr, "usage: %s URL\n", argv[0]);
    return 2;
  }
  for (i = 0; i < 2; i++) {
    jobs[i].index = i + 1;
    jobs[i].url = argv[1];
    jobs[i].ok = 0;
    jobs[i].err[0] = '\0';
    if (pthread_create(&th[i], NULL, run, &jobs[i]) != 0) {
      fprintf(stderr, "pthread_create failed\n");
      return 1;
    }
  }
  for (i = 0; i < 2; i++) pthread_join(th[i], NULL);
  for (i = 0; i < 2; i++) {
    if (jobs[i].err[0] || jobs[i].ok != REQUESTS) {
      printf("thread %d: FAILED after %d ok: %s\n", jobs[i].index, jobs[i].ok, jobs[i].err);
      failed = 1;
    } else {
      printf("thread %d: %d ok\n", jobs[i].index, jobs[i].ok);
    }
  }
  return failed;
}
