/* redis.c (and redis_url.c, redis_reply.c) under injected allocation
 * failures (tests/c/fault.h), against a real redis-server on a unix socket
 * in a temporary directory, with a password and a database: each of our
 * allocations in a session (URL, client, AUTH and SELECT, a command, an
 * EVALSHA answered NOSCRIPT then EVAL, an array reply with an error inside)
 * fails once in turn. Each time every command's callback runs exactly once,
 * with the right answer or a documented failure, the loop ends empty and
 * nothing leaks. hiredis's own allocations are its library's and do not
 * fail here. The same sweep runs the binding (bind_redis.c) from Lua. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"
#include "error.h"
#include "fault.h"
#include "harness.h"
#include "loop.h"
#include "redis.h"
#include "redis_url.h"
#include "runtime.h"

#include <lauxlib.h>
#include <lua.h>

static char dir[64], sock[128];
static pid_t server;

static int server_start(void) {
  strcpy(dir, "/tmp/po-redis-fault-XXXXXX");
  if (!mkdtemp(dir)) return -1;
  snprintf(sock, sizeof sock, "%s/redis.sock", dir);
  server = fork();
  if (server < 0) return -1;
  if (server == 0) {
    if (!freopen("/dev/null", "w", stdout)) _exit(126); /* its log */
    execlp("redis-server", "redis-server", "--port", "0", "--unixsocket", sock, "--save", "", "--appendonly", "no",
           "--dir", dir, "--requirepass", "secret", (char *)NULL);
    _exit(127);
  }
  struct stat st;
  for (int i = 0; i < 200; i++) {
    if (stat(sock, &st) == 0) return 0;
    usleep(25 * 1000);
  }
  return -1;
}

static void server_stop(void) {
  kill(server, SIGKILL);
  waitpid(server, NULL, 0);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", dir);
}

typedef struct answer {
  int calls, rc;
  char text[64]; /* a string or status reply; "n=.. s=.. e=.." for the array */
} answer;

static void on_reply(int rc, const po_redis_reply *reply, const char *message, void *ud) {
  answer *a = ud;
  a->calls++;
  a->rc = rc;
  if (rc != 0 || !reply) return;
  if (reply->type == PO_REDIS_ARRAY && reply->n == 3)
    snprintf(a->text, sizeof a->text, "n=%lld s=%s e=%s", reply->elements[0].integer, reply->elements[1].str,
             reply->elements[2].type == PO_REDIS_ERROR ? reply->elements[2].str : "?");
  else if (reply->str)
    snprintf(a->text, sizeof a->text, "%s", reply->str);
}

/* A script whose reply is an array of an integer, a string and an error:
 * each converted into the client's own tree. */
static const char script[] = "return {7, 'seven', redis.error_reply('BAD seven')}";

enum { SET, GET, EVAL, N };

static int outcome_ok(const answer *a, int i) {
  static const char *want[N] = {"OK", "v", "n=7 s=seven e=BAD seven"};
  if (a->calls != 1) return 0;
  if (a->rc == 0) return strcmp(a->text, want[i]) == 0;
  /* A command whose memory ran out, or one that waited for a connection
   * the failure held back. */
  return a->rc == PO_ENOMEM || a->rc == PO_ETIMEDOUT || a->rc == PO_ECONN;
}

