-- The cache's shared tier (po.cache.open{ shared = ... }) against a real
-- redis-server: engines in separate processes, each with its own store,
-- answer from one another's sets; TTLs become Redis expiries; namespaces and
-- prefixes stay apart; a server killed mid-use leaves the cache on its local
-- tiers (failures counted, said once on stderr, nothing hangs) until it is
-- back on the same port.
local po = require "poengine"
local proc = require "tests.tools.proc"
local redis_server = require "tests.tools.redis_server"

-- Runs `code` in a new poengine process with `c`, a cache on a store of its
-- own in dir with namespace ns, shared through url; the chunk's return
-- value comes back decoded from JSON, with the process's stderr.
local function engine(url, dir, ns, code, shared_extra)
  -- A deadline no healthy command comes near, even on a loaded machine: the
  -- cases that test a deadline set their own.
  local shared = string.format("{ redis = %q, timeout = 5, retry = 0.2 %s }", url, shared_extra or "")
  local chunk = string.format([[
    local c = assert(po.cache.open { path = %q, namespace = %q, shared = %s })
    local out = (function(c) %s end)(c)
    io.write(po.json.encode(out))
  ]], dir, ns, shared, code)
  local r = po.run_sync { argv = { po.executable(), "-e", chunk }, timeout = 60 }
  assert.are.equal("ok", r.status, r.stderr)
  return po.json.decode(r.stdout), r.stderr
end

