/* check-preload.so: preloaded by tools/check/asan.sh into the process under test (busted on lua5.4)
 * right after the ASan runtime, and inherited by everything it spawns. Built without sanitizers;
 * not part of the product. It does three things:
 *
 * 1. Exec hooks (execve, execv, execvp, execvpe): a Lua interpreter (an executable whose name starts
 *    with "lua": lua5.4, lua5.1, luajit) is started with LD_PRELOAD=$CHECK_PRELOAD_LUA (ASan runtime
 *    + this file), so Lua processes that specs start (they load the sanitized gemini.core too) and
 *    the emulator are checked like busted itself. Anything else (curl, openssl, cc, gzip, script...)
 *    gets LD_PRELOAD=$CHECK_PRELOAD_OTHER (this file only): curl and openssl deadlock at start-up
 *    with the ASan runtime preloaded, and they are not code under test. Without those variables the
 *    hooks change nothing.
 * 2. Leak checking at exit is turned off in processes that are not a Lua interpreter (the /bin/sh
 *    that os.execute and io.popen start directly still carries the runtime): a LeakSanitizer report
 *    at their exit would change the exit codes the specs look at.
 * 3. dlclose() is a no-op: lua_close() unloads every C module before LeakSanitizer runs at exit,
 *    which would leave leak stacks as "<unknown module>"; kept mapped, every frame gets a name, and
 *    lsan.supp can name third-party modules. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern char **environ;

int dlclose(void *handle);
int __lsan_is_turned_off(void);
int execve(const char *path, char *const argv[], char *const envp[]);
int execv(const char *path, char *const argv[]);
int execvp(const char *file, char *const argv[]);
int execvpe(const char *file, char *const argv[], char *const envp[]);

int dlclose(void *handle)
{
  (void)handle;
  return 0;
}

static int is_lua(const char *path)
{
  const char *base = strrchr(path, '/');
  base = base ? base + 1 : path;
  return strncmp(base, "lua", 3) == 0;
}

int __lsan_is_turned_off(void)
{
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) return 0;
  exe[n] = '\0';
  return !is_lua(exe);
}

/* The LD_PRELOAD a child running `path` should get, or NULL to leave the environment alone. */
static const char *preload_for(const char *path)
{
  const char *lua = getenv("CHECK_PRELOAD_LUA"), *other = getenv("CHECK_PRELOAD_OTHER");
  if (lua == NULL || other == NULL || path == NULL) return NULL;
  return is_lua(path) ? lua : other;
}

/* A copy of envp with LD_PRELOAD replaced (malloc'd; the process is about to be replaced anyway). */
static char **env_with(char *const envp[], const char *preload)
{
  size_t n = 0, i, k = 0;
  char **out;
  char *entry;
  while (envp && envp[n]) n++;
  out = malloc((n + 2) * sizeof *out);
  entry = malloc(strlen(preload) + sizeof "LD_PRELOAD=");
  if (out == NULL || entry == NULL) return NULL;
  strcpy(entry, "LD_PRELOAD=");
  strcat(entry, preload);
  for (i = 0; i < n; i++)
    if (strncmp(envp[i], "LD_PRELOAD=", 11) != 0) out[k++] = envp[i];
  out[k++] = entry;
  out[k] = NULL;
  return out;
}

typedef int (*execve_fn)(const char *, char *const[], char *const[]);

int execve(const char *path, char *const argv[], char *const envp[])
{
  static execve_fn real;
  const char *p = preload_for(path);
  char **env = NULL;
  int r, saved;
  if (real == NULL) real = (execve_fn)dlsym(RTLD_NEXT, "execve");
  if (real == NULL) { errno = ENOSYS; return -1; }
  if (p != NULL) env = env_with(envp, p);
  r = real(path, argv, env ? env : envp);
  saved = errno;
  free(env); /* the entry string stays: one small block per failed exec (PATH search) */
  errno = saved;
  return r;
}

int execvpe(const char *file, char *const argv[], char *const envp[])
{
  typedef int (*fn)(const char *, char *const[], char *const[]);
  static fn real;
  const char *p = preload_for(file);
  char **env = NULL;
  if (real == NULL) real = (fn)dlsym(RTLD_NEXT, "execvpe");
  if (real == NULL) { errno = ENOSYS; return -1; }
  if (p != NULL) env = env_with(envp, p);
  return real(file, argv, env ? env : envp);
}

int execv(const char *path, char *const argv[])
{
  return execve(path, argv, environ);
}

int execvp(const char *file, char *const argv[])
{
  return execvpe(file, argv, environ);
}
