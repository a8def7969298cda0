-- The worker pool at its edges: errors that are not strings, results that
-- cannot come back, nil upvalues, a worker's function cache filling up,
-- modules that are not tables, and bytes that are not a packed job.
local po = require "poengine"

describe("po.pool at its edges", function()
  it("reports an error object that is not a string by its type", function()
    local v, err, code = po.pool.submit(function() error({ reason = "table" }) end):wait()
    assert.is_nil(v)
    assert.are.equal("(error object is a table value)", err)
    assert.are.equal("ERUNTIME", code)
  end)

  it("fails a job whose results cannot be copied back, with EINVAL", function()
    local v, err, code = po.pool.submit(function() return 1, coroutine.create(print) end):wait()
    assert.is_nil(v)
    assert.are.equal("po.pool.submit: cannot copy a thread at result[2]", err)
    assert.are.equal("EINVAL", code)
  end)

  it("carries nil upvalues as nil", function()
    local none
    local t = { n = 1 }
    local is_nil, n = po.pool.submit(function() return none == nil, t.n end):wait()
    assert.is_true(is_nil)
    assert.are.equal(1, n)
  end)

  it("keeps running new functions once a worker's cache is full", function()
    po.pool.configure { workers = 1 }
    local futures = {}
    for i = 1, 300 do -- more distinct functions than one worker caches
      futures[i] = po.pool.submit(assert(loadstring("return " .. i .. ", ...")), -i)
    end
    for i = 1, 300 do
      local a, b = futures[i]:wait()
      assert.are.equal(i, a)
      assert.are.equal(-i, b)
    end
    po.pool.configure { workers = po.pool.cpu_count() }
  end)

  it("names a module that is not a table", function()
    local v, err, code = po.pool.submit({ module = "poengine.dashboard.judge_css", fn = "x" }):wait()
    assert.is_nil(v)
    assert.matches("po.pool: module 'poengine.dashboard.judge_css' is not a table", err, 1, true)
    assert.are.equal("ERUNTIME", code)
    assert.has_error(function() po.pool.submit({ module = "string" }) end,
      "po.pool.submit: fn as a table needs module and fn, both strings")
  end)

  it("times a job with submit_timed", function()
    local seconds, doubled, extra = po.pool.submit_timed(function(x) return x * 2, "more" end, 21):wait()
    assert.is_true(type(seconds) == "number" and seconds >= 0)
    assert.are.equal(42, doubled)
    assert.are.equal("more", extra)
  end)

  it("keeps work that would wait for the pool out of a worker", function()
    local ok, err = po.pool.submit(function()
      return pcall(require("poengine").files.read, { "/dev/null" })
    end):wait()
    assert.is_false(ok)
    assert.matches("po.files.read: not available inside a pool worker", err, 1, true)
  end)

  it("lets a batch go once its last job in flight is abandoned", function()
    po.pool.configure { workers = 1 }
    local release = os.tmpname()
    os.remove(release)
    local b = po.pool.batch(function() end)
    b:submit(1, function(p)
      local limit = os.time() + 30
      while not io.open(p) and os.time() < limit do end
    end, release)
    b:flush()
    while not b:started(1) do
      po.sleep(0.001)
    end
    assert.is_true(b:abandon(1))
    assert.are.equal(0, b:in_flight())
    io.open(release, "w"):close()
    os.remove(release)
    po.pool.configure { workers = po.pool.cpu_count() }
  end)

  it("names where a value that cannot be copied sits", function()
    local function raises(value, where)
      assert.has_error(function() po.pool.encode(value) end, "po.pool.encode: cannot copy a function at " .. where)
    end
    raises({ [true] = { print } }, "value[1][true][1]")
    raises({ [false] = print }, "value[1][false]")
    raises({ [1.5] = print }, "value[1][1.5]")
    raises({ ["a\"b\\c\1"] = print }, 'value[1]["a\\"b\\\\c\\u0001"]')
    raises({ ["9lives"] = print }, 'value[1]["9lives"]')
    raises({ [string.rep("k", 45)] = print }, "value[1]." .. string.rep("k", 45))
    raises({ ["-" .. string.rep("k", 44)] = print }, 'value[1]["-' .. string.rep("k", 39) .. '..."]')
    raises({ [string.rep("k", 65)] = print }, 'value[1]["' .. string.rep("k", 40) .. '..."]')
    local deep = {}
    local t = deep
    for _ = 1, 30 do
      t.next = {}
      t = t.next
    end
    t.f = print
    raises(deep, "value[1]" .. string.rep(".next", 6) .. "...(19 more)..." .. string.rep(".next", 5) .. ".f")
  end)

  it("refuses damaged copied values", function()
    local one = po.pool.encode(true):sub(1, 4) -- the count of values: one
    assert.are.equal(true, po.pool.decode(one .. "t"))
    for _, damaged in ipairs {
      one .. "x", -- no such tag
      one .. "s\100\0\0\0\0\0\0\0ab", -- a string longer than what is left
      one .. "d\0\0", -- a number cut short
      one .. "{", -- a table without its end
      one .. "{s", -- a key cut short
      one .. ("{"):rep(300), -- nested deeper than anything copied
    } do
      assert.has_error(function() po.pool.decode(damaged) end, "poengine: corrupt copied value")
    end
  end)

  it("refuses bytes that are not a packed job, and code that does not load", function()
    local packed = po.pool.pack(function(x) return x end, 5)
    local not_a_job = "po.pool.unpack: s is not a job from po.pool.pack"
    assert.has_error(function() po.pool.unpack("") end, not_a_job)
    assert.has_error(function() po.pool.unpack("POJ1") end, not_a_job)
    assert.has_error(function() po.pool.unpack("POJ1\9" .. packed:sub(6)) end, not_a_job) -- unknown kind
    assert.has_error(function() po.pool.unpack(packed .. "x") end, not_a_job)
    assert.has_error(function() po.pool.unpack(packed:sub(1, 12)) end, not_a_job) -- inside a length
    -- the code block's first byte (after "POJ1", the kind and its length)
    local broken = packed:sub(1, 13) .. "x" .. packed:sub(15)
    local ok, err = pcall(po.pool.unpack, broken)
    assert.is_false(ok)
    assert.matches("^pool job:", err)
  end)
end)