static int session(void *arg) {
  (void)arg;
  po_loop *loop = NULL;
  po_redis *r = NULL;
  po_redis_url url = {0};
  answer ans[N] = {{0}};
  int started[N] = {0};
  int ok = 0;
  const char *why;
  char text[192];
  snprintf(text, sizeof text, "unix://:secret@%s?db=3", sock);
  int rc = po_loop_new(&loop);
  if (rc != 0) return rc == PO_ENOMEM ? 0 : 1;
  rc = po_redis_url_parse(text, &url, &why);
  if (rc != 0) {
    ok = rc == PO_ENOMEM;
    goto out;
  }
  po_redis_opts o;
  po_redis_opts_init(&o);
  o.connect_timeout = 2;
  o.command_timeout = 3;
  o.backoff_min = 0.01;
  o.backoff_max = 0.05;
  rc = po_redis_new(loop, &url, &o, &r);
  if (rc != 0) {
    ok = rc == PO_ENOMEM;
    goto out;
  }
  const char *set[] = {"SET", "k", "v"};
  const size_t setlen[] = {3, 1, 1};
  const char *get[] = {"GET", "k"};
  const size_t getlen[] = {3, 1};
  int rcs[N];
  rcs[SET] = po_redis_command(r, 3, set, setlen, on_reply, &ans[SET]);
  rcs[GET] = po_redis_command(r, 2, get, getlen, on_reply, &ans[GET]);
  /* after SET, so that the script cache is tried first and misses */
  rcs[EVAL] = po_redis_eval(r, script, sizeof script - 1, 0, 0, NULL, NULL, on_reply, &ans[EVAL]);
  ok = 1;
  for (int i = 0; i < N; i++) {
    started[i] = rcs[i] == 0;
    if (rcs[i] != 0 && rcs[i] != PO_ENOMEM) ok = 0;
  }
  double deadline = po_monotonic() + 10;
  for (;;) {
    int pending = 0;
    for (int i = 0; i < N; i++) pending += started[i] && !ans[i].calls;
    if (!pending || po_monotonic() > deadline) break;
    po_loop_run_once(loop, 0.2, NULL);
  }
  for (int i = 0; i < N; i++) {
    if (!started[i]) continue;
    if (!outcome_ok(&ans[i], i)) {
      fprintf(stderr, "session: command %d: %d calls, rc %d, '%s'\n", i, ans[i].calls, ans[i].rc, ans[i].text);
      ok = 0;
    }
  }
  /* The script ran with a cached SHA the next time round: flush it so that
   * every session takes the NOSCRIPT path. */
  const char *flush[] = {"SCRIPT", "FLUSH"};
  const size_t flushlen[] = {6, 5};
  answer f = {0};
  if (ok && po_redis_command(r, 2, flush, flushlen, on_reply, &f) == 0)
    for (int i = 0; i < 50 && !f.calls; i++) po_loop_run_once(loop, 0.2, NULL);
out:
  po_redis_free(r);
  po_redis_url_free(&url);
  for (int i = 0; i < 100 && po_loop_alive(loop); i++) po_loop_run_once(loop, 0.01, NULL);
  if (po_loop_alive(loop)) {
    fprintf(stderr, "session: the loop still has a watcher or a timer\n");
    ok = 0;
  }
  po_loop_free(loop);
  return ok ? 0 : 1;
}

static void a_session_with_every_allocation_failing_once(void) {
  REQUIRE(session(NULL) == 0);
  CHECK(fault_sweep("malloc", ENOMEM, session, NULL, 300) >= 15);
}

/* ---- a server that accepts connections and never answers ---- */

typedef struct attempts {
  int failed, other;
} attempts;

static void on_connect(int rc, const char *message, void *ud) {
  attempts *a = ud;
  if (rc == PO_ETIMEDOUT || rc == PO_ENOMEM)
    a->failed++;
  else
    a->other++;
}

static int silent_listener(const char *path) {
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
  unlink(path);
  if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 128) != 0) return -1;
  return fd;
}

static void run_until(po_loop *loop, const int *counter, int above) {
  double deadline = po_monotonic() + 5;
  while (*counter <= above && po_monotonic() < deadline) po_loop_run_once(loop, 0.05, NULL);
}

/* Every deadline holds whatever allocation fails: each attempt ends at
 * connect_timeout (or at once, out of memory), the client keeps trying, and
 * a command queued meanwhile fails PO_ETIMEDOUT at its command_timeout, or
 * is refused PO_ENOMEM at once. */
