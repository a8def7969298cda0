--- The LLM router: several deployments behind one `complete`, with a
--- strategy to order them, retries with backoff honouring Retry-After,
--- fallback, a circuit breaker per deployment, concurrency and rpm/tpm
--- limits that make excess calls wait, a budget, the response cache and the
--- global metrics collector; the budget, limits and cooldowns optionally
--- shared with other engines through Redis (router_shared). See
--- docs/scripting.md, "po.llm.router".
local po = require "poengine"
local util = require "poengine.llm.util"
local provider_mod = require "poengine.llm.provider"
local limits = require "poengine.llm.limits"
local prices = require "poengine.llm.prices"
local future = require "poengine.future"
local rstats = require "poengine.llm.router_stats"
local rcache = require "poengine.llm.router_cache"
local rshared = require "poengine.llm.router_shared"

local M = {}

local now, sleep = po.now, po.sleep
local type, pairs, ipairs, tostring, error, setmetatable = type, pairs, ipairs, tostring, error, setmetatable
local floor, min, max, random = math.floor, math.min, math.max, math.random
local sort = table.sort

local Router = {}
Router.__index = Router
Router.__name = "poengine.llm.router"
Router.stats = rstats.stats
Router._cache_key, Router._lookup, Router._from_cache = rcache.key, rcache.lookup, rcache.from_cache

local STRATEGIES = { ordered = true, weighted = true, latency = true, ["least-busy"] = true }

local ROUTER_OPTIONS = {
  deployments = "table", strategy = "string", retries = "number", backoff = "table", timeout = "number",
  ttft_timeout = "number", cooldown = "table", cache = true, budget = "table", name = "string",
  cache_scope = "string", replay_pace = "number", on_wait = "function", shared = "table",
}

-- Deployment fields the router keeps; the rest configure its provider.
local ROUTING_FIELDS = { provider = true, weight = true, max_concurrency = true, rpm = true, tpm = true,
  max_tokens = true }
local PROVIDER_FIELDS = { model = true, base_url = true, api_key = true, api_key_env = true, timeout = true,
  ttft_timeout = true, idle_timeout = true, connect_timeout = true, headers = true, name = true, fn = true,
  input_includes_cached = true, max_body = true, max_event = true, deployment = true, api_version = true,
  dimensions = true }

local check_names = require("poengine.util.options").check

local function check_table(fname, what, t, allowed)
  check_names(fname, t, allowed, 4, nil, what and (what .. "."))
end

-- level: error()'s, counted from positive; 4 from M.new (positive, M.new,
-- po.llm.router, the caller).
local function positive(fname, name, v, allow_zero, level)
  if v ~= nil and (type(v) ~= "number" or v ~= v or v < 0 or (v == 0 and not allow_zero)) then
    error(fname .. ": " .. name .. " must be a " .. (allow_zero and "non-negative" or "positive") .. " number, got "
      .. tostring(v), level or 4)
  end
  return v
end

