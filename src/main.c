/* The poengine command line, after luajit's own conventions:
 *
 *   poengine [options] [script [args...]]
 *   poengine SUBCOMMAND [args...]        (a Lua module poengine.cli.SUBCOMMAND)
 *
 * Exit status: 0 on success, 1 on an uncaught error, 2 on a usage error or a
 * script that cannot be opened; os.exit(n) is honoured. */
#include "bind.h"
#include "bind_loop.h"
#include "runtime.h"

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { EXIT_USAGE = 2 };

static const char *progname = "poengine";

/* --traceback or POENGINE_DEBUG=1: every error with its stack traceback. */
static int want_traceback;

static void print_usage(FILE *out) {
  fprintf(out,
          "usage: %s [options] [script [args...]]\n"
          "       %s SUBCOMMAND [args...]\n"
          "Options:\n"
          "  -e chunk       run the Lua code in chunk\n"
          "  -l name        require module name into the global of the same name\n"
          "  -i             enter the interactive prompt after running script\n"
          "  --traceback    print every error with its stack traceback (also POENGINE_DEBUG=1)\n"
          "  -v, --version  show the versions of poengine and its libraries\n"
          "  -h, --help     show this help and the available subcommands\n"
          "  --             stop handling options\n"
          "  -              run standard input as the script and stop handling options\n"
          "With no script: the interactive prompt on a terminal, else standard input.\n"
          "The global `po` is the poengine API (the same table as require \"poengine\").\n",
          progname, progname);
}

/* Prints the error at the top of the stack, if it has anything to say. An
 * error raised with nil (busted does this to unwind before exiting) says
 * nothing; any other non-string value is named by its type. */
static void report_error(lua_State *L) {
  if (lua_isnil(L, -1)) return;
  const char *msg = lua_tostring(L, -1);
  if (msg)
    fprintf(stderr, "%s: %s\n", progname, msg);
  else
    fprintf(stderr, "%s: (error object is a %s value)\n", progname, luaL_typename(L, -1));
  fflush(stderr);
}

static int contains(const char *s, size_t n, const char *mark) {
  size_t m = strlen(mark);
  for (size_t i = 0; i + m <= n; i++)
    if (memcmp(s + i, mark, m) == 0) return 1;
  return 0;
}

/* Whether a chunk name or an error location belongs to poengine's own Lua
 * modules: embedded ("lua/poengine/..."), the source tree's copy, or a
 * poengine module found in a POENGINE_LUA_PATH directory (';'-separated). */
static int is_engine_source(const char *s, size_t n) {
  if (contains(s, n, "lua/poengine/")) return 1;
  const char *dirs = getenv("POENGINE_LUA_PATH");
  while (dirs && *dirs) {
    const char *end = strchr(dirs, ';');
    size_t len = end ? (size_t)(end - dirs) : strlen(dirs);
    if (len > 0 && len + 10 <= n && memcmp(s, dirs, len) == 0 && memcmp(s + len, "/poengine/", 10) == 0) return 1;
    dirs = end ? end + 1 : NULL;
  }
  return 0;
}

/* Length of a leading "chunk:line: " location in msg, or 0. */
static size_t location_length(const char *msg) {
  const char *p = msg;
  while (*p && *p != '\n') {
    if (*p == ':' && p[1] >= '0' && p[1] <= '9') {
      const char *q = p + 1;
      while (*q >= '0' && *q <= '9') q++;
      if (q[0] == ':' && q[1] == ' ') return (size_t)(q + 2 - msg);
    }
    p++;
  }
  return 0;
}

/* The message handler of every call the CLI makes. People get one line for
 * a mistake of theirs -- an error raised in their script, or an API error
 * of poengine's (whose messages name the function: "po.run: ...") -- located
 * at the innermost line of their own code. A failure inside poengine's own
 * modules that is not such an API error is a bug, and keeps its traceback;
 * so does everything with --traceback or POENGINE_DEBUG=1. */
