-- c:prune, c:contents, po.cache.namespaces and po.cache.open{ create = false }
-- in a script (poengine cache's spec runs them through the binary): argument
-- errors name the argument, a prune's transactions are as many as its batch
-- size asks, this process's memory tier stops serving what was removed, and
-- nothing is created where there is no store.
local po = require "poengine"
local proc = require "tests.tools.proc"

describe("c:prune", function()
  local dir

  before_each(function()
    dir = proc.tempdir() .. "/store"
  end)

  after_each(function()
    proc.rmdir(dir:match("^(.*)/store$"))
  end)

  it("raises on a wrong option, naming it", function()
    local c = assert(po.cache.open { path = dir })
    local cases = {
      { { older_than = -1 }, "cache:prune: older_than must be a non-negative number of seconds, got -1" },
      { { older_than = "7d" }, "cache:prune: older_than must be a non-negative number of seconds, got string" },
      { { max_bytes = 1.5 }, "cache:prune: max_bytes must be a non-negative integer, got 1.5" },
      { { dry_run = 1 }, "cache:prune: dry_run must be a boolean, got number" },
      { { all_namespaces = "yes" }, "cache:prune: all_namespaces must be a boolean, got string" },
      { { batch = 0 }, "cache:prune: batch must be an integer from 1 to 1048576" },
      { { max_byte = 1 }, "cache:prune: unknown option 'max_byte'" },
      { "7d", "cache:prune: options must be a table, got string" },
    }
    for _, case in ipairs(cases) do
      local ok, err = pcall(c.prune, c, case[1])
      assert.is_false(ok)
      assert.are.equal(case[2], err)
    end
    c:close()
    assert.has_error(function() c:prune() end, "cache:prune: the cache is closed")
    local mem = assert(po.cache.open())
    assert.has_error(function() mem:prune() end, "cache:prune: the cache has no store (it was opened without a path)")
    assert.has_error(function() mem:contents() end,
      "cache:contents: the cache has no store (it was opened without a path)")
    mem:close()
  end)

  it("removes in transactions of at most `batch` entries; the memory tier stops serving them", function()
    local c = assert(po.cache.open { path = dir, ttl = 0 })
    for i = 1, 50 do
      assert(c:set("k" .. i, "v" .. i))
    end
    assert.are.equal("v1", (c:get("k1"))) -- now in the memory tier too
    local dry = assert(c:prune { max_bytes = 0, batch = 7, dry_run = true })
    assert.are.same({ 50, 0, 0 }, { dry.removed, dry.remaining, dry.transactions })
    assert.are.equal("v1", (c:get("k1")))
    local r = assert(c:prune { max_bytes = 0, batch = 7 })
    assert.are.same({ removed = 50, removed_bytes = dry.removed_bytes, expired = 0, remaining = 0,
      remaining_bytes = 0, transactions = 8 }, r)
    assert.is_nil(c:get("k1"))
    assert.are.same({ 0, 0 }, { c:contents().entries, c:stats().size })
    c:close()
  end)

  it("reports what the namespace holds, and prunes one namespace or the whole store", function()
    local a = assert(po.cache.open { path = dir, namespace = "a", ttl = 0 })
    local b = assert(po.cache.open { path = dir, namespace = "b", ttl = 0 })
    assert(a:set("k", "12345"))
    assert(b:set("k", "1"))
    assert(b:set("x", "y", { ttl = 1e-3 }))
    local t0 = po.time()
    po.sleep(0.01)
    local info = assert(b:contents())
    assert.are.same({ 2, 4, 1, 0 }, { info.entries, info.bytes, info.expired, info.vectors })
    assert.is_true(info.oldest <= info.newest and info.newest <= t0)
    assert.is_true(info.map_size > 0 and info.map_used > 0)
    local names = assert(po.cache.namespaces(dir))
    table.sort(names)
    assert.are.same({ "a", "b" }, names)
    -- b alone: its expired entry
    local r = assert(b:prune())
    assert.are.same({ 1, 1, 1 }, { r.removed, r.expired, r.remaining })
    -- the store: 6 bytes of a + 2 of b, bounded to 2: a's older entry goes
    r = assert(b:prune { max_bytes = 2, all_namespaces = true })
    assert.are.same({ 1, 1, 2 }, { r.removed, r.remaining, r.remaining_bytes })
    assert.is_nil(a:get("k"))
    assert.are.equal("1", (b:get("k")))
    a:close()
    b:close()
  end)

  it("opens only an existing store with create = false, creating nothing", function()
    local c, err, code = po.cache.open { path = dir, create = false }
    assert.is_nil(c)
    assert.are.equal("po.cache.open: no cache store in " .. dir .. ": No such file or directory", err)
    assert.are.equal("ENOENT", code)
    local names, nerr, ncode = po.cache.namespaces(dir)
    assert.is_nil(names)
    assert.are.same({ "po.cache.namespaces: no cache store in " .. dir .. ": No such file or directory", "ENOENT" },
      { nerr, ncode })
    assert.is_nil(io.open(dir))
    assert.has_error(function() po.cache.open { path = dir, create = 0 } end,
      "po.cache.open: create must be a boolean, got number")
    assert.has_error(function() po.cache.open { create = false } end, "po.cache.open: create = false needs a path")
    assert.has_error(function() po.cache.namespaces(7) end, "po.cache.namespaces: path must be a string, got number")
    local w = assert(po.cache.open { path = dir })
    w:close()
    c = assert(po.cache.open { path = dir, create = false })
    c:close()
  end)
end)
