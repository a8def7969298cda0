-- `poengine cache`: the real binary on stores with known entries, written
-- by child poengine processes — some of them "ten days ago", their wall
-- clock moved by tests/tools/clockshim.c (the entries' write times are the
-- clock's, as a user's are): stats figures, prune by age and by bytes (the
-- newest remain), dry runs, clear, get, usage errors, paths that are no
-- cache store, a read-only store, and a prune while another process writes.
local po = require "poengine"
local proc = require "tests.tools.proc"
local q = proc.quote

local shim = (os.getenv("POENGINE_BUILD_DIR") or "build") .. "/tests/libclockshim.so"
-- What a poengine child needs ahead of a shim under the sanitizers (see tests/CMakeLists.txt).
local sanitizer = os.getenv("POENGINE_EXE_SANITIZER_PRELOAD") or ""
local DAY = 86400

-- Writes n entries PREFIX01.. -> "value-01".. (3 + 8 bytes each for a
-- one-letter prefix) into namespace ns: args dir ns prefix n ttl [semantic].
local writer = proc.tempfile([[
  local dir, ns, prefix, n, ttl, semantic = ...
  local c = assert(po.cache.open { path = dir, namespace = ns, ttl = tonumber(ttl), sync = "none",
    max_entries = 100000, semantic = semantic == "semantic" and {} or nil })
  for i = 1, tonumber(n) do
    assert(c:set(prefix .. ("%02d"):format(i), ("value-%02d"):format(i)))
  end
  c:close()
]], ".lua")

local function env_shifted(days_ago)
  if not days_ago then
    return ""
  end
  return "POENGINE_CLOCK_SHIFT=" .. math.floor(-days_ago * DAY) .. " LD_PRELOAD="
    .. q(sanitizer ~= "" and sanitizer .. ":" .. shim or shim) .. " "
end

local function write(dir, ns, prefix, n, opts)
  opts = opts or {}
  local status, _, err = proc.sh(env_shifted(opts.days_ago) .. q(proc.bin) .. " " .. q(writer) .. " " .. q(dir)
    .. " " .. q(ns) .. " " .. q(prefix) .. " " .. n .. " " .. (opts.ttl or 0) .. (opts.semantic and " semantic" or ""))
  assert.are.equal(0, status, err)
end

local function cache(args)
  return proc.poengine("cache " .. args)
end

local function json_of(args)
  local status, out, err = cache(args .. " --json")
  assert.are.equal(0, status, err)
  return assert(po.json.decode(out))
end

local function by_name(stats)
  local t = {}
  for _, ns in ipairs(stats.namespaces) do
    t[ns.name] = ns
  end
  return t
end

local function checksum(file)
  local _, out = proc.sh("cksum " .. q(file))
  return out:match("^(%d+ %d+)")
end

-- What `get` finds under a key: the value, or nil.
local function value_of(dir, key, ns)
  local status, out = cache("get " .. q(key) .. " --path " .. q(dir) .. (ns and " --namespace " .. q(ns) or ""))
  return status == 0 and out or nil
end