-- Its errors are raised at level 4: new_deployment, M.new, po.llm.router, the caller.
local function new_deployment(fname, i, d, opts)
  if type(d) ~= "table" then
    error(fname .. ": deployments[" .. i .. "] must be a table, got " .. type(d), 4)
  end
  local popts = {}
  for k, v in pairs(d) do
    if not ROUTING_FIELDS[k] and not PROVIDER_FIELDS[k] then
      error(fname .. ": unknown option 'deployments[" .. i .. "]." .. tostring(k) .. "'", 4)
    end
    if PROVIDER_FIELDS[k] then
      popts[k] = v
    end
  end
  local p = d.provider
  if type(p) == "string" then
    popts.timeout = popts.timeout or opts.timeout
    popts.ttft_timeout = popts.ttft_timeout or opts.ttft_timeout
    p = provider_mod.new(p, popts)
  elseif getmetatable(p) == nil or type(p.complete) ~= "function" then
    error(fname .. ": deployments[" .. i .. "].provider must be a provider kind (\""
      .. table.concat(provider_mod.kinds(), "\", \"") .. "\") or a provider object", 4)
  end
  local where = "deployments[" .. i .. "]"
  positive(fname, where .. ".weight", d.weight, false, 5)
  positive(fname, where .. ".max_concurrency", d.max_concurrency, false, 5)
  positive(fname, where .. ".rpm", d.rpm, false, 5)
  positive(fname, where .. ".tpm", d.tpm, false, 5)
  positive(fname, where .. ".max_tokens", d.max_tokens, false, 5)
  local kind = p.kind or p.name or "custom"
  if kind == "lua" then
    kind = "lua:" .. tostring(p.name) -- each function answers in its own way
  end
  return {
    index = i,
    provider = p,
    kind = kind,
    name = d.name or p.name,
    model = type(p) == "table" and d.provider ~= p and d.model or nil,
    max_tokens = d.max_tokens and floor(d.max_tokens),
    weight = d.weight or 1,
    max_concurrency = d.max_concurrency,
    rpm = d.rpm,
    tpm = d.tpm,
    inflight = 0,
    waiters = {}, -- futures of calls waiting for a concurrency slot, FIFO
    starts = {}, -- start times in the last minute (rpm)
    spent = {}, -- { t, tokens } in the last minute (tpm)
    fails = {}, -- failure times within the cooldown window
    down_until = 0,
    ewma = nil, -- latency estimate for the "latency" strategy
  }
end

--- Creates a router. See docs/scripting.md for every option.
function M.new(opts)
  local fname = "po.llm.router"
  if type(opts) ~= "table" then
    error(fname .. ": options must be a table, got " .. type(opts), 3)
  end
  check_table(fname, nil, opts, ROUTER_OPTIONS)
  local strategy = opts.strategy or "ordered"
  if not STRATEGIES[strategy] then
    error(fname .. ": strategy must be \"ordered\", \"weighted\", \"latency\" or \"least-busy\", got \"" .. strategy
      .. "\"", 3)
  end
  positive(fname, "retries", opts.retries, true)
  positive(fname, "timeout", opts.timeout)
  positive(fname, "ttft_timeout", opts.ttft_timeout)
  local backoff = opts.backoff or {}
  check_table(fname, "backoff", backoff, { base = "number", max = "number", jitter = "boolean" })
  local cooldown = opts.cooldown or {}
  check_table(fname, "cooldown", cooldown, { fails = "number", window = "number", time = "number" })
  local budget = opts.budget or {}
  check_table(fname, "budget", budget, { usd = "number", tokens = "number" })
  local cache = opts.cache
  if cache ~= nil and cache ~= false and (type(cache) ~= "table" or type(cache.get) ~= "function"
      or type(cache.set) ~= "function") then
    error(fname .. ": cache must be a po.cache (po.cache.open{...}) or false", 3)
  end
  local scope = opts.cache_scope or "model"
  if scope ~= "model" and scope ~= "request" then
    error(fname .. ": cache_scope must be \"model\" or \"request\", got \"" .. scope .. "\"", 3)
  end
  positive(fname, "replay_pace", opts.replay_pace, true)
  if #opts.deployments == 0 then
    error(fname .. ": deployments must list at least one deployment", 3)
  end
  local self = setmetatable({
    strategy = strategy,
    retries = floor(opts.retries or 2),
    backoff = { base = backoff.base or 0.5, max = backoff.max or 20, jitter = backoff.jitter ~= false },
    cooldown = { fails = cooldown.fails or 3, window = cooldown.window or 60, time = cooldown.time or 30 },
    budget = budget,
    cache = cache or nil,
    cache_scope = scope,
    replay_pace = opts.replay_pace or 0,
    on_wait = opts.on_wait,
    deployments = {},
    spent_usd = 0,
    spent_tokens = 0,
    reserved_usd = 0, -- what the calls in flight may still spend (limits.reserve)
    reserved_tokens = 0,
    reservations = 0,
    budget_waiters = {},
    counts = { calls = 0, errors = 0, tokens = 0, hits = 0, misses = 0, tokens_saved = 0, cost_saved = 0 },
    by_provider = {},
    _limit_window = 60, -- seconds of the rpm/tpm windows (tests shorten it)
  }, Router)
  local defaults = { timeout = opts.timeout or 120, ttft_timeout = opts.ttft_timeout or 30 }
  for i, d in ipairs(opts.deployments) do
    self.deployments[i] = new_deployment(fname, i, d, defaults)
  end
  if opts.shared then
    self.shared = rshared.new(fname, opts.shared)
    for _, d in ipairs(self.deployments) do
      rshared.deployment(self.shared, d)
    end
  end
  return self
