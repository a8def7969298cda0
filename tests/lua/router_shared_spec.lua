-- A router's limits shared through Redis, against a real redis-server and
-- the test LLM server: engines in separate poengine processes
-- (tests/tools/router_worker.lua) share one budget; Redis killed under a
-- router (the budget fails closed, or falls back to local limits) and
-- started again on the same port (shared mode resumes).
local po = require "poengine"
local llm_server = require "tests.tools.llm_server"
local redis_server = require "tests.tools.redis_server"
local router_worker = require "tests.tools.router_worker"

local server = llm_server.for_spec(setup, teardown, before_each)

local KEY = "sk-shared-SECRET-5"
local PROMPT = "one two three four" -- an estimated 5 input tokens; the server counts 4 in and 5 out
local ONE_CALL, REAL = 5 + 10, 9 -- what a call with max_tokens = 10 reserves, and what it costs

-- Starts n workers (tests/tools/router_worker.lua) with the config cfg,
-- released together, and returns their reports.
local function workers(n, cfg)
  cfg.llm_url, cfg.key = server.url, KEY
  return router_worker.run(n, cfg)
end

local function hash(client, key)
  local flat = client:command("HGETALL", key):wait()
  local t = {}
  for i = 1, flat.n, 2 do
    t[flat[i]] = tonumber(flat[i + 1]) or flat[i + 1]
  end
  return t
end

local redis, client
before_each(function()
  redis = redis_server.start_temp()
  client = assert(po.redis.connect(redis.url))
end)
after_each(function()
  client:close()
  redis_server.stop_temp(redis)
end)

local function router(extra, shared)
  local opts = { deployments = { server:deployment(extra.model or "m", KEY, extra.deployment) }, retries = 0,
    backoff = { base = 0.01, max = 0.05 }, budget = extra.budget, cooldown = extra.cooldown, on_wait = extra.on_wait }
  opts.shared = shared or { redis = redis.url, name = "team", timeout = 0.5 }
  return po.llm.router(opts)
end