describe("poengine cache", function()
  local temps = {}
  local function tempdir()
    temps[#temps + 1] = proc.tempdir()
    return temps[#temps] .. "/store"
  end

  -- old: 5 entries ten days old; exp: 2 ten days old that lived 60 s; new: 3 of now.
  local function mixed_store()
    local dir = tempdir()
    write(dir, "old", "o", 5, { days_ago = 10 })
    write(dir, "exp", "e", 2, { days_ago = 10, ttl = 60 })
    write(dir, "new", "n", 3)
    return dir
  end

  teardown(function()
    for _, dir in ipairs(temps) do
      proc.rmdir(dir)
    end
    os.remove(writer)
  end)

  it("stats: each namespace's entries, bytes, ages and expired entries, and the map", function()
    local dir = mixed_store()
    local s = json_of("stats --path " .. q(dir))
    assert.are.equal(10, s.entries)
    assert.are.equal(110, s.bytes)
    assert.are.equal(2, s.expired)
    assert.are.equal(0, s.vectors)
    local ns = by_name(s)
    assert.are.same({ 5, 55, 0 }, { ns.old.entries, ns.old.bytes, ns.old.expired })
    assert.are.same({ 2, 22, 2 }, { ns.exp.entries, ns.exp.bytes, ns.exp.expired })
    assert.are.same({ 3, 33, 0 }, { ns.new.entries, ns.new.bytes, ns.new.expired })
    -- written ten days ago by the shifted clock, and just now
    assert.is_true(ns.old.oldest_age >= 10 * DAY and ns.old.oldest_age < 10 * DAY + 3600)
    assert.is_true(ns.new.newest_age >= 0 and ns.new.newest_age < 3600)
    assert.are.equal(ns.old.oldest_age, s.oldest_age)
    assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ$", ns.new.newest)
    assert.are.equal(po.dashboard.fmt.rfc3339(po.time() - s.oldest_age):sub(1, 10), s.oldest:sub(1, 10))
    assert.is_true(s.map_size >= 256 * 1024 * 1024 and s.map_used > 0 and s.map_used + s.map_free <= s.map_size)

    local status, out, err = cache("stats --path " .. q(dir))
    assert.are.equal(0, status, err)
    assert.truthy(out:find("cache store " .. dir, 1, true))
    assert.truthy(out:find("namespace old: 5 entries (55 bytes), 0 expired\n  oldest written 10d 0h ago", 1, true))
    assert.truthy(out:find("namespace exp: 2 entries (22 bytes), 2 expired", 1, true))
    assert.truthy(out:find("total: 10 entries (110 bytes), 2 expired", 1, true))
    assert.truthy(out:find("map: 256.0 MiB, ", 1, true))

    local one = json_of("stats --namespace new --path " .. q(dir))
    assert.are.equal(1, #one.namespaces)
    assert.are.equal(3, one.entries)
  end)

  it("stats and prune count the semantic tier's vectors, which go with their entries", function()
    local dir = tempdir()
    write(dir, "sem", "s", 4, { semantic = true })
    assert.are.equal(4, json_of("stats --path " .. q(dir)).vectors)
    local r = json_of("prune --max-bytes 22 --path " .. q(dir))
    assert.are.same({ 2, 2 }, { r.removed, r.remaining })
    local s = json_of("stats --path " .. q(dir))
    assert.are.same({ 2, 2 }, { s.entries, s.vectors })
  end)

  it("prune --older-than: expired entries and those written before the cutoff; --dry-run changes nothing", function()
    local dir = mixed_store()
    local before = checksum(dir .. "/data.mdb")
    local status, out, err = cache("prune --older-than 7d --dry-run --path " .. q(dir))
    assert.are.equal(0, status, err)
    assert.are.equal("would remove 7 entries (77 bytes), 2 of them expired; 3 entries (33 bytes) would remain\n", out)
    assert.are.equal(before, checksum(dir .. "/data.mdb"))
    assert.are.equal(10, json_of("stats --path " .. q(dir)).entries)

    status, out, err = cache("prune --older-than 7d --path " .. q(dir))
    assert.are.equal(0, status, err)
    assert.are.equal("removed 7 entries (77 bytes), 2 of them expired; 3 entries (33 bytes) remain\n", out)
    local ns = by_name(json_of("stats --path " .. q(dir)))
    assert.are.same({ 0, 0, 3 }, { ns.old.entries, ns.exp.entries, ns.new.entries })
    assert.is_nil(value_of(dir, "o01", "old"))
    assert.are.equal("value-03", value_of(dir, "n03", "new"))
    -- the other units, and a cutoff that keeps the ten-day-old ones
    write(dir, "old", "o", 5, { days_ago = 10 })
    for _, age in ipairs { "11d", "2w", "300h", "20000m", "1000000s", "1000000" } do
      assert.are.equal(0, json_of("prune --dry-run --older-than " .. age .. " --path " .. q(dir)).removed, age)
    end
    assert.are.equal(5, json_of("prune --dry-run --older-than 239h --path " .. q(dir)).removed)
  end)

  it("prune --max-bytes: the oldest go until the rest fit; the newest remain", function()
    local dir = tempdir()
    write(dir, "a", "k", 10)
    local r = json_of("prune --max-bytes 35 --path " .. q(dir))
    assert.are.same({ removed = 7, removed_bytes = 77, expired = 0, remaining = 3, remaining_bytes = 33,
      dry_run = false }, r)
    for i = 1, 10 do
      assert.are.equal(i >= 8 and ("value-%02d"):format(i) or nil, value_of(dir, ("k%02d"):format(i)), i)
    end
    -- K is 1024 bytes: 93 entries of 11 bytes fit in 1K, not 94
    write(dir, "a", "m", 99)
    r = json_of("prune --max-bytes 1K --namespace a --path " .. q(dir))
    assert.are.same({ 102 - 93, 93, 93 * 11 }, { r.removed, r.remaining, r.remaining_bytes })
    assert.is_nil(value_of(dir, "m06"))
    assert.are.equal("value-07", value_of(dir, "m07"))
  end)

  it("prune without --namespace bounds the whole store, the oldest of any namespace first", function()
    local dir = tempdir()
    write(dir, "older", "o", 4, { days_ago = 2 })
    write(dir, "newer", "n", 4)
    write(dir, "oldest", "x", 4, { days_ago = 3 })
    local r = json_of("prune --max-bytes 60 --path " .. q(dir))
    assert.are.same({ 7, 5 }, { r.removed, r.remaining })
    local ns = by_name(json_of("stats --path " .. q(dir)))
    assert.are.same({ 0, 1, 4 }, { ns.oldest.entries, ns.older.entries, ns.newer.entries })
    assert.are.equal("value-04", value_of(dir, "o04", "older"))
    -- with --namespace, only that one
    r = json_of("prune --max-bytes 0 --namespace newer --path " .. q(dir))
    assert.are.same({ 4, 0 }, { r.removed, r.remaining })
    assert.are.equal(1, by_name(json_of("stats --path " .. q(dir))).older.entries)
  end)

  it("clear empties one namespace or all of them", function()
    local dir = mixed_store()
    local status, out, err = cache("clear --namespace old --path " .. q(dir))
    assert.are.equal(0, status, err)
    assert.are.equal("cleared namespace old: 5 entries (55 bytes) removed\n", out)
    local ns = by_name(json_of("stats --path " .. q(dir)))
    assert.are.same({ 0, 2, 3 }, { ns.old.entries, ns.exp.entries, ns.new.entries })
    status, out, err = cache("clear --path " .. q(dir))
    assert.are.equal(0, status, err)
    assert.truthy(out:find("cleared namespace new: 3 entries (33 bytes) removed", 1, true))
    local s = json_of("stats --path " .. q(dir))
    assert.are.same({ 0, 0 }, { s.entries, s.bytes })
  end)

  it("get prints a value by string key or by a request given as JSON; an absent key is status 1", function()
    local dir = tempdir()
    local c = assert(po.cache.open { path = dir, namespace = "optimize" })
    local req = { model = "m", temperature = 0, messages = { { role = "user", content = "hi" } } }
    assert(c:set(req, { text = "hello" }))
    assert(c:set("plain", "line one\nline two"))
    c:close()
    assert.are.equal("line one\nline two", value_of(dir, "plain"))
    local status, out, err = cache("get --json-key " .. q('{"messages":[{"content":"hi","role":"user"}],'
      .. '"model":"m","temperature":0}') .. " --path " .. q(dir))
    assert.are.equal(0, status, err)
    assert.are.same({ text = "hello" }, po.json.decode(out))
    status, out, err = cache("get absent --path " .. q(dir))
    assert.are.equal(1, status)
    assert.are.equal("", out)
    assert.are.equal("poengine cache: no entry under key " .. po.cache.key("absent") .. " in namespace optimize\n", err)
    -- several namespaces: get asks which
    write(dir, "other", "k", 1)
    status, _, err = cache("get plain --path " .. q(dir))
    assert.are.equal(1, status)
    assert.truthy(err:find("holds several namespaces (optimize, other): give --namespace", 1, true))
    assert.are.equal("value-01", value_of(dir, "k01", "other"))
  end)

  it("uses the optimizer's cache, HOME/cache, by default", function()
    local home = tempdir()
    write(home .. "/cache", "optimize", "k", 2)
    local status, out, err = proc.sh("POENGINE_HOME=" .. q(home) .. " " .. q(proc.bin) .. " cache stats")
    assert.are.equal(0, status, err)
    assert.truthy(out:find("cache store " .. home .. "/cache\n", 1, true))
    assert.truthy(out:find("namespace optimize: 2 entries (22 bytes)", 1, true))
  end)

  it("refuses bad arguments with a message naming them, status 2", function()
    local dir = mixed_store()
    local cases = {
      { "", "a command is needed" },
      { "frob", "unknown command 'frob'" },
      { "prune --older-than 7x", "--older-than needs an age such as 90s, 30m, 12h, 7d or 2w, got '7x'" },
      { "prune --older-than -1d", "--older-than needs an age" },
      { "prune --max-bytes 10X", "--max-bytes needs a size in bytes, or with K, M or G (powers of 1024), got '10X'" },
      { "prune --max-bytes 10MB", "--max-bytes needs a size" },
      { "prune --max-bytes", "--max-bytes needs a value" },
      { "stats --dry-run", "unexpected argument '--dry-run' for stats" },
      { "stats --older-than 1d", "--older-than is for prune, not stats" },
      { "clear extra", "unexpected argument 'extra' for clear" },
      { "get", "get needs a KEY" },
      { "get a b", "unexpected argument 'b' for get" },
      { "get '{not json' --json-key", "--json-key needs a JSON object or array as KEY" },
      { "stats --namespace ''", "--namespace needs a name" },
      { "stats --path ''", "--path needs a directory", bare = true },
    }
    local before = checksum(dir .. "/data.mdb")
    for _, case in ipairs(cases) do
      local status, out, err = cache((case[1] == "" or case.bare) and case[1] or case[1] .. " --path " .. q(dir))
      assert.are.equal(2, status, case[1])
      assert.are.equal("", out)
      assert.truthy(err:find("poengine cache: " .. case[2], 1, true), case[1] .. ": " .. err)
    end
    assert.are.equal(before, checksum(dir .. "/data.mdb"))
    local status, _, err = cache("--help")
    assert.are.equal(0, status)
    assert.truthy(err:find("usage: poengine cache stats", 1, true))
  end)

  it("says so, status 1, for a path that holds no cache store, creating nothing", function()
    local base = proc.tempdir()
    temps[#temps + 1] = base
    local function refused(path, says)
      for _, command in ipairs { "stats", "prune --max-bytes 0", "clear", "get k" } do
        local status, out, err = cache(command .. " --path " .. q(path))
        assert.are.equal(1, status, command .. " " .. path)
        assert.are.equal("", out)
        assert.truthy(err:find(says, 1, true), err)
      end
    end
    refused(base .. "/missing", "no cache store in " .. base .. "/missing: No such file or directory")
    refused(base, "no cache store in " .. base .. ": no data.mdb there")
    local _, listing = proc.sh("ls -A " .. q(base))
    assert.are.equal("", listing)
    -- a store that holds no cache: a collector's
    local store = base .. "/metrics"
    local col = assert(po.metrics.collector { path = store })
    col:close()
    refused(store, "the store in " .. store .. " holds no cache")
    -- a damaged data file, left as it was
    local damaged = base .. "/damaged"
    assert(os.execute("mkdir " .. q(damaged) .. " && head -c 8192 /dev/urandom > " .. q(damaged .. "/data.mdb")) == 0)
    local before = checksum(damaged .. "/data.mdb")
    refused(damaged, "cannot open the store in")
    assert.are.equal(before, checksum(damaged .. "/data.mdb"))
    -- a namespace the store does not hold
    local dir = mixed_store()
    local status, _, err = cache("stats --namespace nope --path " .. q(dir))
    assert.are.equal(1, status)
    assert.truthy(err:find("no namespace 'nope' in the cache store " .. dir .. " (it holds exp, new, old)", 1, true))
  end)

  it("refuses a store it cannot write, status 1, changing nothing", function()
    local dir = mixed_store()
    local before = checksum(dir .. "/data.mdb")
    local _, uid = proc.sh("id -u")
    local as = ""
    if tonumber(uid) == 0 then
      -- root writes anywhere: the commands run as nobody, the store readable by all
      assert(os.execute("chmod 0755 " .. q(dir) .. " " .. q(dir .. "/..") .. " && chmod 0644 " .. q(dir) .. "/*") == 0)
      as = "setpriv --reuid=65534 --regid=65534 --clear-groups "
    else
      assert(os.execute("chmod -R a-w " .. q(dir)) == 0)
    end
    for _, command in ipairs { "prune --max-bytes 0", "clear", "stats" } do
      local status, out, err = proc.sh(as .. q(proc.bin) .. " cache " .. command .. " --path " .. q(dir))
      assert.are.equal(1, status, command)
      assert.are.equal("", out)
      assert.are.equal("poengine cache: the store directory " .. dir .. " is not writable: Permission denied\n", err)
    end
    assert.are.equal(before, checksum(dir .. "/data.mdb"))
    os.execute("chmod -R u+w " .. q(dir))
    assert.are.equal(10, json_of("stats --path " .. q(dir)).entries)
  end)

  it("prunes while another poengine process writes to the store", function()
    local dir = tempdir()
    write(dir, "old", "o", 3000, { days_ago = 10 })
    local marks = proc.tempdir()
    temps[#temps + 1] = marks
    local live = proc.tempfile([[
      local dir, marks = ...
      local c = assert(po.cache.open { path = dir, namespace = "live", ttl = 0, max_entries = 1000000 })
      local n = 0
      repeat
        n = n + 1
        assert(c:set("live" .. n, "value" .. n))
        if n == 1 then io.open(marks .. "/started", "w"):close() end
      until io.open(marks .. "/stop") or n == 1000000
      c:close()
      io.write(n)
    ]], ".lua")
    local writing = po.run { argv = { proc.bin, live, dir, marks }, timeout = 120 }
    local waited = 0
    while not io.open(marks .. "/started") and waited < 600 do
      po.sleep(0.05)
      waited = waited + 1
    end
    assert.truthy(io.open(marks .. "/started"), "the writer never started")
    local pruned = po.run_sync { argv = { proc.bin, "cache", "prune", "--older-than", "7d", "--json", "--path", dir },
      timeout = 120 }
    io.open(marks .. "/stop", "w"):close()
    local w = writing:wait(120)
    os.remove(live)
    assert.are.equal("ok", pruned.status, pruned.stderr)
    assert.are.equal("ok", w.status, w.stderr)
    local r = assert(po.json.decode(pruned.stdout))
    assert.are.equal(3000, r.removed)
    local written = tonumber(w.stdout)
    -- every entry the writer wrote is there, and the counts agree with the entries
    local ns = by_name(json_of("stats --path " .. q(dir)))
    assert.are.same({ 0, written }, { ns.old.entries, ns.live.entries })
    for _, name in ipairs { "old", "live" } do
      local c = assert(po.cache.open { path = dir, namespace = name, create = false, max_entries = 1000000 })
      assert.are.equal(c:contents().entries, c:stats().size)
      if name == "live" then
        assert.are.equal("value" .. written, (c:get("live" .. written)))
        assert.are.equal("value1", (c:get("live1")))
      end
      c:close()
    end
    local status, out, err = proc.poengine("store check " .. q(dir))
    assert.are.equal(0, status, out .. err)
  end)
end)