static int cli_error_handler(lua_State *L) {
  if (want_traceback || !lua_isstring(L, 1) || lua_type(L, 1) == LUA_TNUMBER) return po_traceback(L);
  const char *msg = lua_tostring(L, 1);
  size_t loc = location_length(msg);
  const char *body = msg + loc;
  int api_error = strncmp(body, "po.", 3) == 0 || strncmp(body, "poengine", 8) == 0;
  int in_engine = loc > 0 && is_engine_source(msg, loc);
  if (in_engine && !api_error) return po_traceback(L);
  if (loc > 0 && !in_engine) return 1; /* already located in the user's code */
  /* Locate it at the innermost frame of the user's code, if there is one. */
  lua_Debug ar;
  for (int level = 1; lua_getstack(L, level, &ar); level++) {
    if (!lua_getinfo(L, "Sl", &ar) || ar.currentline <= 0 || ar.source[0] != '@') continue;
    if (is_engine_source(ar.source + 1, strlen(ar.source + 1))) continue;
    lua_pushfstring(L, "%s:%d: %s", ar.short_src, ar.currentline, body);
    return 1;
  }
  lua_pushstring(L, body);
  return 1;
}

/* Runs the function below nargs arguments with the CLI's error handler; on
 * error reports it. Returns 0 or 1. */
static int call(lua_State *L, int nargs, int nresults) {
  int base = lua_gettop(L) - nargs;
  lua_pushcfunction(L, cli_error_handler);
  lua_insert(L, base);
  int rc = lua_pcall(L, nargs, nresults, base);
  lua_remove(L, base);
  if (rc != 0) {
    report_error(L);
    lua_pop(L, 1);
    return 1;
  }
  return 0;
}

static int run_string(lua_State *L, const char *code) {
  if (luaL_loadbuffer(L, code, strlen(code), "=(command line)") != 0) {
    report_error(L);
    lua_pop(L, 1);
    return 1;
  }
  return call(L, 0, 0);
}

static int require_global(lua_State *L, const char *name) {
  lua_getglobal(L, "require");
  lua_pushstring(L, name);
  if (call(L, 1, 1) != 0) return 1;
  lua_setglobal(L, name);
  return 0;
}

/* arg[0] is the script, arg[1..n] its arguments, negative indices the
 * interpreter and its options (as luajit sets it). */
static void set_arg_table(lua_State *L, char **argv, int argc, int script) {
  lua_createtable(L, argc - script, script);
  for (int i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - script);
  }
  lua_setglobal(L, "arg");
}

/* Runs pending po.async tasks to completion once the script has returned. */
static int drain_tasks(lua_State *L) {
  lua_pushcfunction(L, po_lua_drain_tasks);
  return call(L, 0, 0);
}

static int is_subcommand_name(const char *s) {
  if (!(*s >= 'a' && *s <= 'z')) return 0;
  for (; *s; s++)
    if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-' || *s == '_')) return 0;
  return 1;
}

/* Runs the subcommand named by argv[script] when a module poengine.cli.<name>
 * exists: returns its exit status, or -1 when there is no such subcommand. */
static int run_subcommand(lua_State *L, char **argv, int argc, int script) {
  lua_getglobal(L, "require");
  lua_pushliteral(L, "poengine.cli");
  if (call(L, 1, 1) != 0) return 1;
  lua_getfield(L, -1, "run");
  lua_remove(L, -2);
  lua_pushstring(L, argv[script]);
  lua_createtable(L, argc - script - 1, 0);
  for (int i = script + 1; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - script);
  }
  if (call(L, 2, 1) != 0) return 1;
  int status = lua_isnumber(L, -1) ? (int)lua_tointeger(L, -1) : -1;
  lua_pop(L, 1);
  return status;
}