describe("router: a budget shared through Redis", function()
  it("keeps four processes of 20 concurrent calls each within one cap", function()
    local cap = 200 -- about 22 calls, of the 80
    local reports = workers(4, { model = "m#delay=0.05", redis = redis.url, name = "four", calls = 20,
      budget = { tokens = cap } })
    local answered, refused = 0, 0
    for _, r in ipairs(reports) do
      answered = answered + r.ok
      refused = refused + (r.codes.EBUDGET or 0)
      assert.are.equal(20, r.ok + (r.codes.EBUDGET or 0))
      assert.are.equal(r.ok * REAL, r.spent_tokens)
    end
    local requests = server:stats().requests
    assert.are.equal(answered, requests) -- no call was sent that was not answered
    -- What the server answered, and what Redis holds, are within the cap
    -- (every reservation covered its call's real cost), and the cap was
    -- used: a call is refused only when nothing is in flight and its
    -- reservation does not fit.
    assert.is_true(requests * REAL <= cap, requests .. " calls answered")
    assert.is_true(requests * REAL > cap - ONE_CALL, requests .. " calls answered")
    local b = hash(client, "poengine:router:{four}:budget")
    assert.are.equal(requests * REAL, b.spent_tokens)
    assert.are.equal(0, b.res_n)
    assert.are.equal(0, client:command("ZCARD", "poengine:router:{four}:reservations"):wait())
    assert.are.equal(80 - requests, refused)
  end)

  it("makes a call wait for another engine's reservation to settle, then sends it when it fits", function()
    local a = router { model = "m#delay=0.3", budget = { tokens = ONE_CALL + REAL } }
    local said = {}
    local b = router { model = "m#delay=0.3", budget = { tokens = ONE_CALL + REAL },
      on_wait = function(text) said[#said + 1] = text end }
    local first = a:complete_async { prompt = PROMPT, max_tokens = 10 }
    while a.reservations == 0 do
      po.sleep(0.01)
    end
    -- 15 held of 24: b's 15 do not fit until a's call settles to 9
    assert(b:complete { prompt = PROMPT, max_tokens = 10 })
    assert(first:wait())
    b:flush()
    assert.matches("^llm: waiting for 1 call in flight to settle: the shared budget 'team'", said[1])
    local _, err, code = a:complete { prompt = PROMPT, max_tokens = 10 }
    assert.are.equal("EBUDGET", code)
    assert.matches("18 of 24 tokens are spent by the engines sharing 'team'", err)
    assert.are.equal(2, server:stats().requests)
    assert.are.equal(18, b:stats().shared.spent_tokens)
  end)

  it("charges a reservation left past its expiry its worst case, and corrects it when the call settles", function()
    local r = router({ model = "m#delay=0.5", budget = { tokens = 100 } },
      { redis = redis.url, name = "team", reservation_ttl = 0.05 })
    local f = r:complete_async { prompt = PROMPT, max_tokens = 10 }
    while server:stats().current == 0 do
      po.sleep(0.01)
    end
    po.sleep(0.1) -- past the expiry; the next script charges it
    local other = router { budget = { tokens = 100 } }
    assert(other:complete { prompt = PROMPT, max_tokens = 10 })
    other:flush()
    local b = hash(client, "poengine:router:{team}:budget")
    assert.are.equal(ONE_CALL + REAL, b.spent_tokens) -- the expired one at its worst, the other's real cost
    assert.are.equal(1, other:stats().shared.expired)
    assert(f:wait())
    assert.are.equal(0, r:flush())
    assert.are.equal(2 * REAL, hash(client, "poengine:router:{team}:budget").spent_tokens)
  end)
end)

describe("router: a canceled call under a shared budget", function()
  it("gives its reservation back in Redis, charged what it may have cost", function()
    local r = router { model = "m#delay=2", budget = { tokens = 100 } }
    local f = r:complete_async { prompt = PROMPT, max_tokens = 10 }
    while server:stats().current == 0 do
      po.sleep(0.01)
    end
    assert.are.equal(1, hash(client, "poengine:router:{team}:budget").res_n)
    assert.is_true(f:cancel())
    assert.are.equal(0, r:flush())
    local b = hash(client, "poengine:router:{team}:budget")
    assert.are.equal(0, b.res_n)
    assert.are.equal(5, b.spent_tokens) -- sent: its estimated input; nothing arrived
    assert.are.equal(0, r.reservations)
  end)
end)

describe("router: rate limits shared through Redis", function()
  it("limits a second process by the first one's calls under one rpm", function()
    -- 3 calls each, 3 a window between them: without sharing, neither would wait
    local reports = workers(2, { model = "m", rpm = 3, window = 3, redis = redis.url, name = "rpm", calls = 3 })
    local told = 0
    for _, r in ipairs(reports) do
      assert.are.equal(3, r.ok)
      for _, text in ipairs(r.waits) do
        assert.matches("^llm: waiting [%d.]+ s for the shared rpm window of openai$", text)
        told = told + 1
      end
    end
    assert.is_true(told >= 3, told .. " waits") -- each call past the third waited
    assert.are.equal(6, server:stats().requests)
  end)

  it("counts one engine's tokens, corrected to the real count, in another's tpm window", function()
    local said = {}
    local a = router { deployment = { tpm = 20 } }
    local b = router { deployment = { tpm = 20 }, on_wait = function(text) said[#said + 1] = text end }
    a._limit_window, b._limit_window = 1, 1
    assert(a:complete { prompt = PROMPT, max_tokens = 10 }) -- 15 estimated, 9 counted
    a.shared.client:command("PING"):wait() -- (its correction went first, on the same connection)
    local tokens = hash(client, "poengine:router:{team}:d:openai/m:tpm_tokens")
    local entries = 0
    for k, v in pairs(tokens) do
      if k ~= "sum" then
        entries = entries + 1
        assert.are.equal(REAL, v)
      end
    end
    assert.are.equal(1, entries)
    assert.are.equal(REAL, tokens.sum)
    assert(b:complete { prompt = PROMPT, max_tokens = 10 }) -- 9 + 15 > 20: waits for a's to leave
    assert.matches("^llm: waiting [%d.]+ s for the shared tpm window of openai$", said[1])
    assert.are.equal(2, server:stats().requests)
  end)
end)

describe("router: cooldowns shared through Redis", function()
  it("skips a deployment in one process that another process cooled down", function()
    local cfg = { model = "m#fault=status;status=500", redis = redis.url, name = "cool", calls = 1,
      cooldown = { fails = 1, window = 60, time = 60 } }
    local first = workers(1, cfg)[1]
    assert.are.equal(1, first.codes.EHTTP)
    assert.are.equal(1, server:stats().requests)
    local left = client:command("PTTL", "poengine:router:{cool}:d:openai/m#fault=status;status=500:cooldown"):wait()
    assert.is_true(left > 0 and left <= 60000)
    local second = workers(1, cfg)[1]
    assert.are.equal(1, second.codes.ECOOLDOWN)
    assert.are.equal(1, server:stats().requests) -- nothing sent
    assert.matches("all are cooling down: openai m#fault=status;status=500 back in [%d.]+ s %(last error: .*injected failure",
      second.messages.ECOOLDOWN)
    assert.is_nil(second.messages.ECOOLDOWN:find(KEY, 1, true))
  end)
end)

describe("router: Redis gone under a shared budget", function()
  -- What the router writes on stderr, until the test ends.
  local stderr
  local function capture_stderr()
    local said = {}
    stderr = io.stderr
    io.stderr = { write = function(_, ...) said[#said + 1] = table.concat { ... } end }
    return said
  end
  after_each(function()
    if stderr then
      io.stderr, stderr = stderr, nil
    end
  end)

  local function wait_open(n)
    while server:stats().current < n do
      po.sleep(0.01)
    end
  end

  -- Calls until one answers (Redis back, the client reconnected), and returns the answer.
  local function until_answered(r)
    for _ = 1, 200 do
      local res = r:complete { prompt = PROMPT, max_tokens = 10 }
      if res then
        return res
      end
      po.sleep(0.05)
    end
    error("the router never used Redis again")
  end

  it("fails closed with EBUDGET and the cause, keeps the settles, and resumes when Redis is back", function()
    local r = router { model = "m#delay=2", budget = { tokens = 1000 } }
    local inflight = {}
    for i = 1, 5 do
      inflight[i] = r:complete_async { prompt = PROMPT, max_tokens = 10 }
    end
    wait_open(5)
    local said = capture_stderr()
    redis_server.kill9(redis)
    for i = 1, 5 do
      assert(inflight[i]:wait()) -- the provider answered; their settles cannot reach Redis
    end
    local res, err, code = r:complete { prompt = PROMPT, max_tokens = 10 }
    local res2, _, code2 = r:complete { prompt = PROMPT, max_tokens = 10 }
    assert.is_nil(res)
    assert.is_nil(res2)
    assert.are.equal("EBUDGET", code)
    assert.are.equal("EBUDGET", code2)
    assert.matches("the shared budget 'team' at redis://127.0.0.1:%d+ cannot be reached %(E%u+: ", err)
    assert.matches("nothing was sent$", err)
    assert.are.equal(5, server:stats().requests)
    assert.are.equal(1, #said) -- said once
    assert.matches("calls that need the budget fail with EBUDGET, and rate limits and cooldowns are this engine's own,"
      .. " until Redis answers", said[1], 1, true)
    local s = r:stats().shared
    assert.is_false(s.reachable)
    assert.are.equal(5, s.unsettled)
    assert.are.equal(2, s.refused)
    assert.is_true(s.failures >= 1)

    local url = redis.url
    redis = redis_server.start(redis.dir, redis.port) -- a new server, nothing kept
    redis.url = url
    client:close()
    client = assert(po.redis.connect(redis.url))
    until_answered(r)
    assert.are.equal(0, r:flush())
    assert.is_true(r:stats().shared.reachable)
    -- the five settled on the new server (charged: it never held their reservations), and the new call
    assert.are.equal(6 * REAL, hash(client, "poengine:router:{team}:budget").spent_tokens)
    assert.are.equal(6 * REAL, r.spent_tokens)
  end)

  it("falls back to local limits with on_shared_error = \"local\", from the team's spend, without the password",
    function()
      redis_server.stop_temp(redis)
      client:close()
      redis = redis_server.start_temp { "--requirepass", "pw-SECRET-9" }
      local url = "redis://:pw-SECRET-9@127.0.0.1:" .. redis.port
      client = assert(po.redis.connect(url))
      local shared = { redis = url, name = "team", timeout = 0.5, on_shared_error = "local" }
      local a = router({ budget = { tokens = 45 } }, shared)
      local b = router({ budget = { tokens = 45 } }, shared)
      assert(b:complete { prompt = PROMPT, max_tokens = 10 })
      assert(b:complete { prompt = PROMPT, max_tokens = 10 })
      assert(a:complete { prompt = PROMPT, max_tokens = 10 }) -- a saw the team's 27
      a:flush()
      local said = capture_stderr()
      redis_server.kill9(redis)
      -- a's local budget starts from the 27: 15 more fit (42 of 45), then none
      local res = a:complete { prompt = PROMPT, max_tokens = 10 }
      local res2, err2, code2 = a:complete { prompt = PROMPT, max_tokens = 10 }
      assert.is_table(res)
      assert.is_nil(res2)
      assert.are.equal("EBUDGET", code2)
      assert.matches("%$0.000000 of %$%- and 36 of 45 tokens are spent", err2)
      assert.are.equal(1, #said)
      assert.matches("using this engine's local limits until Redis answers", said[1])
      assert.matches("redis://127.0.0.1:" .. redis.port, said[1], 1, true)
      assert.is_nil(said[1]:find("SECRET", 1, true))
      assert.is_nil(err2:find("SECRET", 1, true))
      local s = a:stats().shared
      assert.are.equal(2, s.fallbacks)
      assert.are.equal(1, s.unsettled) -- the call made on local limits, to be charged
      assert.are.equal("redis://127.0.0.1:" .. redis.port, s.redis)

      redis = redis_server.start(redis.dir, redis.port, { "--requirepass", "pw-SECRET-9" })
      client:close()
      client = assert(po.redis.connect(url))
      for _ = 1, 200 do
        if a:flush() == 0 then
          break
        end
        po.sleep(0.05)
      end
      -- b's 18 went with the old server; the new one holds the call made on local limits
      assert.are.equal(REAL, hash(client, "poengine:router:{team}:budget").spent_tokens)
      assert.are.equal(0, a:stats().shared.unsettled)
      assert.is_true(a:stats().shared.reachable)
    end)
end)

describe("po.llm.router: shared", function()
  it("raises on a wrong option, naming it, and on a malformed URL", function()
    assert.has_error(function()
      router({}, { redis = redis.url })
    end, "po.llm.router: shared needs redis (a URL) and name (the budget's and limits' name)")
    assert.has_error(function()
      router({}, { redis = redis.url, name = "x", on_shared_error = "open" })
    end, "po.llm.router: shared.on_shared_error must be \"closed\" or \"local\", got \"open\"")
    assert.has_error(function()
      router({}, { redis = redis.url, name = "x", ttl = 1 })
    end, "po.llm.router: unknown option 'shared.ttl'")
    assert.has_error(function()
      router({}, { redis = redis.url, name = "x", timeout = 0 })
    end, "po.llm.router: shared.timeout must be a positive number, got 0")
    local ok, err = pcall(router, {}, { redis = "redis://:pw-SECRET@127.0.0.1:notaport", name = "x" })
    assert.is_false(ok)
    assert.matches("po.llm.router: shared.redis: ", err)
    assert.is_nil(err:find("SECRET", 1, true))
  end)
end)
