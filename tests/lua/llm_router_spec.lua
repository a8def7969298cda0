-- The router against the test server: the fault matrix (each fault leads to
-- its retry, fallback or error), Retry-After, the circuit breaker, limits,
-- the budget, strategies, the cache and the metrics collector.
local po = require "poengine"
local llm_server = require "tests.tools.llm_server"

local server = llm_server.for_spec(setup, teardown, before_each)

local function dep(model, extra)
  return server:deployment(model, "sk-router-SECRET-42", extra)
end

local function router(deployments, extra)
  return server:router(deployments, { retries = 2, backoff = { base = 0.01, max = 3 } }, extra)
end

local function count(model)
  return server:stats().by_model[model] or 0
end

describe("router: the fault matrix", function()
  local retried = {
    "fault=status;status=500;times=1", "fault=status;status=502;times=1", "fault=status;status=503;times=1",
    "fault=malformed;times=1", "fault=truncated;times=1", "fault=reset;times=1", "fault=wrong_type;times=1",
  }
  for _, fault in ipairs(retried) do
    it(fault:match("fault=([^;]+;?[^;]*)") .. " is retried on the same deployment, which then answers", function()
      local model = "m#" .. fault
      local res, err = router({ dep(model) }):complete { prompt = "hi" }
      assert.is_table(res, err)
      assert.are.equal("echo: hi", res.text)
      assert.are.equal(2, count(model))
    end)
  end

  it("a stream that stalls before any text times out and is retried", function()
    local model = "m#fault=stall;stall=5;times=1"
    local tokens = {}
    -- Anthropic's stream sends message_start and content_block_start, then stalls.
    local r = router({ dep(model, { idle_timeout = 0.3, provider = "anthropic", base_url = server.url }) })
    local res = assert(r:complete({ prompt = "one two" }, { on_token = function(t) tokens[#tokens + 1] = t end }))
    assert.are.equal("echo: one two", res.text)
    assert.are.equal("echo: one two", table.concat(tokens)) -- once: nothing came from the stalled attempt
    assert.are.equal(2, count(model))
  end)

  it("a plain reply that stalls after its headers times out with idle_timeout and falls back", function()
    local stalled = "a#fault=stall;stall=10"
    local r = router({ dep(stalled, { idle_timeout = 0.3 }), dep("b") }, { retries = 0 })
    local res = assert(r:complete { prompt = "hi" })
    assert.are.equal("b", res.model)
    assert.are.equal(1, count(stalled))
    assert.are.equal(1, count("b"))
  end)

  it("a stream that stalls after text went to on_token fails: a retry would send the text twice", function()
    local model = "m#fault=stall;stall=5;times=1"
    local tokens = {}
    -- OpenAI's stream sends the role chunk and the first piece of text, then stalls.
    local r = router({ dep(model, { idle_timeout = 0.3 }) })
    local res, err, code = r:complete({ prompt = "one two" }, { on_token = function(t) tokens[#tokens + 1] = t end })
    assert.is_nil(res)
    assert.are.equal("ETIMEDOUT", code)
    assert.matches("idle_timeout", err)
    assert.are.same({ "echo: " }, tokens)
    assert.are.equal(1, count(model))
  end)

  it("honours Retry-After in seconds", function()
    local model = "m#fault=429;retry_after=1;times=1"
    local t0 = po.now()
    assert(router({ dep(model) }):complete { prompt = "hi" })
    assert.is_true(po.now() - t0 >= 1, "did not wait for Retry-After")
    assert.are.equal(2, count(model))
  end)

  it("honours Retry-After as an HTTP date", function()
    local model = "m#fault=429;retry_after_date=2;times=1"
    local t0 = po.now()
    assert(router({ dep(model) }):complete { prompt = "hi" })
    assert.is_true(po.now() - t0 >= 0.9, "did not wait for the Retry-After date") -- the date has 1 s resolution
    assert.are.equal(2, count(model))
  end)

  it("falls back when Retry-After is longer than backoff.max, rather than waiting", function()
    local slow, other = "a#fault=429;retry_after=60", "b"
    local t0 = po.now()
    local res = assert(router({ dep(slow), dep(other) }):complete { prompt = "hi" })
    assert.are.equal("b", res.model)
    assert.is_true(po.now() - t0 < 30)
    assert.are.equal(1, count(slow))
  end)

  it("falls back to the next deployment when retries run out", function()
    local bad, good = "a#fault=status;status=500", "b"
    local res = assert(router({ dep(bad), dep(good) }, { retries = 1 }):complete { prompt = "hi" })
    assert.are.equal("b", res.model)
    assert.are.equal(2, count(bad))
  end)

  -- What the vendors' error statuses mean: a request the server refuses as
  -- invalid (400, or 404 for a model it does not have), or credentials it
  -- refuses (401, 403).
  local refused = { [400] = "EINVALID", [401] = "EAUTH", [403] = "EAUTH", [404] = "EINVALID" }
  for _, status in ipairs { 400, 401, 403, 404 } do
    it("does not retry a " .. status .. ": it moves on to the next deployment", function()
      local bad = "a#fault=status;status=" .. status
      local res = assert(router({ dep(bad), dep("b") }):complete { prompt = "hi" })
      assert.are.equal("b", res.model)
      assert.are.equal(1, count(bad))
      local r1, err, code = router({ dep(bad) }):complete { prompt = "hi" }
      assert.is_nil(r1)
      assert.are.equal(refused[status], code)
      assert.matches("HTTP " .. status, err)
      assert.are.equal(2, count(bad))
    end)
  end

  it("falls back at once on a context-window error", function()
    local small = "a#fault=context"
    local res = assert(router({ dep(small), dep("big") }):complete { prompt = "hi" })
    assert.are.equal("big", res.model)
    assert.are.equal(1, count(small))
  end)

  it("falls back at once on a reply past the deployment's max_body", function()
    -- The echo reply is a few hundred bytes: past a 64-byte limit.
    local capped = "capped"
    local res = assert(router({ dep(capped, { max_body = 64 }), dep("roomy") }):complete { prompt = "hi" })
    assert.are.equal("roomy", res.model)
    assert.are.equal(1, count(capped))
  end)

  it("falls back at once when nothing arrives before ttft_timeout", function()
    local stuck = "a#delay=3"
    local res = assert(router({ dep(stuck), dep("b") }, { ttft_timeout = 0.3 }):complete { prompt = "hi" })
    assert.are.equal("b", res.model)
    assert.are.equal(1, count(stuck))
  end)

  it("returns the last error when every deployment fails, and counts it", function()
    local r = router({ dep("a#fault=status;status=503"), dep("b#fault=reset") }, { retries = 1 })
    local res, err, code = r:complete { prompt = "hi" }
    assert.is_nil(res)
    assert.are.equal("ECONN", code)
    assert.not_matches("SECRET", err)
    local st = r:stats()
    assert.are.equal(1, st.total_calls)
    assert.are.equal(1, st.total_errors)
    assert.are.equal(0, st.success_rate)
    assert.are.equal(4, st.by_provider.openai.calls)
    assert.are.equal(4, st.by_provider.openai.errors)
  end)

  it("keeps the key out of every error", function()
    for _, fault in ipairs { "fault=status;status=401", "fault=malformed", "fault=context", "fault=reset" } do
      local _, err = router({ dep("m#" .. fault) }, { retries = 0 }):complete { prompt = "hi" }
      assert.not_matches("SECRET", err)
    end
  end)
end)

describe("router: the circuit breaker", function()
  it("opens after `fails` failures within `window`, and closes after `time`", function()
    local bad = "a#fault=status;status=500"
    local r = router({ dep(bad), dep("b") }, { retries = 0, cooldown = { fails = 2, window = 10, time = 0.5 } })
    for _ = 1, 2 do
      assert.are.equal("b", assert(r:complete { prompt = "hi" }).model)
    end
    assert.are.equal(2, count(bad))
    assert.are.equal("b", assert(r:complete { prompt = "hi" }).model)
    assert.are.equal(2, count(bad)) -- open: not tried
    po.sleep(0.6)
    assert.are.equal("b", assert(r:complete { prompt = "hi" }).model)
    assert.are.equal(3, count(bad)) -- closed again: tried
  end)

  it("fails fast with ECOOLDOWN when every deployment is cooling down", function()
    local r = router({ dep("a#fault=status;status=500") }, { retries = 0, cooldown = { fails = 1, time = 5 } })
    local _, _, code = r:complete { prompt = "hi" }
    assert.are.equal("EHTTP", code)
    local _, err2, code2 = r:complete { prompt = "hi" }
    assert.are.equal("ECOOLDOWN", code2)
    assert.matches("cooling down", err2)
    assert.are.equal(1, count("a#fault=status;status=500"))
  end)
end)

describe("router: limits", function()
  it("never lets more than max_concurrency requests reach a deployment, and drops none", function()
    local r = router({ dep("m#delay=0.2", { max_concurrency = 3 }) })
    local futs = {}
    for i = 1, 12 do
      futs[i] = r:complete_async { prompt = "call " .. i }
    end
    local all = assert(po.all(futs))
    for i = 1, 12 do
      assert.are.equal("echo: call " .. i, all[i].text)
    end
    local st = server:stats()
    assert.are.equal(3, st.max_concurrent)
    assert.are.equal(12, st.requests)
  end)

  it("makes calls over rpm wait for the window, and sends them all", function()
    local r = router({ dep("m", { rpm = 2 }) })
    r._limit_window = 0.5 -- the minute, shortened for the test
    local t0 = po.now()
    for _ = 1, 4 do
      assert(r:complete { prompt = "hi" })
    end
    assert.is_true(po.now() - t0 >= 0.5, "the third call did not wait")
    assert.are.equal(4, count("m"))
  end)

  it("says what a call waits for through on_wait: the rpm window, a slot, the budget", function()
    local said = {}
    local r = router({ dep("m", { rpm = 1 }) }, { on_wait = function(text) said[#said + 1] = text end })
    r._limit_window = 0.3
    assert(r:complete { prompt = "hi" })
    assert.are.same({}, said) -- the first call did not wait
    assert(r:complete { prompt = "hi" })
    assert.are.equal(1, #said)
    assert.matches("^llm: waiting [%d.]+ s for the rpm window of openai$", said[1])

    said = {}
    local slots = router({ dep("m#delay=0.2", { max_concurrency = 1 }) },
      { on_wait = function(text) said[#said + 1] = text end })
    local tasks = {}
    for i = 1, 2 do
      tasks[i] = po.async(function() return slots:complete { prompt = "hi " .. i } end)
    end
    for i = 1, 2 do
      assert.is_table((tasks[i]:wait()))
    end
    assert.are.same({ "llm: waiting for a free slot of openai (max_concurrency 1)" }, said)
  end)

  it("makes calls over tpm wait for the window", function()
    local r = router({ dep("m", { tpm = 6 }) }) -- each call spends 1 + 3 tokens
    r._limit_window = 0.5
    local t0 = po.now()
    for _ = 1, 3 do
      assert(r:complete { prompt = "hi" })
    end
    assert.is_true(po.now() - t0 >= 0.5, "no call waited for tokens")
    assert.are.equal(3, count("m"))
  end)
end)

describe("router: budget", function()
  it("stops calls once the tokens are spent, sending nothing more", function()
    local r = router({ dep("m") }, { budget = { tokens = 10 } })
    local ok = 0
    for _ = 1, 5 do
      -- 2 + 3 tokens each, and each reserves 2 (estimated input) + 3 (max_tokens)
      local res, err, code = r:complete { prompt = "one two", max_tokens = 3 }
      if res then
        ok = ok + 1
      else
        assert.are.equal("EBUDGET", code)
        assert.matches("budget", err)
      end
    end
    assert.are.equal(2, ok)
    assert.are.equal(2, count("m"))
  end)

  it("stops calls once the dollars are spent", function()
    po.llm.prices.set("pricey", { input = 100000, output = 100000 }) -- $0.1 a token
    local r = router({ dep("pricey", { max_tokens = 3 }) }, { budget = { usd = 1 } })
    assert(r:complete { prompt = "one two" }) -- 5 tokens: $0.5
    assert(r:complete { prompt = "one two" }) -- $1 spent: the cap
    local _, _, code = r:complete { prompt = "one two" }
    assert.are.equal("EBUDGET", code)
    assert.are.equal(2, count("pricey"))
    assert.are.near(1, r:stats().cost, 1e-9)
    po.llm.prices.set("pricey", nil)
  end)
end)

describe("router: strategies", function()
  it("ordered tries the deployments in order", function()
    local r = router({ dep("a"), dep("b") })
    for _ = 1, 3 do
      assert.are.equal("a", assert(r:complete { prompt = "hi" }).model)
    end
  end)

  it("weighted sends in proportion to weight", function()
    local r = router({ dep("a", { weight = 1000 }), dep("b", { weight = 1 }) }, { strategy = "weighted" })
    for _ = 1, 20 do
      assert(r:complete { prompt = "hi" })
    end
    assert.is_true(count("a") >= 18, "weights ignored: a got " .. count("a"))
  end)

  it("latency prefers the faster deployment once both are measured", function()
    local r = router({ dep("slow#delay=0.3"), dep("fast") }, { strategy = "latency" })
    for _ = 1, 5 do
      assert(r:complete { prompt = "hi" })
    end
    assert.are.equal(1, count("slow#delay=0.3"))
    assert.are.equal(4, count("fast"))
  end)

  it("least-busy spreads concurrent calls", function()
    local r = router({ dep("a#delay=0.3"), dep("b#delay=0.3") }, { strategy = "least-busy" })
    local futs = {}
    for i = 1, 6 do
      futs[i] = r:complete_async { prompt = "hi" }
    end
    assert(po.all(futs))
    assert.are.equal(3, count("a#delay=0.3"))
    assert.are.equal(3, count("b#delay=0.3"))
  end)
end)

describe("router: streaming", function()
  for _, kind in ipairs { "openai", "anthropic", "ollama" } do
    it("streams " .. kind .. " through on_token", function()
      local d = dep("m", { provider = kind, base_url = kind == "openai" and server.url .. "/v1" or server.url })
      local tokens = {}
      local res = assert(router({ d }):complete({ prompt = "a b c" }, { on_token = function(t) tokens[#tokens + 1] = t end }))
      assert.are.equal("echo: a b c", table.concat(tokens))
      assert.are.equal(4, #tokens)
      assert.are.equal(res.text, table.concat(tokens))
      assert.are.equal(kind, res.provider)
    end)
  end
end)

describe("router: cache", function()
  local cache
  before_each(function()
    cache = assert(po.cache.open {})
    cache:clear()
  end)
  after_each(function()
    cache:close()
  end)

  it("answers a second identical call from the cache: no request reaches the server", function()
    local r = router({ dep("m") }, { cache = cache })
    local first = assert(r:complete { model = "x", prompt = "hello", temperature = 0 })
    assert.is_false(first.cached)
    local second = assert(r:complete { temperature = 0, prompt = "hello", model = "x" })
    assert.are.equal("exact", second.cached)
    assert.are.equal(first.text, second.text)
    assert.are.same(first.usage, second.usage)
    assert.are.equal(0, second.cost)
    assert.are.equal(1, server:stats().requests)
    local st = r:stats()
    assert.are.same({ hits = 1, misses = 1, hit_rate = 0.5, api_call_reduction = 50 }, st.cache)
    assert.are.equal(first.usage.input + first.usage.output, st.tokens_saved)
    assert.are.equal(2, st.total_calls)
  end)

  it("delivers a cached answer to a streamed request through on_token", function()
    local r = router({ dep("m") }, { cache = cache })
    assert(r:complete { prompt = "hello" })
    local tokens = {}
    local res = assert(r:complete({ prompt = "hello", stream = true }, { on_token = function(t) tokens[#tokens + 1] = t end }))
    assert.are.equal("exact", res.cached)
    assert.are.same({ "echo: hello" }, tokens)
    assert.are.equal(1, server:stats().requests)
  end)

  it("finds a fallback's answer again, under the deployment that gave it", function()
    local r = router({ dep("a#fault=context"), dep("b") }, { cache = cache })
    assert.are.equal("b", assert(r:complete { prompt = "hello" }).model)
    local again = assert(r:complete { prompt = "hello" })
    assert.are.equal("exact", again.cached)
    assert.are.equal(2, server:stats().requests)
  end)

  it("keys on the provider and the model the deployment calls: no answer crosses models", function()
    local r1 = router({ dep("m1") }, { cache = cache })
    local r2 = router({ dep("m2") }, { cache = cache })
    local r3 = router({ dep("m1", { provider = "anthropic", base_url = server.url }) }, { cache = cache })
    assert.are.equal("m1", assert(r1:complete { prompt = "hello" }).model)
    local other = assert(r2:complete { prompt = "hello" })
    assert.is_false(other.cached)
    assert.are.equal("m2", other.model)
    assert.is_false(assert(r3:complete { prompt = "hello" }).cached) -- same model name, another provider
    assert.are.equal("exact", assert(r1:complete { prompt = "hello" }).cached)
    assert.are.equal(3, server:stats().requests)
  end)

  it("shares answers across deployments with cache_scope = \"request\"", function()
    local r1 = router({ dep("m1") }, { cache = cache, cache_scope = "request" })
    local r2 = router({ dep("m2") }, { cache = cache, cache_scope = "request" })
    assert(r1:complete { prompt = "hello" })
    local shared = assert(r2:complete { prompt = "hello" })
    assert.are.equal("exact", shared.cached)
    assert.are.equal("m1", shared.model) -- says who answered
    assert.are.equal(1, server:stats().requests)
    assert.has_error(function() router({ dep("m1") }, { cache_scope = "anything" }) end,
      "po.llm.router: cache_scope must be \"model\" or \"request\", got \"anything\"")
  end)

  it("replays a stored stream chunk by chunk, in the order it was streamed", function()
    local r = router({ dep("m") }, { cache = cache, replay_pace = 0.01 })
    local live, again = {}, {}
    assert(r:complete({ prompt = "a b c" }, { on_token = function(t) live[#live + 1] = t end }))
    local res = assert(r:complete({ prompt = "a b c" }, { on_token = function(t) again[#again + 1] = t end }))
    assert.are.equal("exact", res.cached)
    assert.are.same({ "echo: ", "a ", "b ", "c" }, live)
    assert.are.same(live, again)
    assert.is_nil(res.chunks)
    assert.are.equal(1, server:stats().requests)
  end)

  it("never stores an aborted stream", function()
    local model = "m#fault=stall;stall=5;times=1"
    local r = router({ dep(model, { idle_timeout = 0.3 }) }, { cache = cache, retries = 0 })
    local res = r:complete({ prompt = "one two" }, { on_token = function() end })
    assert.is_nil(res)
    local again = assert(r:complete { prompt = "one two" })
    assert.is_false(again.cached)
    assert.are.equal(2, count(model))
  end)

  it("honours opts.cache: no-cache, no-store and ttl", function()
    local r = router({ dep("m") }, { cache = cache })
    assert.is_false(assert(r:complete({ prompt = "p1" }, { cache = "no-store" })).cached)
    assert.is_false(assert(r:complete { prompt = "p1" }).cached) -- nothing was stored
    assert.are.equal("exact", assert(r:complete { prompt = "p1" }).cached)
    assert.is_false(assert(r:complete({ prompt = "p1" }, { cache = "no-cache" })).cached) -- not looked up
    assert.are.equal(3, server:stats().requests)
    assert(r:complete({ prompt = "p2" }, { cache = { ttl = 0.2 } }))
    assert.are.equal("exact", assert(r:complete { prompt = "p2" }).cached)
    po.sleep(1.1) -- entry ages are counted in whole seconds by the cache
    assert.is_false(assert(r:complete { prompt = "p2" }).cached)
    assert.has_error(function() r:complete({ prompt = "x" }, { cache = "sometimes" }) end,
      "router:complete: opts.cache must be \"default\", \"no-cache\", \"no-store\" or { ttl = n }")
  end)

  it("finds a reworded request in the semantic tier", function()
    local sem = assert(po.cache.open { namespace = "router-semantic", semantic = { threshold = 0.8 } })
    sem:clear()
    local r = router({ dep("m") }, { cache = sem })
    assert(r:complete { prompt = "Please write a short haiku about the autumn leaves falling" })
    local res = assert(r:complete { prompt = "please write a short haiku about autumn leaves falling" })
    assert.are.equal("semantic", res.cached)
    assert.are.equal(1, server:stats().requests)
    sem:close()
  end)
end)

describe("router: the metrics collector", function()
  it("records every call in the global collector's active cycle", function()
    local cache = assert(po.cache.open { namespace = "router-metrics" })
    cache:clear()
    po.llm.prices.set("metered", { input = 1, output = 1 })
    local col = po.metrics.global()
    local rec = col:start_cycle("router-spec")
    local r = router({ dep("metered") }, { cache = cache })
    assert(r:complete { prompt = "one two" })
    assert(r:complete { prompt = "one two" })
    assert.are.equal(2, rec.llm_calls)
    assert.are.equal(1, rec.llm_cache_hits)
    assert.are.equal(1, rec.llm_cache_misses)
    assert.are.equal(2, rec.tokens_in)
    assert.are.equal(3, rec.tokens_out)
    assert.are.equal(5, rec.tokens_saved)
    assert.are.near(5e-6, rec.cost, 1e-12)
    assert.are.near(5e-6, rec.cost_saved, 1e-12)
    assert(col:end_cycle("router-spec", true))
    assert(r:complete { prompt = "three" }) -- no active cycle: nothing to record, no error
    po.llm.prices.set("metered", nil)
    cache:close()
  end)
end)

describe("po.llm.router", function()
  it("raises on programmer errors, naming the option", function()
    assert.has_error(function() po.llm.router { deployments = { dep("m") }, retrys = 1 } end,
      "po.llm.router: unknown option 'retrys'")
    assert.has_error(function() po.llm.router { deployments = { dep("m") }, strategy = "random" } end,
      "po.llm.router: strategy must be \"ordered\", \"weighted\", \"latency\" or \"least-busy\", got \"random\"")
    assert.has_error(function() po.llm.router { deployments = {} } end,
      "po.llm.router: deployments must list at least one deployment")
    assert.has_error(function() po.llm.router { deployments = { dep("m", { wieght = 2 }) } } end,
      "po.llm.router: unknown option 'deployments[1].wieght'")
    assert.has_error(function() po.llm.router { deployments = { dep("m") }, cooldown = { fail = 1 } } end,
      "po.llm.router: unknown option 'cooldown.fail'")
    local r = router({ dep("m") })
    assert.has_error(function() r:complete { promt = "x" } end, "router:complete: unknown request field 'promt'")
    assert.has_error(function() r.complete { prompt = "x" } end)
  end)

  it("names the provider kinds, a script's own adapters included, when a provider is neither", function()
    local adapters = require("poengine.llm.provider").adapters
    adapters.spec_kind = adapters.openai
    local ok, err = pcall(po.llm.router, { deployments = { { provider = 42 } } })
    adapters.spec_kind = nil
    assert.is_false(ok)
    assert.matches('provider must be a provider kind %("openai", "anthropic", "ollama", "azure", "spec_kind", "lua"%) or a '
      .. "provider object", err)
  end)

  it("accepts provider objects, lua ones included", function()
    local p = po.llm.provider("lua", { model = "offline", fn = function(req) return { text = "ok " .. req.messages[1].content } end })
    local r = po.llm.router { deployments = { { provider = p, max_concurrency = 1 } } }
    local res = assert(r:complete { prompt = "x" })
    assert.are.equal("ok x", res.text)
    assert.are.equal(1, r:stats().by_provider.lua.calls)
  end)
end)
