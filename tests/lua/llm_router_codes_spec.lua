-- The router's retry policy by error code, against the test server through
-- the specs' own adapter (tests/tools/spec_adapter.lua, which maps 402 to
-- EQUOTA, 429 to ERATELIMIT, 529 to EOVERLOADED, 400 to EINVALID, 401 to
-- EAUTH and refuses `seed`): what is retried, what moves on at once, what
-- cools a deployment down, the "all are cooling down" message, and a
-- cached answer's reasoning and json.
local po = require "poengine"
local llm_server = require "tests.tools.llm_server"

local server

setup(function()
  server = llm_server.start()
  po.llm.adapters.spec = require "tests.tools.spec_adapter"
end)

teardown(function()
  po.llm.adapters.spec = nil
  server:stop()
end)

before_each(function()
  server:reset()
end)

local function dep(model, extra)
  return server:deployment(model, "sk-codes-SECRET-2718", extra)
end

local function spec_dep(model)
  return dep(model, { provider = "spec" })
end

local function router(deployments, extra)
  return server:router(deployments, { retries = 2, backoff = { base = 0.01, max = 3 } }, extra)
end

local function count(model)
  return server:stats().by_model[model] or 0
end

describe("router: the retry policy by code", function()
  for _, case in ipairs { { "ERATELIMIT", "fault=429;retry_after=0;times=1" },
    { "EOVERLOADED", "fault=status;status=529;times=1" } } do
    it("retries " .. case[1] .. " on the same deployment", function()
      local model = "m#" .. case[2]
      local res = assert(router({ spec_dep(model) }):complete { prompt = "hi" })
      assert.are.equal("echo: hi", res.text)
      assert.are.equal(2, count(model))
      local always = "n#" .. case[2]:gsub(";times=1", "")
      local none, err, code = router({ spec_dep(always) }, { retries = 1 }):complete { prompt = "hi" }
      assert.is_nil(none)
      assert.are.equal(case[1], code, err)
      assert.are.equal(2, count(always))
    end)
  end

  for _, case in ipairs { { "EINVALID", 400 }, { "EAUTH", 401 }, { "EQUOTA", 402 } } do
    it("does not retry " .. case[1] .. ": it moves on to the next deployment", function()
      local bad = "a#fault=status;status=" .. case[2]
      local res = assert(router({ spec_dep(bad), dep("b") }):complete { prompt = "hi" })
      assert.are.equal("b", res.model)
      assert.are.equal(1, count(bad))
      local none, err, code = router({ spec_dep(bad) }):complete { prompt = "hi" }
      assert.is_nil(none)
      assert.are.equal(case[1], code)
      assert.matches("HTTP " .. case[2], err)
      assert.are.equal(2, count(bad))
    end)
  end

  it("does not send a request the adapter refuses: EUNSUPPORTED moves on to the next deployment", function()
    local r = router({ spec_dep("a"), dep("b") }, { cooldown = { fails = 1, time = 60 } })
    local res = assert(r:complete { prompt = "hi", seed = 1 })
    assert.are.equal("b", res.model)
    assert.are.equal(0, count("a"))
    -- The request's fault, not the deployment's: it still answers the next call.
    assert.are.equal("a", assert(r:complete { prompt = "hi" }).model)
    local none, err, code = router({ spec_dep("a") }):complete { prompt = "hi", seed = 1 }
    assert.is_nil(none)
    assert.are.equal("EUNSUPPORTED", code)
    assert.matches("seed is not supported", err)
  end)

  it("cools a deployment out of quota down at once; an invalid request does not", function()
    local broke, strict = "a#fault=status;status=402", "c#fault=status;status=400"
    local r = router({ spec_dep(broke), spec_dep(strict), dep("b") }, { cooldown = { fails = 3, time = 60 } })
    for _ = 1, 3 do
      assert.are.equal("b", assert(r:complete { prompt = "hi" }).model)
    end
    assert.are.equal(1, count(broke))
    assert.are.equal(3, count(strict))
  end)
end)

describe("router: all deployments cooling down", function()
  it("names each deployment, its last error and when it comes back", function()
    local r = router({ spec_dep("a#fault=429;retry_after=50"), spec_dep("b#fault=status;status=503") },
      { retries = 0, cooldown = { fails = 1, time = 30 } })
    local _, err1, code1 = r:complete { prompt = "hi" }
    assert.are.equal("EHTTP", code1)
    assert.matches("HTTP 503", err1)
    local none, err, code = r:complete { prompt = "hi" }
    assert.is_nil(none)
    assert.are.equal("ECOOLDOWN", code)
    local a, b = err:match("^no deployment is available: all are cooling down: (.-); (.*)$")
    assert.matches("^spec a#fault=429;retry_after=50 back in %d+%.%d s %(last error: .*HTTP 429: rate limit reached, "
      .. "slow down %(ERATELIMIT%)%)$", a)
    assert.matches("^spec b#fault=status;status=503 back in %d+%.%d s %(last error: .*HTTP 503: .*%(EHTTP%)%)$", b)
    local back_a, back_b = tonumber(a:match("back in ([%d.]+) s")), tonumber(b:match("back in ([%d.]+) s"))
    assert.is_true(back_a > 30 and back_a <= 50, a)
    assert.is_true(back_b > 0 and back_b <= 30, b)
    assert.not_matches("SECRET", err)
    assert.are.equal(1, count("a#fault=429;retry_after=50"))
  end)
end)

describe("router: a cached answer", function()
  it("gives its reasoning to on_reasoning before its text, and its json again", function()
    local cache = assert(po.cache.open {})
    cache:clear()
    local r = router({ spec_dep('m#text=think:why {"n":1}') }, { cache = cache })
    local req = { prompt = "hi", response_format = { type = "json" } }
    local function call()
      local seen = {}
      local res = assert(r:complete(req, { on_token = function(t) seen[#seen + 1] = "text:" .. t end,
        on_reasoning = function(t) seen[#seen + 1] = "reasoning:" .. t end }))
      return res, seen
    end
    local first, seen1 = call()
    local second, seen2 = call()
    cache:close()
    assert.are.same({ "reasoning:why ", 'text:{"n":1}' }, seen1)
    assert.are.same(seen1, seen2)
    assert.is_false(first.cached)
    assert.are.equal("exact", second.cached)
    assert.are.same({ n = 1 }, first.json)
    assert.are.same({ n = 1 }, second.json)
    assert.are.equal("why ", second.reasoning)
    assert.are.equal(1, server:stats().requests)
  end)
end)
