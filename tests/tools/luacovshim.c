/* Lua line coverage for scripts/coverage, as an LD_PRELOAD library: no
 * Debian luacov exists for LuaJIT, and poengine's own Lua states (the main
 * one, the worker pool's, those of child poengine processes) are all opened
 * with luaL_openlibs. This shim wraps it: after the real one, it turns the
 * JIT off for the state (compiled traces call no hooks) and sets a line hook
 * that records each line run of a chunk whose name contains
 * POENGINE_LUA_COVERAGE_MATCH (default "lua/poengine/"). At exit each
 * process appends "chunkname<TAB>line" lines to
 * $POENGINE_LUA_COVERAGE_DIR/<pid>.lines. Processes matching
 * POENGINE_LUA_COVERAGE_SKIP are left alone (see skipped_process). Not linked into anything; LuaJIT's
 * functions are looked up at run time, so processes without Lua load it too. */
#include <dlfcn.h>
#include <lua.h>
#include <luajit.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
  char *name; /* the chunk name */
  unsigned char *lines; /* lines[n] != 0: line n ran */
  int cap;
} file_hits;

static file_hits *files;
static int nfiles, capfiles;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static const char *match = "lua/poengine/";
static int registered;

static int (*real_getinfo)(lua_State *, const char *, lua_Debug *);

static void dump(void) {
  const char *dir = getenv("POENGINE_LUA_COVERAGE_DIR");
  if (!dir || !nfiles) return;
  char path[4096];
  snprintf(path, sizeof path, "%s/%ld.lines", dir, (long)getpid());
  FILE *f = fopen(path, "a");
  if (!f) return;
  /* At exit from a signal (see on_terminate) the interrupted thread may
   * hold the lock: wait a little for it, then read without it. */
  int locked = 0;
  for (int tries = 0; tries < 100 && !(locked = pthread_mutex_trylock(&lock) == 0); tries++) usleep(1000);
  for (int i = 0; i < nfiles; i++)
    for (int l = 0; l < files[i].cap; l++)
      if (files[i].lines[l]) fprintf(f, "%s\t%d\n", files[i].name, l);
  if (locked) pthread_mutex_unlock(&lock);
  fclose(f);
}

/* Specs stop `poengine serve` and other children with SIGTERM, whose
 * default action ends the process without exit handlers: its Lua lines and
 * its gcov counts (written by a destructor of the executable) were lost.
 * In a Lua process whose disposition is still the default, the signal
 * exits instead, which runs both, and the shim's destructor (after the
 * executable's) raises the signal again, so the parent still sees the
 * process die by it. The alarm ends a dump that cannot finish. */
static volatile sig_atomic_t dying_signal;

static void on_terminate(int sig) {
  dying_signal = sig;
  alarm(10);
  exit(128 + sig);
}

__attribute__((destructor)) static void die_as_signalled(void) {
  if (dying_signal) raise(dying_signal); /* the handler was reset to the default on entry */
}

static void catch_termination(void) {
  static const int signals[] = {SIGTERM, SIGINT, SIGHUP};
  for (size_t i = 0; i < sizeof signals / sizeof signals[0]; i++) {
    struct sigaction old;
    if (sigaction(signals[i], NULL, &old) != 0 || old.sa_handler != SIG_DFL) continue;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_terminate;
    sa.sa_flags = SA_RESETHAND | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    sigaction(signals[i], &sa, NULL);
  }
}

/* The last chunk this thread saw, and its entry in files (-1: not ours):
 * most lines follow one of the same chunk. */
static __thread const char *last_source;
static __thread int last_index = -1;

/* The entry for a chunk name, added if new; -1 when out of memory. Under lock. */
static int find_file(const char *source) {
  for (int i = nfiles - 1; i >= 0; i--)
    if (strcmp(files[i].name, source) == 0) return i;
  if (nfiles == capfiles) {
    int cap = capfiles ? capfiles * 2 : 64;
    file_hits *n = realloc(files, cap * sizeof *n);
    if (!n) return -1;
    files = n;
    capfiles = cap;
  }
  file_hits *h = &files[nfiles];
  memset(h, 0, sizeof *h);
  h->name = strdup(source);
  return h->name ? nfiles++ : -1;
}

static void record(const char *source, int line) {
  if (line <= 0) return;
  pthread_mutex_lock(&lock);
  if (source != last_source) {
    last_source = source;
    last_index = strstr(source, match) ? find_file(source) : -1;
  }
  if (last_index >= 0) {
    file_hits *h = &files[last_index];
    if (line >= h->cap) {
      int cap = line * 2 + 64;
      unsigned char *n = realloc(h->lines, cap);
      if (n) {
        memset(n + h->cap, 0, cap - h->cap);
        h->lines = n;
        h->cap = cap;
      }
    }
    if (line < h->cap) h->lines[line] = 1;
  }
  pthread_mutex_unlock(&lock);
}

static void hook(lua_State *L, lua_Debug *ar) {
  if (real_getinfo(L, "S", ar)) record(ar->source, ar->currentline);
}

/* Whether this process runs a workload the specs time rather than engine
 * code: one of its arguments contains an entry of the comma-separated
 * POENGINE_LUA_COVERAGE_SKIP (scripts/coverage names the examples' word-count
 * benchmark, which requires no poengine module). The hook would turn the
 * JIT off there and make every timed run tens of times slower, for no line
 * of lua/poengine. */
static int skipped_process(void) {
  const char *skip = getenv("POENGINE_LUA_COVERAGE_SKIP");
  if (!skip || !*skip) return 0;
  char args[8192];
  FILE *f = fopen("/proc/self/cmdline", "r");
  if (!f) return 0;
  size_t n = fread(args, 1, sizeof args - 1, f);
  fclose(f);
  args[n] = '\0';
  for (size_t at = 0; at < n; at += strlen(args + at) + 1) {
    for (const char *entry = skip; *entry;) {
      size_t len = strcspn(entry, ",");
      if (len > 0) {
        char want[256];
        snprintf(want, sizeof want, "%.*s", (int)len, entry);
        if (strstr(args + at, want)) return 1;
      }
      entry += len + (entry[len] == ',');
    }
  }
  return 0;
}

void luaL_openlibs(lua_State *L) {
  void (*real)(lua_State *) = (void (*)(lua_State *))dlsym(RTLD_NEXT, "luaL_openlibs");
  real(L);
  static int skip = -1; /* decided once per process */
  if (skip < 0) skip = skipped_process();
  if (skip) return;
  int (*sethook)(lua_State *, lua_Hook, int, int) = (int (*)(lua_State *, lua_Hook, int, int))dlsym(RTLD_NEXT, "lua_sethook");
  int (*setmode)(lua_State *, int, int) = (int (*)(lua_State *, int, int))dlsym(RTLD_NEXT, "luaJIT_setmode");
  real_getinfo = (int (*)(lua_State *, const char *, lua_Debug *))dlsym(RTLD_NEXT, "lua_getinfo");
  if (!sethook || !setmode || !real_getinfo) return;
  pthread_mutex_lock(&lock);
  if (!registered) {
    registered = 1;
    const char *m = getenv("POENGINE_LUA_COVERAGE_MATCH");
    if (m && *m) match = m;
    atexit(dump);
    catch_termination();
  }
  pthread_mutex_unlock(&lock);
  setmode(L, 0, LUAJIT_MODE_ENGINE | LUAJIT_MODE_OFF);
  sethook(L, hook, LUA_MASKLINE, 0);
}
