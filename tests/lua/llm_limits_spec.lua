-- The router's limits under concurrency and cancellation, against the test
-- server: a budget kept by reservation (concurrent calls never spend past
-- the cap), replies without usage charged an estimate, and canceled calls
-- that give back their slot, their reservations and their transfer.
local po = require "poengine"
local limits = require "poengine.llm.limits"
local llm_server = require "tests.tools.llm_server"

local server = llm_server.for_spec(setup, teardown, before_each)

local function dep(model, extra)
  return server:deployment(model, "sk-limits-SECRET-7", extra)
end

local function router(deployments, extra)
  return server:router(deployments, { retries = 0, backoff = { base = 0.01, max = 1 } }, extra)
end

-- Waits until cond() holds, as the test observes it (not for a time the
-- machine may or may not keep to); the minute is only a guard against a hang.
local function once(cond, what)
  local deadline = po.now() + 60
  while not cond() do
    if po.now() > deadline then
      error("never happened: " .. what, 2)
    end
    po.sleep(0.005)
  end
end

local PROMPT = "one two three four" -- 18 bytes: an estimated 5 input tokens; 4 words in, 5 out
local ONE_CALL = 5 + 10 -- what a call with max_tokens = 10 reserves

-- Starts n calls at once and waits for them all; returns the replies and the codes of the failures.
local function storm(r, n, request)
  local futs = {}
  for i = 1, n do
    futs[i] = r:complete_async(request)
  end
  local ok, codes = 0, {}
  for _, f in ipairs(futs) do
    local res, _, code = f:wait()
    if res then
      ok = ok + 1
    else
      codes[code] = (codes[code] or 0) + 1
    end
  end
  return ok, codes
end