describe("po.cache shared tier", function()
  local server, dir, client
  before_each(function()
    server = redis_server.start_temp()
    dir = proc.tempdir()
    client = assert(po.redis.connect(server.url))
  end)
  after_each(function()
    client:close()
    redis_server.stop_temp(server)
    proc.rmdir(dir)
  end)

  local function keys(pattern)
    local list = client:command("KEYS", pattern):wait()
    table.sort(list)
    return list
  end

  it("answers a get in one process from a set in another, with the same value, flags and age", function()
    engine(server.url, dir .. "/a", "team", [[
      assert(c:set("greeting", "hello"))
      assert(c:set({ model = "m", messages = { { role = "user", content = "2+2?" } } }, { answer = 4 }))
      return true
    ]])
    local key = keys("poengine:cache:v*")
    assert.are.equal(2, #key)
    assert.matches("^poengine:cache:v%d+:team:%x+$", key[1])
    assert.are.equal(32, #key[1]:match "%x+$")
    po.sleep(0.05)
    local got = engine(server.url, dir .. "/b", "team", [[
      local s, si = c:get("greeting")
      local t, ti = c:get({ messages = { { content = "2+2?", role = "user" } }, model = "m" })
      local miss = c:get("never set")
      local local_after = c:contents().entries
      return { s = s, si = si, t = t, ti = ti, miss = miss == nil, entries = local_after, stats = c:stats() }
    ]])
    assert.are.equal("hello", got.s)
    assert.are.same({ answer = 4 }, got.t) -- a table: the JSON flag came back with it
    assert.are.equal("exact", got.si.hit)
    assert.is_true(got.si.age >= 0.05 and got.si.age < 60, "age " .. got.si.age)
    assert.is_true(got.miss)
    assert.are.equal(2, got.entries) -- the hits filled the local store
    local sh = got.stats.shared
    assert.are.same({ 2, 1, 0, 0, true }, { sh.hits, sh.misses, sh.sets, sh.failures, sh.connected })
    assert.are.equal(2, got.stats.hits)
    assert.are.equal(1, got.stats.misses)
  end)

  it("gives each entry the Redis expiry of its ttl, and a hit the time it has left", function()
    engine(server.url, dir .. "/a", "ns", [[
      c:set("whole", "v", { ttl = 30 })
      c:set("part", "v", { ttl = 0.7 })
      c:set("forever", "v", { ttl = 0 })
      return true
    ]])
    local function rkey(k)
      return "poengine:cache:v1:ns:" .. po.cache.key(k)
    end
    local ttl = client:command("TTL", rkey "whole"):wait()
    assert.is_true(ttl > 0 and ttl <= 30, tostring(ttl))
    local pttl = client:command("PTTL", rkey "part"):wait()
    assert.is_true(pttl > 0 and pttl <= 700, tostring(pttl))
    assert.are.equal(-1, client:command("TTL", rkey "forever"):wait())
    local got = engine(server.url, dir .. "/b", "ns", [[
      local first = c:get("part")
      po.sleep(0.8)
      -- the local copy expires with the entry, not a ttl from the fill
      local later = c:get("part")
      return { first = first, later = later == nil, forever = c:get("forever"), expirations = c:stats().expirations }
    ]])
    assert.are.equal("v", got.first)
    assert.is_true(got.later)
    assert.are.equal("v", got.forever)
    assert.are.equal(0, client:command("EXISTS", rkey "part"):wait())
  end)

  it("keeps namespaces and prefixes apart, and clears only its own keys", function()
    client:command("SET", "unrelated", "x"):wait()
    engine(server.url, dir .. "/a", "a", [[ c:set("k", "in a") return true ]])
    engine(server.url, dir .. "/a", "a*", [[ c:set("k", "in a*") return true ]])
    engine(server.url, dir .. "/a", "a", [[ c:set("k", "other prefix") return true ]], ', prefix = "other:"')
    local got = engine(server.url, dir .. "/b", "b", [[
      local v = c:get("k")
      return { miss = v == nil }
    ]])
    assert.is_true(got.miss)
    -- "a*" clears its own key only, though its name is a glob for a's
    local cleared = engine(server.url, dir .. "/c", "a*", [[
      local before = c:get("k")
      c:clear()
      return { before = before, after = c:get("k") or "none" }
    ]])
    assert.are.same({ before = "in a*", after = "none" }, cleared)
    local left = keys("*")
    assert.are.equal(3, #left)
    assert.are.equal("other:cache:v1:a:" .. po.cache.key("k"), left[1])
    assert.are.equal("poengine:cache:v1:a:" .. po.cache.key("k"), left[2])
    assert.are.equal("unrelated", left[3])
    local deleted = engine(server.url, dir .. "/d", "a", [[ return { c:delete("k"), c:get("k") or "none" } ]])
    assert.are.same({ true, "none" }, deleted)
  end)

  it("yields inside tasks: concurrent gets from Redis all answer", function()
    local c = assert(po.cache.open { namespace = "tasks", shared = { redis = server.unix_url } })
    local writer = assert(po.cache.open { path = dir .. "/w", namespace = "tasks", shared = { redis = server.url } })
    for i = 1, 20 do
      writer:set("k" .. i, "v" .. i)
    end
    local futs = {}
    for i = 1, 20 do
      futs[i] = po.async(function()
        return c:get("k" .. i)
      end)
    end
    for i = 1, 20 do
      assert.are.equal("v" .. i, (futs[i]:wait()))
    end
    assert.are.equal(20, c:stats().shared.hits)
    c:close()
    writer:close()
  end)

  it("degrades to the local tiers when Redis dies mid-use, says so once, and works again after a restart", function()
    redis_server.stop(server)
    server = redis_server.start(server.dir, server.port, { "--requirepass", "s3cret" })
    client:close()
    client = assert(po.redis.connect("redis://:s3cret@127.0.0.1:" .. server.port))
    local url = "redis://:s3cret@127.0.0.1:" .. server.port
    local killed, back = dir .. "/killed", dir .. "/back"
    local fut = po.run { argv = { po.executable(), "-e", string.format([[
      local c = assert(po.cache.open { path = %q, shared = { redis = %q, timeout = 5, retry = 0.2 } })
      assert(c:set("before", "1"))
      local pid = io.open(%q):read("*l")
      os.execute("kill -9 " .. pid)
      local out = { local_hit = c:get("before") }
      out.miss = c:get("absent") == nil
      out.set = c:set("during", "2")
      out.during = c:get("during")
      for i = 1, 5 do c:get("absent" .. i) po.sleep(0.1) end
      out.down = c:stats().shared
      io.open(%q, "w"):close() -- the spec restarts the server now
      while not io.open(%q) do po.sleep(0.05) end
      -- the client reconnects with its backoff while the loop runs
      local deadline = po.now() + 20
      repeat
        c:get("probe")
        po.sleep(0.1)
      until c:stats().shared.connected or po.now() > deadline
      out.after = c:set("after", "3")
      out.up = c:stats().shared
      io.write(po.json.encode(out))
    ]], dir .. "/local", url, server.dir .. "/redis.pid", killed, back) }, timeout = 60 }
    while not io.open(killed) do
      assert.is_false(fut:done())
      po.sleep(0.05)
    end
    server.fut:wait(30)
    os.remove(server.dir .. "/redis.pid")
    server = redis_server.start(server.dir, server.port, { "--requirepass", "s3cret" })
    client:close()
    client = assert(po.redis.connect(url))
    io.open(back, "w"):close()
    local r = fut:wait()
    assert.are.equal("ok", r.status, r.stderr)
    local out = po.json.decode(r.stdout)
    assert.are.equal("1", out.local_hit)
    assert.is_true(out.miss)
    assert.is_true(out.set)
    assert.are.equal("2", out.during)
    assert.is_true(out.down.failures >= 1)
    assert.is_false(out.down.connected)
    assert.is_true(out.down.failures + out.down.skipped >= 7) -- every operation went without Redis
    assert.is_true(out.up.connected)
    assert.is_true(out.after)
    assert.are.equal(out.down.sets + 1, out.up.sets)
    assert.are.equal(1, client:command("EXISTS", "poengine:cache:v1:default:" .. po.cache.key("after")):wait())
    -- one line on stderr, naming the server but not the password
    local lines = {}
    for line in r.stderr:gmatch "[^\n]+" do
      lines[#lines + 1] = line
    end
    assert.are.equal(1, #lines, r.stderr)
    assert.matches("shared tier at redis://127.0.0.1:" .. server.port .. " failed", lines[1], 1, true)
    assert.is_nil(r.stderr:find("s3cret", 1, true))
  end)

  it("returns from a get when Redis hangs, within the command timeout", function()
    -- 2 s: long enough that the set before the stop never times out on a
    -- busy machine, short enough to wait out once.
    local c = assert(po.cache.open { shared = { redis = server.url, timeout = 2, retry = 5 } })
    assert(c:set("k", "v"))
    local pid = proc.read(server.dir .. "/redis.pid"):match "%d+"
    os.execute("kill -STOP " .. pid)
    local ok, err = pcall(function()
      assert.are.equal("v", (c:get("k"))) -- local
      assert.is_nil(c:get("other"))
      assert.is_nil(c:get("third")) -- resting: not even sent
      local sh = c:stats().shared
      assert.are.equal(1, sh.failures)
      assert.are.equal(1, sh.skipped)
    end)
    os.execute("kill -CONT " .. pid)
    c:close()
    assert(ok, err)
  end)

  it("raises on a malformed shared option", function()
    assert.has_error(function()
      po.cache.open { shared = { redis = server.url, prfix = "x" } }
    end, "po.cache.open: unknown option 'shared.prfix'")
    assert.has_error(function()
      po.cache.open { shared = { prefix = "x" } }
    end, "po.cache.open: shared.redis (a redis:// or unix:// URL) is required")
    assert.has_error(function()
      po.cache.open { shared = { redis = server.url, timeout = 0 } }
    end, "po.cache.open: shared.timeout must be a positive number of seconds, got 0")
    assert.has_error(function()
      po.cache.open { shared = "redis://x" }
    end, "po.cache.open: shared must be a table, got string")
  end)
end)
