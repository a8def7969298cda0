-- po.cache: the whole Lua API, keys and secrets, TTL, eviction, the store,
-- several processes on one store, and a writer killed at random moments.
local po = require "poengine"
local proc = require "tests.tools.proc"
local q = proc.quote

local function tempdir()
  local path = os.tmpname()
  os.remove(path)
  assert(os.execute("mkdir -p " .. q(path)) == 0)
  return path
end

local function rmdir(path)
  os.execute("rm -rf " .. q(path))
end

local function raises(pattern, fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok)
  if not tostring(err):find(pattern, 1, true) then
    error(("expected an error containing %q, got %q"):format(pattern, tostring(err)), 2)
  end
end

local function request(overrides)
  local r = {
    model = "gpt-x",
    temperature = 0,
    max_tokens = 100,
    messages = {
      { role = "system", content = "You are terse." },
      { role = "user", content = "What is 2 + 2?" },
    },
  }
  for k, v in pairs(overrides or {}) do
    r[k] = v
  end
  return r
end

local function read_file(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

local function write_file(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

-- Each test uses its own namespace: memory caches are shared per namespace
-- in a process.
local n = 0
local function ns()
  n = n + 1
  return "spec" .. n
end

describe("po.cache", function()
  it("has the documented functions", function()
    assert.is_function(po.cache.open)
    assert.is_function(po.cache.key)
    assert.is_function(po.cache.cached)
  end)

  describe("open", function()
    it("raises on unknown option names and wrong types", function()
      raises("po.cache.open: unknown option 'max_entrys'", po.cache.open, { max_entrys = 3 })
      raises("po.cache.open: max_entries must be a positive integer", po.cache.open, { max_entries = "3" })
      raises("po.cache.open: max_entries must be a positive integer", po.cache.open, { max_entries = 0 })
      raises("po.cache.open: max_bytes must be a positive integer", po.cache.open, { max_bytes = 1.5 })
      raises("po.cache.open: policy must be one of 'lru', 'sieve', got 'fifo'", po.cache.open, { policy = "fifo" })
      raises("po.cache.open: sync must be one of", po.cache.open, { sync = "always" })
      raises("po.cache.open: ttl must be a non-negative number", po.cache.open, { ttl = -1 })
      raises("po.cache.open: path must be a string", po.cache.open, { path = 5 })
      raises("po.cache.open: namespace must be a string", po.cache.open, { namespace = true })
      raises("po.cache.open: semantic must be a table or false", po.cache.open, { semantic = true })
      raises("po.cache.open: unknown option 'semantic.treshold'", po.cache.open, { semantic = { treshold = 1 } })
      raises("po.cache.open: semantic.threshold must be a number", po.cache.open, { semantic = { threshold = "x" } })
      raises("po.cache.open: semantic.embed must be", po.cache.open, { semantic = { embed = "bert" } })
      raises("po.cache.open: options must be a table", po.cache.open, "x")
    end)

    it("reports an unwritable path as nil, message naming it, code", function()
      local c, err, code = po.cache.open { path = "/etc/passwd/cache" }
      assert.is_nil(c)
      assert.are.equal("EPERM", code)
      assert.truthy(err:find("/etc/passwd/cache", 1, true), err)
    end)

    it("shares one cache per namespace in a process, and refuses other limits for it", function()
      local name = ns()
      local a = assert(po.cache.open { namespace = name, max_entries = 5 })
      local b = assert(po.cache.open { namespace = name })
      a:set("k", "v")
      assert.are.equal("v", (b:get("k")))
      raises("already open in this process with another max_entries", po.cache.open,
        { namespace = name, max_entries = 6 })
      a:close()
      assert.are.equal("v", (b:get("k")))
      b:close()
    end)

    it("close is safe twice and methods of a closed cache raise", function()
      local c = assert(po.cache.open { namespace = ns() })
      c:close()
      c:close()
      raises("cache:get: the cache is closed", c.get, c, "k")
      raises("cache:set: the cache is closed", c.set, c, "k", "v")
      raises("cache:stats: the cache is closed", c.stats, c)
    end)
  end)

  describe("get and set", function()
    local c
    before_each(function()
      c = assert(po.cache.open { namespace = ns(), max_entries = 100 })
    end)
    after_each(function()
      c:close()
    end)

    it("stores strings and tables, returning tables decoded, with info", function()
      assert.is_nil(c:get("missing"))
      assert.is_true(c:set("s", "text\0with zero"))
      local v, info = c:get("s")
      assert.are.equal("text\0with zero", v)
      assert.are.same("exact", info.hit)
      assert.are.equal(1, info.score)
      assert.is_true(info.age >= 0 and info.age < 5)
      assert.is_true(c:set("t", { choices = { { text = "4" } }, usage = { total = 7 } }))
      v = c:get("t")
      assert.are.same({ choices = { { text = "4" } }, usage = { total = 7 } }, v)
      assert.is_true(c:set("empty", ""))
      assert.are.equal("", (c:get("empty")))
    end)

    it("raises on values and keys it cannot store", function()
      raises("cache:set: value must be a string or a JSON-able table, got number", c.set, c, "k", 5)
      raises("cache:set: value must be a string or a JSON-able table, got nil", c.set, c, "k", nil)
      raises("cache:set: value cannot be stored as JSON", c.set, c, "k", { f = print })
      raises("cache:get: key must be a string or a request table, got number", c.get, c, 5)
      raises("cache:set: unknown option 'tll'", c.set, c, "k", "v", { tll = 3 })
      raises("cache:set: ttl must be a non-negative number", c.set, c, "k", "v", { ttl = -2 })
      raises("cache:get: cycle", c.get, c, (function() local t = {} t.self = t return t end)())
    end)

    it("finds the same request built in any order, and ignores secrets", function()
      local a = request { api_key = "sk-one" }
      local b = {
        messages = {
          { content = "You are terse.", role = "system" },
          { content = "What is 2 + 2?", role = "user" },
        },
        max_tokens = 100,
        temperature = 0,
        model = "gpt-x",
        headers = { Authorization = "Bearer sk-two", ["X-Api-Key"] = "k" },
        ["API-KEY"] = "other",
      }
      c:set(a, "four")
      assert.are.equal("four", (c:get(b)))
      assert.are.equal(po.cache.key(a), po.cache.key(b))
      assert.are.equal(po.cache.key(request()), po.cache.key(a))
      local canonical = require("poengine_core").cache.canonical(b)
      assert.is_nil(canonical:find("sk-", 1, true))
      assert.is_nil(canonical:find("other", 1, true))
    end)

    it("keys on everything that changes the answer", function()
      local base = po.cache.key(request())
      local changes = {
        { model = "gpt-y" },
        { temperature = 0.5 },
        { max_tokens = 101 },
        { stop = { "\n" } },
        { seed = 7 },
        { response_format = { type = "json_object" } },
        { tools = { { type = "function", ["function"] = { name = "f" } } } },
        { messages = { { role = "system", content = "You are verbose." }, { role = "user", content = "What is 2 + 2?" } } },
        { messages = { { role = "user", content = "What is 2 + 2?" } } },
      }
      local seen = { [base] = true }
      for i, change in ipairs(changes) do
        local k = po.cache.key(request(change))
        assert.is_nil(seen[k], "change " .. i .. " gave a key seen before")
        seen[k] = true
      end
    end)

    it("keeps tool parameters named like secrets (JSON Schema property names)", function()
      local function tool(prop_type)
        return request { tools = { { type = "function", ["function"] = { name = "login", parameters = {
          type = "object", properties = { password = { type = prop_type }, api_key = { type = prop_type } } } } } } }
      end
      assert.are_not.equal(po.cache.key(tool("string")), po.cache.key(tool("number")))
      assert.truthy(require("poengine_core").cache.canonical(tool("string")):find('"password"', 1, true))
    end)

    it("key returns 32 hex digits for strings and requests", function()
      assert.truthy(po.cache.key("abc"):match("^%x+$"))
      assert.are.equal(32, #po.cache.key("abc"))
      assert.are.equal(32, #po.cache.key(request()))
      assert.are_not.equal(po.cache.key("abc"), po.cache.key("abd"))
      raises("po.cache.key: key must be a string or a request table", po.cache.key, 1)
    end)

    it("delete says whether the key was there; clear empties the cache", function()
      c:set("a", "1")
      c:set(request(), "2")
      assert.is_true(c:delete("a"))
      assert.is_false(c:delete("a"))
      assert.is_true(c:delete(request()))
      c:set("b", "3")
      assert.is_true(c:clear())
      assert.is_nil(c:get("b"))
      assert.are.equal(0, c:stats().size)
    end)

    it("expires entries after their ttl; an expired entry is a miss and is removed", function()
      local t = assert(po.cache.open { namespace = ns(), ttl = 0.05 })
      t:set("default", "d")
      t:set("long", "l", { ttl = 60 })
      t:set("forever", "f", { ttl = 0 })
      po.sleep(0.1)
      assert.is_nil(t:get("default"))
      assert.are.equal("l", (t:get("long")))
      assert.are.equal("f", (t:get("forever")))
      local s = t:stats()
      assert.are.equal(1, s.expirations)
      assert.are.equal(2, s.size)
      assert.are.equal(1, s.misses)
      t:close()
    end)

    it("counts statistics", function()
      c:set("a", "1")
      c:get("a")
      c:get("a")
      c:get("b")
      local s = c:stats()
      assert.are.equal(2, s.hits)
      assert.are.equal(1, s.misses)
      assert.are.equal(0, s.semantic_hits)
      assert.are.equal(1, s.sets)
      assert.are.equal(3, s.total_requests)
      assert.is_true(math.abs(s.hit_rate - 2 / 3) < 1e-12)
      assert.is_true(math.abs(s.api_call_reduction - 200 / 3) < 1e-9)
      assert.are.equal(1, s.size)
      assert.are.equal(2, s.bytes)
      assert.are.equal(100, s.max_entries)
      assert.are.equal(0, s.evictions)
      assert.are.equal(0, s.expirations)
    end)
  end)

  describe("request keys", function()
    -- A request table is written in a canonical binary form (src/core/cache_key.h)
    -- by a C walker and hashed; these pin what that form tells apart and what not.
    local core = require "poengine_core"
    local key = po.cache.key

    -- The same pairs inserted in the order given.
    local function build(pairs_list)
      local t = {}
      for _, kv in ipairs(pairs_list) do
        t[kv[1]] = kv[2]
      end
      return t
    end

    it("is the same for any insertion order, at any depth and any size", function()
      local a = build { { "model", "m" }, { "temperature", 0 }, { "messages", { build { { "role", "user" }, { "content", "hi" } } } } }
      local b = build { { "messages", { build { { "content", "hi" }, { "role", "user" } } } }, { "temperature", 0 }, { "model", "m" } }
      assert.are.equal(key(a), key(b))
      -- objects large enough to be sorted by qsort, and too large to keep on the Lua stack
      for _, n in ipairs { 40, 5000 } do
        local fwd, bwd = {}, {}
        for i = 1, n do
          fwd["k" .. i] = i
        end
        for i = n, 1, -1 do
          bwd["k" .. i] = i
        end
        fwd[1.5], bwd[1.5] = "x", "x"
        assert.are.equal(key(fwd), key(bwd))
        bwd.k1 = 2
        assert.are_not.equal(key(fwd), key(bwd))
      end
      -- an array whose integer keys went into the hash part in another order
      local arr = {}
      arr[3], arr[1], arr[2] = "c", "a", "b"
      assert.are.equal(key { list = { "a", "b", "c" } }, key { list = arr })
    end)

    it("tells apart types, array order and nesting", function()
      local function differ(x, y)
        assert.are_not.equal(key { v = x }, key { v = y })
      end
      differ(1, "1")
      differ(true, "true")
      differ(0, false)
      differ(po.json.null, "null")
      differ(po.json.null, false)
      differ(1, 1.0000000000000002)
      differ(0, -0.0) -- as po.json.encode writes "0" and "-0"
      differ("", {})
      differ({}, po.json.array {})
      differ({ 1, 2 }, { 2, 1 })
      differ({ 1, 2 }, { { 1, 2 } })
      differ({ a = { b = 1 } }, { a = { { b = 1 } } })
      differ({ a = { b = 1 } }, { b = { a = 1 } })
      differ({ a = "b" }, { ab = "" })
      differ({ "a", "b" }, { "ab" })
      differ({ [1.5] = true }, { ["1.5"] = true })
      differ("x\0y", "x\0z")
      differ({ 1, nil, 3 }, { 1, 3 })
      assert.are.equal(key { v = { 1, nil, 3 } }, key { v = { 1, po.json.null, 3 } }) -- a hole is null, as in JSON
      assert.are.equal(key { v = 1 }, key { v = 1.0 })
      -- a request is never the key of a string, whatever the string
      assert.are_not.equal(key { model = "m" }, key(po.json.encode { model = "m" }))
    end)

    it("agrees with the sorted JSON encoder on which requests are the same", function()
      -- Random small values: two draw the same key exactly when their sorted JSON is equal.
      math.randomseed(7)
      local atoms = { 0, 1, 2, "1", "a", "b", true, false, po.json.null }
      local names = { "a", "b", "c" }
      local function value(depth)
        local r = math.random(depth > 2 and 1 or 4)
        if r <= 2 then
          return atoms[math.random(#atoms)]
        elseif r == 3 then
          local t = {}
          for i = 1, math.random(0, 2) do
            t[i] = value(depth + 1)
          end
          return t
        end
        local t = {}
        for _ = 1, math.random(0, 2) do
          t[names[math.random(#names)]] = value(depth + 1)
        end
        return t
      end
      local by_key, by_json, n = {}, {}, 0
      for _ = 1, 3000 do
        local v = { v = value(0) }
        local k, j = key(v), po.json.encode(v, { sort_keys = true })
        if by_key[k] then
          assert.are.equal(by_key[k], j)
        end
        if by_json[j] then
          assert.are.equal(by_json[j], k)
        else
          n = n + 1
        end
        by_key[k], by_json[j] = j, k
      end
      assert.is_true(n > 100) -- many distinct values, and many repeats
    end)

    it("leaves secrets out at any depth, and keeps the documented exceptions", function()
      local base = request()
      local with = request {
        api_key = "sk-1",
        Authorization = "Bearer x",
        extra_headers = { ["X-Api-Key"] = "k" },
        metadata = { deep = { deeper = { { client_secret = "s", ["x-goog-api-key"] = "g" } } } },
      }
      local plain = request { metadata = { deep = { deeper = { {} } } } }
      assert.are.equal(key(plain), key(with))
      assert.are_not.equal(key(base), key(with)) -- metadata stays, only the secrets go
      local text = core.cache.canonical(with)
      for _, s in ipairs { "sk-1", "Bearer", "k\"", "api", "secret", "goog" } do
        assert.is_nil(text:find(s, 1, true), s)
      end
      -- JSON Schema name maps keep their names at any depth
      for _, map in ipairs { "properties", "patternProperties", "$defs", "definitions" } do
        local function schema(t)
          return request { tools = { { type = "function", ["function"] = { name = "f", parameters = {
            type = "object", nested = { { [map] = { password = { type = t }, token = { type = t } } } } } } } } }
        end
        assert.are_not.equal(key(schema("string")), key(schema("number")), map)
        assert.truthy(core.cache.canonical(schema("string")):find('"token"', 1, true), map)
      end
      -- a secret name under any other parent goes
      local t1 = request { tools = { { parameters = { props = { password = { type = "string" } } } } } }
      local t2 = request { tools = { { parameters = { props = { password = { type = "number" } } } } } }
      assert.are.equal(key(t1), key(t2))
    end)

    it("raises on cycles, functions and other values JSON cannot hold, naming where", function()
      local c = assert(po.cache.open { namespace = ns() })
      local cyc = { messages = { {} } }
      cyc.messages[1].self = cyc
      raises("cache:get: cycle at $.messages[1].self", c.get, c, cyc)
      raises("cache:set: cannot encode a function at $.tools[2].fn", c.set, c, { tools = { 1, { fn = print } } }, "v")
      raises("po.cache.key: cannot encode NaN at $.temperature", key, { temperature = 0 / 0 })
      raises("po.cache.key: cannot encode inf at $.x", key, { x = math.huge })
      raises("cannot encode a boolean key at $", key, { [true] = 1 })
      raises("cannot encode an infinite number as a key", key, { [-math.huge] = 1 })
      raises("cannot encode a userdata at $.u", key, { u = io.stdout })
      raises("array (po.json.array) has a string key", key, po.json.array { 1, x = 2 })
      raises("nesting deeper than 1000", key, (function()
        local t = {}
        local top = t
        for _ = 1, 1001 do
          t.n = {}
          t = t.n
        end
        return top
      end)())
      -- after an error the walker is ready again
      assert.are.equal(32, #key(request()))
      c:close()
    end)

    it("gives the semantic tier a group from the same canonical form", function()
      local a = request()
      local b = build { { "max_tokens", 100 }, { "messages", { { role = "system", content = "Other words." },
        { role = "user", content = "Another question?" } } }, { "temperature", 0 }, { "model", "gpt-x" } }
      -- the group is made of the key of the request without its texts
      local function parts(r)
        local text, params = po.cache._semantic_parts(r)
        return text, key(params)
      end
      local ta, ga = parts(a)
      local tb, gb = parts(b)
      assert.are_not.equal(ta, tb)
      assert.are.equal(ga, gb) -- only message texts differ
      assert.are.equal(ga, key(request { messages = { { role = "system" }, { role = "user" } } }))
      local _, gc = parts(request { temperature = 0.5 })
      assert.are_not.equal(ga, gc)
      local _, gd = parts(request { api_key = "sk-x" })
      assert.are.equal(ga, gd)
      assert.are.same({ "What is 2 + 2?", "string" }, { po.cache._semantic_parts("What is 2 + 2?") })
    end)
  end)

  describe("limits", function()
    it("evicts the least recently used entry (lru) or the first unvisited one (sieve)", function()
      local lru = assert(po.cache.open { namespace = ns(), max_entries = 3 })
      local sieve = assert(po.cache.open { namespace = ns(), max_entries = 3, policy = "sieve" })
      for _, c in ipairs { lru, sieve } do
        c:set("a", "1")
        c:set("b", "2")
        c:set("c", "3")
        assert.truthy(c:get("a"))
      end
      assert.truthy(sieve:get("b"))
      lru:set("d", "4")
      sieve:set("d", "4")
      assert.is_nil(lru:get("b"))
      assert.truthy(lru:get("a") and lru:get("c") and lru:get("d"))
      assert.is_nil(sieve:get("c"))
      assert.truthy(sieve:get("a") and sieve:get("b") and sieve:get("d"))
      assert.are.equal(1, lru:stats().evictions)
      assert.are.equal(1, sieve:stats().evictions)
      lru:close()
      sieve:close()
    end)

    it("bounds bytes and refuses an entry larger than max_bytes", function()
      local c = assert(po.cache.open { namespace = ns(), max_bytes = 100 })
      for i = 1, 10 do
        assert.is_true(c:set("k" .. i, ("x"):rep(30)))
      end
      assert.is_true(c:stats().bytes <= 100)
      local ok, err, code = c:set("big", ("y"):rep(200))
      assert.is_nil(ok)
      assert.are.equal("ETOOBIG", code)
      assert.truthy(err:find("max_bytes", 1, true))
      ok, err, code = c:set({ big = ("y"):rep(200) }, "v")
      assert.are.equal("ETOOBIG", code)
      c:close()
    end)
  end)

  describe("cached", function()
    it("calls fn only on a miss and does not store nil", function()
      local c = assert(po.cache.open { namespace = ns() })
      local calls = 0
      local ask = po.cache.cached(function(req)
        calls = calls + 1
        if req.fail then
          return nil, "server said no", "EHTTP"
        end
        return { text = "answer to " .. req.q }
      end, c, { ttl = 60 })
      assert.are.same({ text = "answer to x" }, ask { q = "x" })
      local v, info = ask { q = "x" }
      assert.are.same({ text = "answer to x" }, v)
      assert.are.equal("exact", info.hit)
      assert.are.equal(1, calls)
      local r, err, code = ask { q = "y", fail = true }
      assert.is_nil(r)
      assert.are.equal("server said no", err)
      assert.are.equal("EHTTP", code)
      ask { q = "y", fail = true }
      assert.are.equal(3, calls)
      local two = po.cache.cached(function(a, b) calls = calls + 1 return a .. b end, c)
      assert.are.equal("ab", two("a", "b"))
      assert.are.equal("ab", two("a", "b"))
      assert.are.equal("ba", two("b", "a"))
      assert.are.equal(5, calls)
      raises("po.cache.cached: fn must be a function", po.cache.cached, 1, c)
      raises("po.cache.cached: cache must be a cache", po.cache.cached, print, {})
      raises("cache:set: unknown option 'x'", po.cache.cached, print, c, { x = 1 })
      c:close()
    end)
  end)

  describe("semantic tier", function()
    local function ask(text, overrides)
      local r = { model = "gpt-x", temperature = 0, messages = { { role = "system", content = "Be brief." },
        { role = "user", content = text } } }
      for k, v in pairs(overrides or {}) do
        r[k] = v
      end
      return r
    end
    local question = "Write a Python function that returns the sum of a list of integers."

    it("answers a near-duplicate request, reporting its score, and counts it as a hit", function()
      local c = assert(po.cache.open { namespace = ns(), semantic = {} })
      assert.is_true(c:set(ask(question), { code = "def f(xs): return sum(xs)" }))
      local v, info = c:get(ask("write a python function  that returns the sum of a list of integers"))
      assert.are.same({ code = "def f(xs): return sum(xs)" }, v)
      assert.are.equal("semantic", info.hit)
      assert.is_true(info.score >= 0.95 and info.score <= 1.0001, tostring(info.score))
      assert.is_true(info.age >= 0)
      local s = c:stats()
      assert.are.equal(1, s.hits)
      assert.are.equal(1, s.semantic_hits)
      assert.are.equal(0, s.misses)
      assert.are.equal(1, s.hit_rate)
      c:close()
    end)

    it("never matches across parameters, or numbers, names and operands that differ", function()
      local c = assert(po.cache.open { namespace = ns(), semantic = { threshold = 0.5 } })
      c:set(ask(question), "sum")
      c:set(ask("Retry the request 3 times before giving up."), "three")
      c:set(ask("Return true when a > b."), "a>b")
      c:set(ask("Call parse_header on the input."), "header")
      assert.is_nil(c:get(ask(question, { model = "gpt-y" })))
      assert.is_nil(c:get(ask(question, { temperature = 0.7 })))
      assert.is_nil(c:get(ask("Retry the request 5 times before giving up.")))
      assert.is_nil(c:get(ask("Return true when b > a.")))
      assert.is_nil(c:get(ask("Call parse_footer on the input.")))
      assert.are.equal("three", (c:get(ask("retry the request 3 times before giving up"))))
      c:close()
    end)

    it("takes the threshold from the options", function()
      local strict = assert(po.cache.open { namespace = ns(), semantic = { threshold = 0.999 } })
      strict:set(ask(question), "sum")
      assert.is_nil(strict:get(ask("Write a Python function that returns the sum of a list of ints.")))
      strict:close()
      local off = assert(po.cache.open { namespace = ns(), semantic = false })
      off:set(ask(question), "sum")
      assert.is_nil(off:get(ask(question:lower())))
      off:close()
    end)

    it("works on string keys, and a hit refreshes recency", function()
      local c = assert(po.cache.open { namespace = ns(), max_entries = 2, semantic = {} })
      c:set("Explain the difference between TCP and UDP in two sentences.", "tcp-udp")
      c:set("Summarize the plot of Hamlet.", "hamlet")
      local v, info = c:get("explain the difference between tcp and udp in two sentences")
      assert.are.equal("tcp-udp", v)
      assert.are.equal("semantic", info.hit)
      c:set("A third prompt, unrelated to the others.", "third")
      assert.is_nil(c:get("Summarize the plot of Hamlet."))
      assert.are.equal("tcp-udp", (c:get("Explain the difference between TCP and UDP in two sentences.")))
      c:close()
    end)

    it("takes a Lua embedder, never compares its vectors with another embedder's", function()
      local name = ns()
      local calls = 0
      local function embed(text)
        calls = calls + 1
        local v = { 0, 0, 0, 0 }
        for w in text:lower():gmatch("%a+") do
          v[#w % 4 + 1] = v[#w % 4 + 1] + 1
        end
        return v
      end
      local mine = assert(po.cache.open { namespace = name, semantic = { embed = embed, embed_id = "toy-v1" } })
      mine:set(ask(question), "toy")
      assert.are.equal(1, calls)
      local v, info = mine:get(ask(question:upper()))
      assert.are.equal("toy", v)
      assert.are.equal("semantic", info.hit)
      local ngram = assert(po.cache.open { namespace = name, semantic = {} })
      assert.is_nil(ngram:get(ask(question:upper())))
      local failing = assert(po.cache.open { namespace = name, semantic = { embed = function() error("no model") end } })
      local r, err, code = failing:get(ask("anything"))
      assert.is_nil(r)
      assert.are.equal("EEMBED", code)
      assert.truthy(err:find("no model", 1, true))
      local wrong = assert(po.cache.open { namespace = name, semantic = { embed = function() return { 1, 2 } end,
        embed_id = "toy-v1" } })
      r, err, code = wrong:set(ask("other"), "x")
      assert.is_nil(r)
      assert.are.equal("EEMBED", code)
      raises("semantic.embed_id is only for a function embedder", po.cache.open,
        { namespace = name, semantic = { embed_id = "x" } })
      for _, c in ipairs { mine, ngram, failing, wrong } do
        c:close()
      end
    end)

    it("runs a function embedder once for a miss and the set that follows, and not for an exact hit", function()
      local calls, texts = 0, {}
      local function embed(text)
        calls = calls + 1
        texts[#texts + 1] = text
        return po.semantic.embed(text)
      end
      local c = assert(po.cache.open { namespace = ns(), semantic = { embed = embed, embed_id = "counted" } })
      assert.is_nil(c:get(ask(question)))
      assert.are.equal(1, calls)
      assert.is_true(c:set(ask(question), "sum"))
      assert.are.equal(1, calls) -- the miss's vector was stored
      local v, info = c:get(ask(question))
      assert.are.equal("sum", v)
      assert.are.equal("exact", info.hit)
      assert.are.equal(1, calls)
      v, info = c:get(ask(question:lower()))
      assert.are.equal("sum", v) -- the stored vector is the question's
      assert.are.equal("semantic", info.hit)
      assert.are.equal(2, calls)
      -- flows in coroutines interleave: lookups of several requests, then their sets
      local others = { "Sort a list of words by length.", "Parse an ISO 8601 date.", "Reverse a linked list." }
      for _, text in ipairs(others) do
        assert.is_nil(c:get(ask(text)))
      end
      for _, text in ipairs(others) do
        assert.is_true(c:set(ask(text), text))
      end
      assert.are.equal(5, calls)
      -- a set with no lookup before it embeds; so does one whose request changed since
      assert.is_true(c:set(ask("Count the vowels in a string."), "vowels"))
      assert.are.equal(6, calls)
      local r = ask("Merge two sorted arrays.")
      assert.is_nil(c:get(r))
      r.messages[2].content = "Merge two sorted arrays in place."
      assert.is_true(c:set(r, "merge"))
      assert.are.equal(8, calls)
      assert.are.equal("Be brief.\nMerge two sorted arrays in place.", texts[8])
      assert.are.equal("merge", (c:get(ask("merge two sorted arrays in place"))))
      c:close()
    end)

    it("embeds once per miss through po.cache.cached, and answers later calls from the cache", function()
      local embeds, calls = 0, 0
      local c = assert(po.cache.open { namespace = ns(), semantic = { embed = function(text)
        embeds = embeds + 1
        return po.semantic.embed(text)
      end, embed_id = "counted" } })
      local answer = po.cache.cached(function(req)
        calls = calls + 1
        return "answer " .. calls
      end, c)
      assert.are.equal("answer 1", answer(ask(question)))
      assert.are.equal(1, embeds)
      assert.are.equal("answer 1", (answer(ask(question))))
      assert.are.equal("answer 1", (answer(ask(question:upper()))))
      assert.are.equal(1, calls)
      assert.are.equal(2, embeds) -- the exact hit embeds nothing; the near duplicate once
      c:close()
    end)

    it("accepts exactly what po.semantic.match accepts, with the same score", function()
      local stored = "Optimize parse_header in src/http.c; keep the tests passing with -O2."
      local queries = { stored:upper(), (stored:gsub("%-O2", "-O3")), "optimize parse_header in src/http.c, keep tests passing with -O2",
        "Optimize parse_footer in src/http.c; keep the tests passing with -O2.", "Something else entirely." }
      for _, query in ipairs(queries) do
        local c = assert(po.cache.open { namespace = ns(), semantic = {} })
        c:set(stored, "answer")
        local accepted, score = po.semantic.match(query, stored)
        local v, info = c:get(query)
        assert.are.equal(accepted, v ~= nil, query)
        if v then
          assert.are.equal(score, info.score)
        end
        c:close()
      end
    end)

    it("does not answer from a deleted entry", function()
      local c = assert(po.cache.open { namespace = ns(), semantic = {} })
      c:set(ask(question), "sum")
      assert.is_true(c:delete(ask(question)))
      assert.is_nil(c:get(ask(question:lower())))
      c:close()
    end)

    it("keeps vectors in the store: another process's entries match after reopening", function()
      local dir = tempdir()
      local script = proc.tempfile(([[
        local c = assert(po.cache.open { path = %q, namespace = "sem", semantic = {} })
        assert(c:set({ model = "gpt-x", temperature = 0, messages = { { role = "system", content = "Be brief." },
          { role = "user", content = %q } } }, "from the child"))
      ]]):format(dir, question), ".lua")
      local c = assert(po.cache.open { path = dir, namespace = "sem", semantic = {} })
      assert.is_nil(c:get(ask(question:lower())))
      local status, _, err = proc.poengine(q(script))
      os.remove(script)
      assert.are.equal(0, status, err)
      local v, info = c:get(ask(question:lower()))
      assert.are.equal("from the child", v)
      assert.are.equal("semantic", info.hit)
      c:close()
      c = assert(po.cache.open { path = dir, namespace = "sem", semantic = {} })
      v, info = c:get(ask(question:upper()))
      assert.are.equal("from the child", v)
      assert.are.equal("semantic", info.hit)
      c:close()
      rmdir(dir)
    end)
  end)

  describe("the FFI fast path", function()
    -- The binary exports the C functions; a stock luajit loads poengine_core.so
    -- privately, and poengine._ffi finds them in it with ffi.load.
    it("finds the C functions inside poengine and in poengine_core.so under stock luajit", function()
      assert.are.equal("ffi.C", require("poengine._ffi").found)
      local moddir = os.getenv("POENGINE_MODULE_DIR") or "build"
      local code = [[
        require "poengine_core"
        local po = require "poengine"
        local c = assert(po.cache.open { namespace = "stock" })
        assert(c:set("k", "v"))
        local v, info = c:get("k")
        print(require("poengine._ffi").found, v, info.hit, c:get("absent"), c:stats().hits)
      ]]
      local preload = os.getenv("POENGINE_SANITIZER_PRELOAD") or ""
      if preload ~= "" then preload = "LD_PRELOAD=" .. q(preload) .. " " end
      local status, out, err = proc.sh(preload .. "LUA_CPATH=" .. q(moddir .. "/?.so;;") .. " luajit -e " .. q(code))
      assert.are.equal(0, status, err)
      assert.are.equal("ffi.load\tv\texact\tnil\t1\n", out)
    end)
  end)

  describe("the store", function()
    local dir
    before_each(function()
      dir = tempdir()
    end)
    after_each(function()
      rmdir(dir)
    end)

    it("persists across close and reopen, per namespace, in every sync mode", function()
      for _, sync in ipairs { "full", "batch", "none" } do
        local c = assert(po.cache.open { path = dir, namespace = sync, sync = sync })
        assert.is_true(c:set(request(), { answer = sync }))
        assert.is_true(c:set("plain", sync))
        c:close()
      end
      for _, sync in ipairs { "full", "batch", "none" } do
        local c = assert(po.cache.open { path = dir, namespace = sync })
        assert.are.same({ answer = sync }, (c:get(request())))
        assert.are.equal(sync, (c:get("plain")))
        assert.are.equal(2, c:stats().size)
        c:close()
      end
      local other = assert(po.cache.open { path = dir, namespace = "other" })
      assert.is_nil(other:get("plain"))
      other:close()
    end)

    it("refuses a store written by a newer schema and leaves it untouched", function()
      local c = assert(po.cache.open { path = dir })
      c:set("k", "v")
      c:close()
      local ffi = require "ffi"
      pcall(ffi.cdef, [[
        typedef struct MDB_env MDB_env; typedef struct MDB_txn MDB_txn;
        typedef struct MDB_val { size_t mv_size; void *mv_data; } MDB_val;
        int mdb_env_create(MDB_env **env); int mdb_env_set_maxdbs(MDB_env *env, unsigned dbs);
        int mdb_env_open(MDB_env *env, const char *path, unsigned flags, int mode);
        void mdb_env_close(MDB_env *env);
        int mdb_txn_begin(MDB_env *env, MDB_txn *parent, unsigned flags, MDB_txn **txn);
        int mdb_txn_commit(MDB_txn *txn);
        int mdb_dbi_open(MDB_txn *txn, const char *name, unsigned flags, unsigned *dbi);
        int mdb_put(MDB_txn *txn, unsigned dbi, MDB_val *key, MDB_val *data, unsigned flags);
      ]])
      local lmdb = ffi.load("lmdb")
      local env, txn, dbi = ffi.new("MDB_env *[1]"), ffi.new("MDB_txn *[1]"), ffi.new("unsigned[1]")
      assert(lmdb.mdb_env_create(env) == 0)
      lmdb.mdb_env_set_maxdbs(env[0], 32)
      assert(lmdb.mdb_env_open(env[0], dir, 0, tonumber("600", 8)) == 0)
      assert(lmdb.mdb_txn_begin(env[0], nil, 0, txn) == 0)
      assert(lmdb.mdb_dbi_open(txn[0], "meta", 0, dbi) == 0)
      local v = ffi.new("uint32_t[1]", 99)
      local key = ffi.new("MDB_val", 6, ffi.cast("void *", "schema"))
      local val = ffi.new("MDB_val", 4, v)
      assert(lmdb.mdb_put(txn[0], dbi[0], key, val, 0) == 0)
      assert(lmdb.mdb_txn_commit(txn[0]) == 0)
      lmdb.mdb_env_close(env[0])
      local before = read_file(dir .. "/data.mdb")
      local c2, err, code = po.cache.open { path = dir }
      assert.is_nil(c2)
      assert.are.equal("ESCHEMA", code)
      assert.truthy(err:find("schema version 99", 1, true), err)
      assert.truthy(err:find(dir, 1, true), err)
      assert.are.equal(before, read_file(dir .. "/data.mdb"))
    end)

    it("evicts by the policy in the store and keeps counts across processes", function()
      local c = assert(po.cache.open { path = dir, max_entries = 5 })
      for i = 1, 8 do
        c:set("k" .. i, "v" .. i)
      end
      assert.are.equal(5, c:stats().size)
      assert.are.equal(3, c:stats().evictions)
      c:close()
      local script = proc.tempfile(([[
        local c = assert(po.cache.open { path = %q, max_entries = 5 })
        local found = {}
        for i = 1, 8 do found[#found + 1] = c:get("k" .. i) and "1" or "0" end
        print(table.concat(found), c:stats().size)
      ]]):format(dir), ".lua")
      local status, out, err = proc.poengine(q(script))
      os.remove(script)
      assert.are.equal(0, status, err)
      assert.are.equal("00011111\t5\n", out)
    end)

    it("lets 4 processes set and get 10,000 keys each on one store; all read every key", function()
      local script = proc.tempfile([[
        local dir, id = arg[1], tonumber(arg[2])
        local c = assert(po.cache.open { path = dir, max_entries = 100000, sync = "none" })
        for i = 1, 10000 do
          assert(c:set(("p%d-%d"):format(id, i), ("v%d-%d"):format(id, i)))
        end
        local own = 0
        for i = 1, 10000 do
          if c:get(("p%d-%d"):format(id, i)) == ("v%d-%d"):format(id, i) then own = own + 1 end
        end
        io.open(dir .. "/done" .. id, "w"):close()
        -- A barrier, bounded: a process that died must fail the test with
        -- a message, not leave the others waiting for it forever.
        local deadline = po.now() + 120
        for p = 1, 4 do
          while not io.open(dir .. "/done" .. p) do
            if po.now() > deadline then
              print("process " .. p .. " never finished its writes")
              os.exit(3)
            end
            po.sleep(0.01)
          end
        end
        local all = 0
        for p = 1, 4 do
          for i = 1, 10000 do
            if c:get(("p%d-%d"):format(p, i)) == ("v%d-%d"):format(p, i) then all = all + 1 end
          end
        end
        print(own, all)
      ]], ".lua")
      local cmd = {}
      for p = 1, 4 do
        cmd[#cmd + 1] = ("%s %s %s %d > %s/out%d 2>&1 &"):format(q(proc.bin), q(script), q(dir), p, q(dir), p)
      end
      local status = proc.sh(table.concat(cmd, " ") .. " wait")
      os.remove(script)
      assert.are.equal(0, status)
      for p = 1, 4 do
        assert.are.equal("10000\t40000\n", read_file(dir .. "/out" .. p))
      end
      local c = assert(po.cache.open { path = dir })
      assert.are.equal(40000, c:stats().size)
      for p = 1, 4 do
        for i = 1, 10000, 97 do
          assert.are.equal(("v%d-%d"):format(p, i), (c:get(("p%d-%d"):format(p, i))))
        end
      end
      c:close()
    end)

    it("keeps every returned set of a writer SIGKILLed 20 times at random moments", function()
      local script = proc.tempfile([[
        local dir, run = arg[1], arg[2]
        local c = assert(po.cache.open { path = dir, max_entries = 1000000, sync = "full" })
        local i = 0
        while true do
          i = i + 1
          assert(c:set(run .. ":" .. i, ("value %s %d "):format(run, i) .. ("x"):rep(i % 300)))
          io.write(i, "\n")
          io.flush()
        end
      ]], ".lua")
      math.randomseed(os.time())
      local returned = {}
      for run = 1, 20 do
        -- The shell prints its pid and becomes the writer: nothing waits to report the kill.
        local p = assert(io.popen(("echo $$; exec %s %s %s %d"):format(q(proc.bin), q(script), q(dir), run)))
        local pid = assert(tonumber(p:read("*l")))
        local wait_for = math.random(1, 40)
        local last = 0
        for _ = 1, wait_for do
          local line = p:read("*l")
          if not line then break end
          last = tonumber(line)
        end
        po.sleep(math.random() * 0.01)
        os.execute("kill -9 " .. pid)
        for line in p:lines() do
          last = tonumber(line)
        end
        p:close()
        assert.is_true(last >= wait_for, "the writer stopped early in run " .. run)
        returned[run] = last
      end
      os.remove(script)
      local c = assert(po.cache.open { path = dir })
      local total = 0
      for run, last in ipairs(returned) do
        for i = 1, last do
          local v = c:get(run .. ":" .. i)
          assert.are.equal(("value %s %d "):format(run, i) .. ("x"):rep(i % 300), v)
        end
        total = total + last
      end
      assert.is_true(c:stats().size >= total)
      c:close()
    end)
  end)
end)