static int run_script(lua_State *L, const char *path, char **argv, int argc, int script) {
  const char *name = strcmp(path, "-") == 0 ? NULL : path;
  if (name) {
    struct stat st;
    if (stat(name, &st) != 0) {
      if (errno == ENOENT && is_subcommand_name(name)) {
        int status = run_subcommand(L, argv, argc, script);
        if (status >= 0) return status;
      }
      fprintf(stderr, "%s: cannot open %s: %s\n", progname, name, strerror(errno));
      return EXIT_USAGE;
    }
    if (S_ISDIR(st.st_mode)) {
      fprintf(stderr, "%s: cannot run %s: it is a directory\n", progname, name);
      return EXIT_USAGE;
    }
  }
  int rc = luaL_loadfile(L, name);
  if (rc == LUA_ERRFILE) {
    fprintf(stderr, "%s: %s\n", progname, lua_tostring(L, -1));
    lua_pop(L, 1);
    return EXIT_USAGE;
  }
  if (rc != 0) {
    report_error(L);
    lua_pop(L, 1);
    return 1;
  }
  int nargs = argc - script - 1;
  luaL_checkstack(L, nargs + 8, "too many arguments to the script");
  for (int i = script + 1; i < argc; i++) lua_pushstring(L, argv[i]);
  return call(L, nargs, 0);
}

/* A plain read-eval-print loop: expressions print their values, incomplete
 * statements continue on the next line. */
static void interactive(lua_State *L) {
  char line[4096];
  lua_pushliteral(L, "");
  for (;;) {
    int continuing = lua_objlen(L, -1) > 0;
    fputs(continuing ? ">> " : "> ", stdout);
    fflush(stdout);
    if (!fgets(line, sizeof line, stdin)) {
      fputc('\n', stdout);
      break;
    }
    lua_pushvalue(L, -1);
    /* "=expr" at the start of a statement is luajit's "return expr". */
    if (!continuing && line[0] == '=') {
      lua_pushliteral(L, "return ");
      lua_pushstring(L, line + 1);
      lua_concat(L, 2);
    } else {
      lua_pushstring(L, line);
    }
    lua_concat(L, 2);
    lua_replace(L, -2);
    size_t len;
    const char *chunk = lua_tolstring(L, -1, &len);
    int top = lua_gettop(L);
    lua_pushliteral(L, "return ");
    lua_pushvalue(L, -2);
    lua_concat(L, 2);
    size_t rlen;
    const char *ret = lua_tolstring(L, -1, &rlen);
    int rc = luaL_loadbuffer(L, ret, rlen, "=stdin");
    if (rc != 0) {
      lua_pop(L, 2);
      rc = luaL_loadbuffer(L, chunk, len, "=stdin");
      if (rc == LUA_ERRSYNTAX) {
        const char *msg = lua_tostring(L, -1);
        size_t mlen = strlen(msg);
        if (mlen >= 7 && strcmp(msg + mlen - 7, "'<eof>'") == 0) {
          lua_pop(L, 1); /* incomplete: read another line */
          continue;
        }
      }
      if (rc != 0) {
        report_error(L);
        lua_settop(L, top - 1);
        lua_pushliteral(L, "");
        continue;
      }
    } else {
      lua_remove(L, -2);
    }
    lua_pushcfunction(L, cli_error_handler);
    lua_insert(L, -2);
    if (lua_pcall(L, 0, LUA_MULTRET, top + 1) != 0) {
      report_error(L);
    } else if (lua_gettop(L) > top + 1) {
      int nres = lua_gettop(L) - top - 1;
      lua_getglobal(L, "print");
      lua_insert(L, top + 2);
      if (lua_pcall(L, nres, 0, 0) != 0) report_error(L);
    }
    lua_settop(L, top - 1);
    lua_pushliteral(L, "");
  }
  lua_pop(L, 1);
}

static void print_version(lua_State *L) {
  lua_getglobal(L, "require");
  lua_pushliteral(L, "poengine_core");
  if (call(L, 1, 1) != 0) return;
  lua_getfield(L, -1, "versions");
  if (call(L, 0, 1) != 0) {
    lua_pop(L, 1);
    return;
  }
  static const char *const rows[][2] = {
      {"poengine", "poengine"}, {"luajit", "LuaJIT"}, {"lmdb", "LMDB"}, {"cjson", "cJSON"}, {"curl", "libcurl"}};
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    lua_getfield(L, -1, rows[i][0]);
    const char *v = lua_tostring(L, -1);
    if (i == 1)
      printf("%s\n", v); /* LUAJIT_VERSION already reads "LuaJIT 2.1.0-beta3" */
    else
      printf("%s %s\n", rows[i][1], v);
    lua_pop(L, 1);
  }
  lua_pop(L, 2);
}

