/* The cache and semantic bindings under allocation failures (tests/c/fault.h):
 * a Lua session in a poengine state (po_runtime_new) uses poengine_core.cache
 * (a memory cache and one with a store: request-table keys, sets with a
 * vector, semantic lookups, the shared tier's records, stats, prune,
 * contents, namespaces) and poengine_core.semantic's index, while the 1st,
 * 2nd, ... allocation of poengine's C code fails. LuaJIT's own memory is
 * not malloc, so only the bindings' and the core's allocations fail. Each
 * call either works (and a hit answers the value set) or fails for want of
 * memory in the documented way: raising "fn: out of memory" or returning
 * nil, message, "ENOMEM"; and the state closes without a leak. */
#include <errno.h>
#include <lauxlib.h>
#include <lua.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fault.h"
#include "harness.h"
#include "runtime.h"

static const char session[] =
    "local path = ...\n"
    "local core = require 'poengine_core'\n"
    "local cache, sem = core.cache, core.semantic\n"
    "local function pack(...) return {n = select('#', ...), ...} end\n"
    "local function nomem(m) return type(m) == 'string' and m:find('out of memory', 1, true) ~= nil end\n"
    /* try: true and the call's results, or false when it failed for memory */
    "local function try(what, f, ...)\n"
    "  local r = pack(pcall(f, ...))\n"
    "  if not r[1] then\n"
    "    if nomem(r[2]) then return false end\n"
    "    error(what .. ' raised ' .. tostring(r[2]), 0)\n"
    "  end\n"
    "  if r[2] == nil and r.n >= 4 then\n"
    "    if r[4] == 'ENOMEM' and nomem(r[3]) then return false end\n"
    "    error(what .. ' failed: ' .. tostring(r[3]) .. ' ' .. tostring(r[4]), 0)\n"
    "  end\n"
    "  return true, unpack(r, 2, r.n)\n"
    "end\n"
    "local function request(i)\n"
    "  return {model = 'm', api_key = 'sk-secret', temperature = 0.5, n = i, stop = {'a', 'b'},\n"
    "          sparse = {[1] = 1, [3] = 3, [2.5] = 'x'}, flag = true, none = false,\n"
    "          messages = {{role = 'user', content = 'what is ' .. i .. ' + 2'}}}\n"
    "end\n"
    "local function session(opts)\n"
    "  local ok, h = try('open', cache.open, opts)\n"
    "  if not ok then return end\n"
    "  for i = 1, 12 do\n"
    "    local k = i % 2 == 0 and ('s' .. i) or request(i)\n"
    "    try('set', h.set, h, k, 'v' .. i, i, i % 3 == 0 and 100 or nil)\n"
    "  end\n"
    "  for i = 1, 12 do\n"
    "    local k = i % 2 == 0 and ('s' .. i) or request(i)\n"
    "    local ok, v, flags = try('get', h.get, h, k)\n"
    "    if ok and v ~= nil and (v ~= 'v' .. i or flags ~= i) then error('get answered ' .. v .. ' for ' .. i, 0) end\n"
    "  end\n"
    "  local q = request(20)\n"
    "  try('semantic_get', h.semantic_get, h, q, q, nil, 'what is 20 + 2', 0.8, 4)\n"
    "  try('set with vector', h.set, h, q, 'answer', 0, nil, q, nil, 'what is 20 + 2')\n"
    "  try('set with a given vector', h.set, h, 's21', 'other', 0, nil, 'params', 'emb', 'hello', {1, 0, 0.5})\n"
    "  local ok, v = try('semantic_get', h.semantic_get, h, request(20), request(20), nil, 'what is 20 + 2', 0.8, 4)\n"
    "  if ok and v ~= nil and v ~= 'answer' then error('semantic_get answered ' .. v, 0) end\n"
    "  try('semantic_get', h.semantic_get, h, 's22', 'params', 'emb', 'hello', 0.5, 2, {1, 0, 0.4})\n"
    "  local ok, hex, record = try('shared_record', h.shared_record, h, request(30), 'shared', 5, 60)\n"
    "  if ok then\n"
    "    local ok, v = try('shared_fill', h.shared_fill, h, request(30), record)\n"
    "    if ok and v ~= 'shared' then error('shared_fill answered ' .. tostring(v), 0) end\n"
    "  end\n"
    "  try('key', cache.key, request(1))\n"
    "  try('canonical', cache.canonical, request(1))\n"
    "  try('delete', h.delete, h, request(1))\n"
    "  try('stats', h.stats, h)\n"
    "  if opts.path then\n"
    "    try('contents', h.contents, h)\n"
    "    try('prune', h.prune, h, {older_than = 3600, max_bytes = 40, batch = 2})\n"
    "    try('namespaces', cache.namespaces, opts.path)\n"
    "  end\n"
    "  try('clear', h.clear, h)\n"
    "  h:close()\n"
    "end\n"
    "session({max_entries = 8, ttl = 60, policy = 'sieve'})\n"
    "session({path = path, max_entries = 8, sync = 'none'})\n"
    "local function unit(v)\n"
    "  local n = 0\n"
    "  for _, x in ipairs(v) do n = n + x * x end\n"
    "  for i, x in ipairs(v) do v[i] = x / math.sqrt(n) end\n"
    "  return v\n"
    "end\n"
    "local ok, ix = try('index', sem.index, {dim = 4, kind = 'i8'})\n"
    "if ok then\n"
    "  for i = 1, 40 do try('add', ix.add, ix, i, unit{1, i, 0.5, -i}) end\n"
    "  local ok, ids = try('search', ix.search, ix, unit{1, 2, 0.5, -2}, 5)\n"
    "  if ok and #ids > 0 and ids[1] ~= 2 then error('search found ' .. ids[1] .. ' first', 0) end\n"
    "  ix:close()\n"
    "end\n"
    "local ok, fx = try('index', sem.index, {dim = 3})\n"
    "if ok then try('add', fx.add, fx, 1, {1, 0, 0}); try('search', fx.search, fx, {1, 0, 0}, 3); fx:close() end\n";

static char dir[64];

/* Runs the session in a fresh state with the nth allocation failing (0:
 * none). The state is made and closed with the fault held back, so that
 * only the session's calls count. Returns 1 when the fault fired, 0 when
 * the session ran past it, -1 when it went wrong. */
static int run_session(long nth) {
  lua_State *L = po_runtime_new();
  if (!L) return -1;
  int rc = luaL_loadstring(L, session);
  if (rc == 0) {
    lua_pushstring(L, dir);
    if (nth) fault_arm("malloc", nth, 0, ENOMEM);
    rc = lua_pcall(L, 1, 0, 0);
  }
  int fired = fault_fired() > 0;
  fault_disarm();
  if (rc != 0) fprintf(stderr, "session with allocation %ld failing: %s\n", nth, lua_tostring(L, -1));
  lua_close(L);
  return rc != 0 ? -1 : fired;
}

static void bindings_survive_every_allocation_failure(void) {
  /* Without a fault the session runs clean, */
  REQUIRE(run_session(0) == 0);
  /* and with each allocation failing in turn. */
  long nth = 1;
  int r;
  while ((r = run_session(nth)) == 1 && nth < 5000) nth++;
  CHECK_EQ_INT(r, 0);
  CHECK(nth > 50);
}

int main(void) {
  strcpy(dir, "/tmp/po-cache-bind-fault-XXXXXX");
  if (!mkdtemp(dir)) return 1;
  RUN(bindings_survive_every_allocation_failure);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (system(cmd) != 0) return 1;
  return TEST_SUMMARY();
}
