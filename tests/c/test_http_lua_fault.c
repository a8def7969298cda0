/* The Lua bindings of the HTTP client and server (bind_http.c,
 * bind_httpd.c) under injected allocation failures (tests/c/fault.h): a
 * Lua state serves a route with po.http.serve and fetches it, whole and
 * streamed, with po.http.request, while each of poengine's allocations
 * fails once in turn (LuaJIT's own memory is not malloc and never fails
 * here). Each time the script sees the right answer or a documented
 * failure, never a wrong answer, and closing the state frees everything. */
#include <errno.h>
#include <lauxlib.h>
#include <lua.h>
#include <stdlib.h>
#include <string.h>

#include "fault.h"
#include "harness.h"
#include "runtime.h"

/* Returns "ok <status> <body>", or "<where> <code>" for a failure. */
static const char script[] =
    "local po = require 'poengine'\n"
    /* timeout: a wake-up of the server lost to out of memory waits at most this long */
    "local srv, _, code = po.http.serve { port = 0, timeout = 1, routes = {\n"
    "  ['GET /whole'] = function(req) return 200, { ['X-Q'] = req.query.q }, 'whole ' .. req.query.q end,\n"
    "  ['GET /stream'] = function() return 200, {}, function(s) s:write('one') s:write('two') end end,\n"
    "} }\n"
    "if not srv then return 'serve ' .. code end\n"
    "local got = {}\n"
    "local opts = { url = srv.url .. '/' .. PATH .. '?q=a%20b', timeout = 20 }\n"
    "if PATH == 'stream' then opts.on_chunk = function(c) got[#got + 1] = c end end\n"
    "local fut, _, code = po.http.request(opts)\n"
    "if not fut then srv:close() return 'request ' .. code end\n"
    "local res, _, code = fut:wait()\n"
    "srv:close()\n"
    "if not res then return 'wait ' .. code end\n"
    "return 'ok ' .. res.status .. ' ' .. res.body .. table.concat(got)\n";

static int fetch(void *arg) {
  const char *path = arg;
  lua_State *L = po_runtime_new();
  if (!L) return 0; /* out of memory: a documented outcome */
  lua_pushstring(L, path);
  lua_setglobal(L, "PATH");
  int rc = luaL_dostring(L, script);
  const char *out = lua_tostring(L, -1);
  char got[256];
  snprintf(got, sizeof got, "%s", out ? out : "(nothing)");
  lua_close(L);
  int ok;
  if (rc != 0) /* raised: only for memory */
    ok = strstr(got, "out of memory") != NULL;
  else if (strncmp(got, "ok ", 3) == 0)
    /* a handler whose memory ran out answers 500, or its stream ends early */
    ok = strcmp(got, strcmp(path, "whole") == 0 ? "ok 200 whole a b" : "ok 200 onetwo") == 0 ||
         strncmp(got, "ok 500 ", 7) == 0 || strcmp(got, "ok 200 one") == 0;
  else /* ECONN: the server's memory ran out, and it dropped the connection */
    ok = strstr(got, " ENOMEM") != NULL || strcmp(got, "wait ECONN") == 0;
  if (!ok) fprintf(stderr, "fetch %s: %s\n", path, got);
  return ok ? 0 : 1;
}

static void a_whole_answer_with_every_allocation_failing_once(void) {
  REQUIRE(fetch("whole") == 0);
  CHECK(fault_sweep("malloc", ENOMEM, fetch, "whole", 2000) >= 20);
}

static void a_streamed_answer_with_every_allocation_failing_once(void) {
  REQUIRE(fetch("stream") == 0);
  CHECK(fault_sweep("malloc", ENOMEM, fetch, "stream", 2000) >= 20);
}

int main(void) {
  RUN(a_whole_answer_with_every_allocation_failing_once);
  RUN(a_streamed_answer_with_every_allocation_failing_once);
  return TEST_SUMMARY();
}