typedef struct options {
  int script;      /* index of the script in argv, or argc */
  int interactive; /* -i */
  int version;     /* -v */
  int executed;    /* an -e or -l was given */
} options;

/* Parses the options; returns 0, or the exit status for a usage error or
 * --help. */
static int parse_options(int argc, char **argv, options *o) {
  *o = (options){.script = argc};
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (a[0] != '-' || strcmp(a, "-") == 0) {
      o->script = i;
      return 0;
    }
    if (strcmp(a, "--") == 0) {
      o->script = i + 1;
      return 0;
    }
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) return -1;
    if (strcmp(a, "--traceback") == 0) {
      want_traceback = 1;
      continue;
    }
    if (strcmp(a, "-v") == 0 || strcmp(a, "--version") == 0) {
      o->version = 1;
    } else if (strcmp(a, "-i") == 0) {
      o->interactive = 1;
    } else if ((a[1] == 'e' || a[1] == 'l') && a[2] == '\0') {
      if (i + 1 >= argc) {
        fprintf(stderr, "%s: option '%s' needs an argument\n", progname, a);
        print_usage(stderr);
        return EXIT_USAGE;
      }
      o->executed = 1;
      i++;
    } else if ((a[1] == 'e' || a[1] == 'l') && a[2] != '\0') {
      o->executed = 1; /* -echunk, -lname */
    } else {
      fprintf(stderr, "%s: unknown option '%s'\n", progname, a);
      print_usage(stderr);
      return EXIT_USAGE;
    }
  }
  return 0;
}

/* Runs the -e and -l options in the order given. */
static int run_options(lua_State *L, int argc, char **argv, int script) {
  for (int i = 1; i < script && i < argc; i++) {
    const char *a = argv[i];
    if (a[0] != '-' || (a[1] != 'e' && a[1] != 'l')) continue;
    const char *value = a[2] ? a + 2 : argv[++i];
    int rc = a[1] == 'e' ? run_string(L, value) : require_global(L, value);
    if (rc != 0) return rc;
  }
  return 0;
}

static int set_po_global(lua_State *L) {
  lua_getglobal(L, "require");
  lua_pushliteral(L, "poengine");
  if (call(L, 1, 1) != 0) return 1;
  lua_setglobal(L, "po");
  return 0;
}

static int print_help(lua_State *L) {
  print_usage(stdout);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "poengine.cli");
  if (call(L, 1, 1) != 0) return 1;
  lua_getfield(L, -1, "help");
  lua_remove(L, -2);
  return call(L, 0, 0);
}

int main(int argc, char **argv) {
  /* Output piped to a file or tee arrives line by line, as on a terminal,
   * not in 4 KB blocks minutes later. */
  if (!isatty(STDOUT_FILENO)) setvbuf(stdout, NULL, _IOLBF, 0);
  const char *debug = getenv("POENGINE_DEBUG");
  want_traceback = debug && *debug && strcmp(debug, "0") != 0;
  options o;
  int rc = parse_options(argc, argv, &o);
  if (rc > 0) return rc;

  lua_State *L = po_runtime_new();
  if (!L) {
    fprintf(stderr, "%s: cannot create a Lua state: out of memory\n", progname);
    return 1;
  }
  if (rc < 0) {
    rc = print_help(L);
    lua_close(L);
    return rc;
  }
  set_arg_table(L, argv, argc, o.script);
  rc = set_po_global(L);
  if (rc == 0 && o.version) print_version(L);
  if (rc == 0) rc = run_options(L, argc, argv, o.script);
  if (rc == 0) {
    if (o.script < argc) {
      rc = run_script(L, argv[o.script], argv, argc, o.script);
      if (rc == 0 && o.interactive) interactive(L);
    } else if (o.interactive || (!o.executed && !o.version && isatty(STDIN_FILENO))) {
      interactive(L);
    } else if (!o.executed && !o.version) {
      rc = run_script(L, "-", argv, argc, argc - 1);
    }
  }
  if (rc == 0) rc = drain_tasks(L);
  fflush(stdout);
  lua_close(L);
  return rc;
}