end

---------------------------------------------------------------------------
-- Ordering and limits

local function available(d, t)
  return d.down_until <= t
end

-- Deployments to try, in order, skipping those cooling down (here, or,
-- with shared limits, in any engine).
function Router:_order()
  if self.shared then
    rshared.cooldowns(self.shared, self.deployments)
  end
  local t = now()
  local list = {}
  for _, d in ipairs(self.deployments) do
    if available(d, t) then
      list[#list + 1] = d
    end
  end
  local s = self.strategy
  if s == "weighted" then
    -- Weighted sampling without replacement: each draw in proportion to weight.
    local out, pool = {}, list
    while #pool > 0 do
      local total = 0
      for _, d in ipairs(pool) do
        total = total + d.weight
      end
      local r, pick = random() * total, #pool
      for j, d in ipairs(pool) do
        r = r - d.weight
        if r < 0 then
          pick = j
          break
        end
      end
      out[#out + 1] = table.remove(pool, pick)
    end
    list = out
  elseif s == "latency" then
    sort(list, function(a, b)
      local la, lb = a.ewma or 0, b.ewma or 0 -- unmeasured ones first, to measure them
      if la ~= lb then
        return la < lb
      end
      return a.index < b.index
    end)
  elseif s == "least-busy" then
    sort(list, function(a, b)
      local la, lb = a.inflight + #a.waiters, b.inflight + #b.waiters
      if la ~= lb then
        return la < lb
      end
      return a.index < b.index
    end)
  end
  return list
end

---------------------------------------------------------------------------
-- Failures

-- Codes after which the same request to the same deployment would fail
-- the same way: the next deployment (another vendor, key or model) may
-- answer. A reply past the size limits would be as large again.
local NEXT = { ECONTEXT = true, ETLS = true, ETOOBIG = true, EQUOTA = true, EINVALID = true, EAUTH = true,
  EUNSUPPORTED = true }

-- What to do after a failed attempt: "retry" this deployment, move to the
-- "next" one, or "stop" (the caller's own error).
local function classify(code, info)
  if code == "ERUNTIME" or code == "ECANCELED" or code == "EUNAVAIL" then
    return "stop"
  end
  if NEXT[code] or info.stage == "ttfb" then
    return "next"
  end
  if code == "ERATELIMIT" or code == "EOVERLOADED" then
    return "retry" -- after Retry-After, or the backoff
  end
  if code == "EHTTP" then
    local s = info.status or 0
    if s == 429 or s == 408 or s == 409 or s >= 500 then
      return "retry"
    end
    return "next" -- 400, 401, 403, 404 …: the same request would fail the same way
  end
  return "retry" -- timeouts, connection errors, malformed or truncated replies, a lua provider's failures
end

-- Failures that are the request's fault, not the deployment's.
local REQUEST_FAULT = { ECONTEXT = true, EINVALID = true, EUNSUPPORTED = true }

-- Counts a failure toward the deployment's circuit breaker, and keeps it
-- (scrubbed already by the provider) for the "cooling down" message.
function Router:_failed(d, code, info, err)
  if REQUEST_FAULT[code] or (code == "EHTTP" and info.status == 400) then
    return -- the request's fault, not the deployment's
  end
  local t = now()
  d.last_error = tostring(err) .. " (" .. tostring(code) .. ")"
  if code == "EQUOTA" then
    self:_cool(d, self.cooldown.time) -- out of credit: every call would fail alike
    d.fails = {}
    return
  end
  local fails, cd = d.fails, self.cooldown
  fails[#fails + 1] = t
  while #fails > 0 and fails[1] <= t - cd.window do
    table.remove(fails, 1)
  end
  if #fails >= cd.fails then
    self:_cool(d, cd.time)
    d.fails = {}
  end
end

-- Skips d for `seconds` (longer, when it is already skipped for longer),
-- in every engine that shares the router's limits.
function Router:_cool(d, seconds)
  d.down_until = max(d.down_until, now() + seconds)
  if self.shared then
    rshared.cool(self.shared, d, seconds, util.scrub(d.last_error or "", util.secrets(d.provider)))
  end
end

function Router:_backoff(attempt, retry_after)
  local b = self.backoff
  local delay = min(b.max, b.base * 2 ^ (attempt - 1))
  if b.jitter then
    delay = delay / 2 + random() * delay / 2
  end
  if retry_after and retry_after > delay then
    delay = retry_after
  end
  return delay
end

---------------------------------------------------------------------------
-- Calls

local CALL_OPTIONS = { cache = true, on_token = "function", on_reasoning = "function", cycle = true }

-- What a call may cost before it is sent: its estimated input, and its
-- max_tokens (or the default) as output, priced for the model called.
local function worst_case(d, dreq)
  local input = limits.estimate_input(dreq)
  local output = dreq.max_tokens or limits.DEFAULT_OUTPUT
  local p = d.provider
  local includes = p.input_includes_cached
  if includes == nil then
    includes = p.adapter and p.adapter.input_includes_cached
  end
  local usd = prices.cost(dreq.model or p.model, { input = input, output = output }, includes)
  return { d = d, input = input, usd = usd, tokens = input + output, model = dreq.model or p.model,
    includes = includes, arrived = 0 }
end

-- What a call that stopped early may have cost: nothing when it was not
-- sent; else its input and the text that arrived.
local function partial_cost(call)
  if not call.sent then
    return 0, 0
  end
  local output = limits.estimate_bytes(call.arrived)
  local usd = prices.cost(call.model, { input = call.input, output = output }, call.includes)
  return usd, call.input + output
end

-- The on_cancel hook of a call: a canceled task never runs again, so what
-- its attempt holds is given back here.
local function abandon(st)
  local self, call = st.router, st.call
  self.counts.errors = self.counts.errors + 1
  if not call or call.settled then
    return -- canceled between attempts: nothing held
  end
  call.canceled = true
  local usd, tokens = partial_cost(call)
  limits.abandon(self, call, usd, tokens)
  self:_charge(call.d, usd, tokens)
end

--- Sends a request through the deployments and returns the response, or
--- nil, message, code. Waits (yields inside po.async).
---@param request table
---@param opts? { cache?: string|table, on_token?: fun(text: string), on_reasoning?: fun(text: string),
---  cycle?: string|number }
function Router:complete(request, opts)
  local fname = "router:complete"
  if getmetatable(self) ~= Router then
    error(fname .. ": called on a " .. type(self) .. " (use r:complete, not r.complete)", 2)
  end
  opts = opts or {}
  if type(opts) ~= "table" then
    error(fname .. ": opts must be a table, got " .. type(opts), 2)
  end
  check_table(fname, "opts", opts, CALL_OPTIONS)
  local lookup, store, ttl = rcache.mode(fname, opts.cache)
  local req = util.normalize(fname, request)
  local on_token, on_reasoning = opts.on_token, opts.on_reasoning
  if on_token or on_reasoning then
    req.stream = true
  end
  local c = self.counts
  c.calls = c.calls + 1
  local t0 = now()

  local budget = self.budget
  local spent_usd, spent_tokens = self.spent_usd, self.spent_tokens
  local seen = limits.shared_budget(self) and self.shared.seen
  if seen then -- (what the engines sharing it had spent at the last reply)
    spent_usd, spent_tokens = seen.usd, seen.tokens
  end
  if (budget.usd and spent_usd >= budget.usd) or (budget.tokens and spent_tokens >= budget.tokens) then
    c.errors = c.errors + 1
    return nil, string.format("budget spent: $%.6f of $%s, %d of %s tokens%s; nothing was sent", spent_usd,
      tostring(budget.usd or "-"), spent_tokens, tostring(budget.tokens or "-"),
      seen and (" by the engines sharing '" .. self.shared.name .. "'") or ""), "EBUDGET"
  end

  local order = self:_order()
  local cache, first_key = self.cache, nil
  if cache and lookup then
    local value, info
    value, info, first_key = self:_lookup(request, #order > 0 and order or self.deployments)
    if value then
      if on_reasoning and type(value.reasoning) == "string" and value.reasoning ~= "" then
        on_reasoning(value.reasoning) -- the thinking came before the answer
      end
      return rcache.finish(self:_from_cache(opts, on_token, t0, value, info), req)
    end
    c.misses = c.misses + 1
  end

  -- st.call: the attempt in flight, what it holds and what has arrived.
  local st = { router = self, chunks = store and cache and on_token and {} or nil }
  local token_cb = on_token and function(text)
    local call = st.call
    if call.canceled then
      return -- (the transfer is gone; nothing more reaches the caller)
    end
    call.arrived = call.arrived + #text
    local chunks = st.chunks
    if chunks then
      chunks[#chunks + 1] = text
    end
    on_token(text)
  end
  local reasoning_cb = on_reasoning and function(text)
    local call = st.call
    if not call.canceled then
      call.arrived = call.arrived + #text
      on_reasoning(text)
    end
  end
  local hooked = future.on_cancel(abandon, st)
  local res, err, code = self:_attempts(order, req, opts, t0, { on_token = token_cb, on_reasoning = reasoning_cb,
    normalized = true }, st)
  if hooked then
    future.off_cancel(abandon, st)
  end
  if res and cache and store then
    local value = {}
    for _, k in ipairs(rcache.STORED) do
      value[k] = res[k]
    end
    local chunks = st.chunks
    value.chunks = chunks and #chunks > 1 and chunks or nil
    local d = st.call.d
    local key = (d == order[1] or self.cache_scope == "request") and first_key or self:_cache_key(request, d)
    cache:set(key, value, ttl and { ttl = ttl } or nil)
  end
  return res, err, code
end

-- Adds a call's cost to the router's counts (the budget is limits').
function Router:_charge(d, usd, tokens)
  local s = rstats.provider(self, d.name)
  s.tokens = s.tokens + tokens
  s.cost = s.cost + usd
  self.counts.tokens = self.counts.tokens + tokens
end

-- Tries the deployments in order, with retries, until one answers; each
-- attempt's record goes in st.call.
function Router:_attempts(order, req, opts, t0, call_opts, st)
  local c = self.counts
  local last_err, last_code
  if #order == 0 then
    last_err, last_code = self:_cooling_message(), "ECOOLDOWN"
  end
  for _, d in ipairs(order) do
    local attempt = 0
    while true do
      attempt = attempt + 1
      if not available(d, now()) then
        break -- opened its breaker (or was told to wait) meanwhile
      end
      local dreq = req
      if d.model or (d.max_tokens and not req.max_tokens) then
        dreq = util.copy(req)
        dreq.model = d.model or req.model
        dreq.max_tokens = req.max_tokens or d.max_tokens
      end
      local call = worst_case(d, dreq)
      st.call = call
      local ok, berr, bcode = limits.reserve(self, call, self.on_wait)
      if not ok then
        c.errors = c.errors + 1
        return nil, berr, bcode
      end
      limits.acquire(d, call.input + (dreq.max_tokens or 0), self._limit_window, call, self.on_wait)
      local s = rstats.provider(self, d.name)
      s.calls = s.calls + 1
      call.sent = true
      local ok_call, res, err, code, info = pcall(d.provider.complete, d.provider, dreq, call_opts)
      call.slot, call.slot_wait, call.settled = false, nil, true
      limits.release(d)
      if not ok_call then
        limits.settle(self, call, 0, 0)
        error(res, 0) -- a programmer error inside a provider: raise it as it is
      end
      if res then
        local used = res.usage.input + res.usage.output
        limits.correct(call, used)
        limits.settle(self, call, res.cost, used)
        self:_charge(d, res.cost, used)
        rstats.record_latency(s, res.latency)
        d.ewma = d.ewma and (0.7 * d.ewma + 0.3 * res.latency) or res.latency
        d.fails = {}
        rstats.record_call(opts, { cache_hit = false, tokens_in = res.usage.input, tokens_out = res.usage.output,
          cost = res.cost, latency = now() - t0, provider = d.name })
        return res
      end
      -- A reply cut short is charged what arrived; one that never started,
      -- nothing; one that came whole but would not parse, what it cost.
      local usd, tokens = 0, 0
      if info and info.cost then
        usd, tokens = info.cost, info.tokens or 0
      elseif call.arrived > 0 then
        usd, tokens = partial_cost(call)
      end
      limits.correct(call, tokens)
      limits.settle(self, call, usd, tokens)
      self:_charge(d, usd, tokens)
      info = info or {}
      s.errors = s.errors + 1
      last_err, last_code = err, code
      self:_failed(d, code, info, err)
      local what = classify(code, info)
      if what == "stop" or call.arrived > 0 then
        -- Text already went to on_token (or on_reasoning): a retry would send it twice.
        c.errors = c.errors + 1
        rstats.record_call(opts, { cache_hit = false, latency = now() - t0, provider = d.name })
        return nil, err, code
      end
      local ra = info.retry_after
      if ra and ra > self.backoff.max then
        -- The server said when to come back: no call of this router is sent
        -- before, even once this one has run out of retries.
        self:_cool(d, ra)
      end
      if what == "next" or attempt > self.retries or (ra and ra > self.backoff.max) then
        break -- (too long to wait here: try the others)
      end
      sleep(self:_backoff(attempt, ra))
    end
  end
  c.errors = c.errors + 1
  rstats.record_call(opts, { cache_hit = false, latency = now() - t0 })
  if not last_err then -- each cooled down while this call waited its turn
    last_err, last_code = self:_cooling_message(), "ECOOLDOWN"
  end
  return nil, last_err, last_code
end

-- "all are cooling down", with each deployment's name and model, when it
-- comes back and the last error that sent it there.
function Router:_cooling_message()
  local t, lines = now(), {}
  for _, d in ipairs(self.deployments) do
    local model = d.model or d.provider.model
    local left = max(0, d.down_until - t)
    lines[#lines + 1] = string.format("%s%s back in %.1f s (last error: %s)", tostring(d.name),
      model and (" " .. model) or "", left, d.last_error and util.scrub(d.last_error, util.secrets(d.provider))
        or "none kept")
  end
  return "no deployment is available: all are cooling down: " .. table.concat(lines, "; ")
end

--- With shared limits: sends the budget's settles kept while Redis was
--- away (if it answers now) and waits for those sent in the background.
--- Returns how many settles are still kept (0 without shared limits).
---@return integer
function Router:flush()
  if getmetatable(self) ~= Router then
    error("router:flush: called on a " .. type(self) .. " (use r:flush())", 2)
  end
  return self.shared and rshared.flush(self.shared, self) or 0
end

--- Like complete, as a future (a po.async task).
function Router:complete_async(request, opts)
  if getmetatable(self) ~= Router then
    error("router:complete_async: called on a " .. type(self) .. " (use r:complete_async)", 2)
  end
  return po.async(self.complete, self, request, opts)
end

function Router:__tostring()
  return "poengine.llm.router (" .. #self.deployments .. " deployments, " .. self.strategy .. ")"
end

return M