static int silent(void *arg) {
  (void)arg;
  char path[100]; /* dir and the name fit in sun_path */
  snprintf(path, sizeof path, "%s/silent.sock", dir);
  int fd = silent_listener(path);
  if (fd < 0) return 1;
  po_loop *loop = NULL;
  po_redis *r = NULL;
  po_redis_url url = {0};
  attempts att = {0};
  answer ans[2] = {{0}};
  int ok = 0;
  const char *why;
  char text[192];
  snprintf(text, sizeof text, "unix://%s", path);
  int rc = po_loop_new(&loop);
  if (rc != 0) {
    close(fd);
    return rc == PO_ENOMEM ? 0 : 1;
  }
  rc = po_redis_url_parse(text, &url, &why);
  if (rc != 0) {
    ok = rc == PO_ENOMEM;
    goto out;
  }
  po_redis_opts o;
  po_redis_opts_init(&o);
  o.connect_timeout = 0.05;
  o.command_timeout = 0.2;
  o.backoff_min = 0.01;
  o.backoff_max = 0.02;
  o.on_connect = on_connect;
  o.ud = &att;
  rc = po_redis_new(loop, &url, &o, &r);
  if (rc != 0) {
    ok = rc == PO_ENOMEM;
    goto out;
  }
  ok = 1;
  const char *ping[] = {"PING"};
  const size_t pinglen[] = {4};
  for (int i = 0; i < 2 && ok; i++) {
    int before = att.failed;
    rc = po_redis_command(r, 1, ping, pinglen, on_reply, &ans[i]);
    if (rc == 0) {
      run_until(loop, &ans[i].calls, 0);
      ok = ans[i].calls == 1 && ans[i].rc == PO_ETIMEDOUT;
    } else {
      ok = rc == PO_ENOMEM;
    }
    run_until(loop, &att.failed, before); /* another attempt, and its end */
    ok = ok && att.failed > before && att.other == 0;
    if (!ok) fprintf(stderr, "silent: command %d: rc %d, %d calls, rc %d; attempts failed %d (%d before), other %d\n", i,
                     rc, ans[i].calls, ans[i].rc, att.failed, before, att.other);
  }
out:
  po_redis_free(r);
  po_redis_url_free(&url);
  for (int i = 0; i < 100 && po_loop_alive(loop); i++) po_loop_run_once(loop, 0.01, NULL);
  if (po_loop_alive(loop)) {
    fprintf(stderr, "silent: the loop still has a watcher or a timer\n");
    ok = 0;
  }
  po_loop_free(loop);
  close(fd);
  return ok ? 0 : 1;
}

static void deadlines_hold_with_every_allocation_failing_once(void) {
  REQUIRE(silent(NULL) == 0);
  CHECK(fault_sweep("malloc", ENOMEM, silent, NULL, 100) >= 5);
}

/* ---- the binding (bind_redis.c), from Lua ---- */

static const char lua_script[] =
    "local po = require 'poengine'\n"
    "local c, _, code = po.redis.connect(URL)\n"
    "if not c then return 'connect ' .. code end\n"
    "local v, _, code = c:command('SET', 'k', 'v'):wait()\n"
    "if not v then c:close() return 'set ' .. code end\n"
    "local r, _, code = c:eval(\"return {1, redis.error_reply('E one')}\", { 'k' }, { 2 }):wait()\n"
    "c:close()\n"
    "if not r then return 'eval ' .. code end\n"
    "return 'ok ' .. v .. ' ' .. r[1] .. ' ' .. r[2].error .. ' ' .. r.n\n";

static int from_lua(void *arg) {
  (void)arg;
  lua_State *L = po_runtime_new();
  if (!L) return 0; /* out of memory: a documented outcome */
  char url[192];
  snprintf(url, sizeof url, "unix://:secret@%s?db=3", sock);
  lua_pushstring(L, url);
  lua_setglobal(L, "URL");
  int rc = luaL_dostring(L, lua_script);
  char got[256];
  snprintf(got, sizeof got, "%s", lua_tostring(L, -1) ? lua_tostring(L, -1) : "(nothing)");
  lua_close(L);
  int ok = rc != 0 ? strstr(got, "out of memory") != NULL
                   : strcmp(got, "ok OK 1 E one 2") == 0 || strstr(got, " ENOMEM") != NULL;
  if (!ok) fprintf(stderr, "from_lua: %s\n", got);
  return ok ? 0 : 1;
}

static void the_binding_with_every_allocation_failing_once(void) {
  REQUIRE(from_lua(NULL) == 0);
  CHECK(fault_sweep("malloc", ENOMEM, from_lua, NULL, 500) >= 15);
}

int main(void) {
  if (server_start() != 0) {
    fprintf(stderr, "cannot start redis-server\n");
    return 1;
  }
  RUN(a_session_with_every_allocation_failing_once);
  RUN(deadlines_hold_with_every_allocation_failing_once);
  RUN(the_binding_with_every_allocation_failing_once);
  server_stop();
  return TEST_SUMMARY();
}