describe("router: the budget, by reservation", function()
  it("sends one of 20 concurrent calls against a budget worth one call", function()
    po.llm.prices.set("budgeted", { input = 1e6, output = 1e6 }) -- $1 a token
    local r = router({ dep("budgeted#delay=0.2") }, { budget = { usd = ONE_CALL, tokens = ONE_CALL } })
    local ok, codes = storm(r, 20, { prompt = PROMPT, max_tokens = 10 })
    po.llm.prices.set("budgeted", nil)
    assert.are.equal(1, ok)
    assert.are.same({ EBUDGET = 19 }, codes)
    assert.are.equal(1, server:stats().requests)
    assert.is_true(r:stats().cost <= ONE_CALL + ONE_CALL) -- the cap plus one estimate
    assert.are.equal(9, r.spent_tokens) -- the real cost replaced the reservation
    assert.are.equal(0, r.reservations)
  end)

  it("makes a call whose reservation does not fit wait for the calls in flight, then sends it if it fits", function()
    -- Room for two reservations and a half: two go, the third waits for them to settle (they cost 9
    -- each, not 15) and goes, the rest find no room.
    local said = {}
    local r = router({ dep("m#delay=0.2") }, { budget = { tokens = 2.5 * ONE_CALL },
      on_wait = function(text) said[#said + 1] = text end })
    local ok, codes = storm(r, 20, { prompt = PROMPT, max_tokens = 10 })
    assert.are.equal(3, ok)
    -- Each call that waited said so, before it waited.
    assert.is_true(#said >= 1)
    assert.are.equal("llm: waiting for 2 calls in flight to settle: the budget has no room for this one yet", said[1])
    assert.are.same({ EBUDGET = 17 }, codes)
    assert.are.equal(3, server:stats().requests)
    assert.are.equal(27, r.spent_tokens)
  end)

  it("reserves the deployment's max_tokens, and sends it, when the request sets none", function()
    local r = router({ dep("m", { max_tokens = 10 }) }, { budget = { tokens = ONE_CALL - 1 } })
    local res, err, code = r:complete { prompt = PROMPT }
    assert.is_nil(res)
    assert.are.equal("EBUDGET", code)
    assert.matches("up to %$0.000000 and 15 tokens", err)
    assert.are.equal(0, server:stats().requests)
    local r2 = router({ dep("m", { max_tokens = 10 }) }, { budget = { tokens = ONE_CALL } })
    assert(r2:complete { prompt = PROMPT })
    assert.are.equal(10, server:stats().last_body.max_tokens)
  end)

  for _, streamed in ipairs { false, true } do
    it("charges a reply without usage an estimate, and marks it (" .. (streamed and "streamed" or "plain") .. ")",
      function()
        po.llm.prices.set("uncounted", { input = 1e6, output = 1e6 })
        local r = router({ dep("uncounted#usage=none") }, { budget = { tokens = 36 } })
        local opts = streamed and { on_token = function() end } or nil
        local res = assert(r:complete({ prompt = PROMPT, max_tokens = 10 }, opts))
        po.llm.prices.set("uncounted", nil)
        assert.is_true(res.usage.estimated)
        assert.are.equal(5, res.usage.input) -- limits.estimate_input
        assert.are.equal(limits.estimate_text("echo: " .. PROMPT), res.usage.output)
        assert.are.equal(res.usage.input + res.usage.output, r.spent_tokens)
        assert.are.near(res.usage.input + res.usage.output, res.cost, 1e-9)
        assert(r:complete({ prompt = PROMPT, max_tokens = 10 }, opts))
        local _, _, code = r:complete({ prompt = PROMPT, max_tokens = 10 }, opts) -- 2 x 11 spent: 15 more do not fit in 36
        assert.are.equal("EBUDGET", code)
      end)
  end

  it("charges a stream cut short what arrived, and a call that failed before any text nothing", function()
    local r = router({ dep("m#fault=stall;stall=5", { idle_timeout = 0.3 }) }, { budget = { tokens = 1000 } })
    local got = {}
    local res, _, code = r:complete({ prompt = PROMPT, max_tokens = 10 }, { on_token = function(t) got[#got + 1] = t end })
    assert.is_nil(res)
    assert.are.equal("ETIMEDOUT", code)
    assert.are.same({ "echo: " }, got)
    assert.are.equal(5 + limits.estimate_text("echo: "), r.spent_tokens) -- the input, and the text that came
    local r2 = router({ dep("m#fault=status;status=500") }, { budget = { tokens = 1000 } })
    assert.is_nil((r2:complete { prompt = PROMPT, max_tokens = 10 }))
    assert.are.equal(0, r2.spent_tokens)
    assert.are.equal(0, r2.reservations)
  end)

  it("does not mark a reply whose server counted its tokens", function()
    local res = assert(router({ dep("m") }):complete { prompt = PROMPT })
    assert.is_nil(res.usage.estimated)
    assert.are.equal(4, res.usage.input)
  end)
end)

describe("router: cancel", function()
  local function idle(r)
    local d = r.deployments[1]
    return d.inflight == 0 and #d.waiters == 0 and r.reservations == 0
  end

  it("gives everything back after 1,000 calls canceled while queued for a slot and while in flight", function()
    local r = router({ dep("m#token_delay=0.05", { max_concurrency = 4, tpm = 1e9 }) },
      { budget = { tokens = 1e9 } })
    local tokens, after_cancel = 0, nil
    local on_token = function()
      tokens = tokens + 1
    end
    for _ = 1, 10 do
      local futs = {}
      for i = 1, 100 do
        futs[i] = r:complete_async({ prompt = "a b c d e f g h", max_tokens = 10 }, { on_token = on_token })
      end
      local before = tokens
      -- four in flight, streaming; 96 queued for a slot
      once(function() return r.deployments[1].inflight == 4 and tokens > before end, "four calls streaming")
      assert.are.equal(4, r.deployments[1].inflight)
      for i = 100, 1, -1 do
        assert.is_true(futs[i]:cancel())
        local _, _, code = futs[i]:wait()
        assert.are.equal("ECANCELED", code)
      end
      assert.are.equal(0, po.http.stats().running) -- out of libcurl at once
      assert.is_true(idle(r))
    end
    after_cancel = tokens
    assert.is_true(tokens > 0, "no call was in flight when canceled")
    po.sleep(0.3) -- the server would have streamed more by now
    assert.are.equal(after_cancel, tokens)
    assert.are.equal(0, po.http.stats().active)
    assert.is_true(r.spent_tokens > 0) -- what arrived before the cancels is charged
    local res = assert(r:complete { prompt = "still there", max_tokens = 10 })
    assert.are.equal("echo: still there", res.text)
    assert.is_true(idle(r))
  end)

  it("leaves nothing behind after wait(timeout) and cancel()", function()
    local r = router({ dep("m#delay=2", { max_concurrency = 1 }) })
    local f = r:complete_async { prompt = "slow" }
    local res, _, code = f:wait(0.1)
    assert.is_nil(res)
    assert.are.equal("ETIMEDOUT", code)
    assert.is_true(f:cancel())
    assert.are.equal(0, po.http.stats().running)
    assert.is_true(idle(r))
  end)

  it("leaves nothing behind after po.any and canceling the loser", function()
    local slow = router({ dep("slow#delay=2", { max_concurrency = 1 }) })
    local fast = router({ dep("fast") })
    local f1, f2 = slow:complete_async { prompt = "x" }, fast:complete_async { prompt = "x" }
    local i, res = po.any { f1, f2 }
    assert.are.equal(2, i)
    assert.are.equal("fast", res.model)
    assert.is_true(f1:cancel())
    assert.are.equal(0, po.http.stats().running)
    assert.is_true(idle(slow))
    server:reset() -- the freed slot takes a new call at once
    local again = po.async(function()
      return slow:complete { prompt = "y" }
    end)
    once(function() return server:stats().current == 1 end, "the new call reaching the server")
    assert.are.equal(1, server:stats().current)
    again:cancel()
  end)

  it("cleans up a router call made inside a task when the task is canceled", function()
    local r = router({ dep("m#delay=2", { max_concurrency = 1 }) })
    local task = po.async(function()
      local res = r:complete { prompt = "inner" }
      return res
    end)
    once(function() return r.deployments[1].inflight == 1 end, "the call in flight")
    assert.are.equal(1, r.deployments[1].inflight)
    task:cancel()
    assert.are.equal(0, po.http.stats().running)
    assert.is_true(idle(r))
  end)

  it("gives back a call waiting for the budget", function()
    local r = router({ dep("m#delay=0.3") }, { budget = { tokens = ONE_CALL } })
    local first = r:complete_async { prompt = PROMPT, max_tokens = 10 }
    local second = r:complete_async { prompt = PROMPT, max_tokens = 10 }
    once(function() return #r.budget_waiters == 1 end, "the second call waiting for the budget")
    assert.are.equal(1, #r.budget_waiters)
    second:cancel()
    assert(first:wait())
    assert.are.equal(1, server:stats().requests)
    assert.are.equal(0, r.reservations)
    assert.are.equal(9, r.spent_tokens)
  end)
end)
