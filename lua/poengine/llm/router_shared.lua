--- A router's limits shared through Redis (`po.llm.router{ shared = {...} }`):
--- the budget's reservations, each deployment's rpm/tpm windows and its
--- breaker's cooldown, held by atomic scripts (router_shared_scripts) in
--- keys every engine that names the same `name` uses. Redis unreachable:
--- a call's reservation fails closed (EBUDGET with the cause), or with
--- on_shared_error = "local" falls back to this engine's own limits; the
--- windows and cooldowns are this engine's own meanwhile; after
--- a failure Redis is left alone for a second and while the client is not
--- connected, so no call waits on a server that is gone, then shared mode
--- resumes. Settles are sent in the background, and those that fail are
--- kept and sent again once Redis answers.
local po = require "poengine"
local scripts = require "poengine.llm.router_shared_scripts"
local check_names = require("poengine.util.options").check

local M = {}

local now = po.now
local type, tostring, tonumber, error, ipairs, next = type, tostring, tonumber, error, ipairs, next
local fmt = string.format

local OPTIONS = { redis = "string", name = "string", on_shared_error = "string", timeout = "number",
  reservation_ttl = "number" }

-- Seconds Redis is left alone after a failed call, before one call tries it again.
local RETRY = 1

-- Seconds between two looks at the cooldowns other engines set.
local COOLDOWN_LOOK = 0.1

-- The longest a call waits for other engines' calls to settle before looking again.
local POLL_MAX = 0.5

--- The URL without its user and password: what messages and stats show.
--- Everything up to the last "@" goes, so a password holding "/" or "@"
--- never shows.
---@param url string
---@return string
function M.public_url(url)
  return (url:gsub("^(%a+://).*@", "%1"))
end

local function engine_id()
  local f = io.open("/dev/urandom", "rb")
  local bytes = f and f:read(8) or tostring(po.time()) .. tostring(math.random())
  if f then
    f:close()
  end
  return (bytes:gsub(".", function(c)
    return fmt("%02x", c:byte())
  end))
end

--- Checks the `shared` option and connects in the background (a call's
--- first command waits for the connection, up to `timeout`). Raises on a
--- wrong option or a malformed URL.
---@param fname string
---@param opts table
---@return table
function M.new(fname, opts)
  if type(opts) ~= "table" then
    error(fname .. ": shared must be a table, got " .. type(opts), 4)
  end
  check_names(fname, opts, OPTIONS, 4, nil, "shared.")
  if not opts.redis or not opts.name or opts.name == "" then
    error(fname .. ": shared needs redis (a URL) and name (the budget's and limits' name)", 4)
  end
  local mode = opts.on_shared_error or "closed"
  if mode ~= "closed" and mode ~= "local" then
    error(fname .. ": shared.on_shared_error must be \"closed\" or \"local\", got \"" .. mode .. "\"", 4)
  end
  for _, k in ipairs { "timeout", "reservation_ttl" } do
    local v = opts[k]
    if v ~= nil and not (v > 0) then
      error(fname .. ": shared." .. k .. " must be a positive number, got " .. tostring(v), 4)
    end
  end
  local timeout = opts.timeout or 2
  local client, err = po.redis.connect(opts.redis, { wait = false, connect_timeout = timeout,
    command_timeout = timeout })
  if not client then
    error(fname .. ": shared.redis: " .. err, 4)
  end
  local prefix = "poengine:router:{" .. opts.name .. "}:" -- one hash slot: the scripts' keys stay together
  return {
    client = client,
    name = opts.name,
    url = M.public_url(opts.redis),
    mode = mode,
    ttl_ms = math.floor((opts.reservation_ttl or 600) * 1000),
    prefix = prefix,
    budget_keys = { prefix .. "budget", prefix .. "reservations", prefix .. "reserved", prefix .. "expired" },
    engine = engine_id(),
    seq = 0,
    down = false, -- a call failed and none has succeeded since
    retry_at = 0,
    cause = nil, -- "CODE: message" of the last failure
    told = false,
    unsettled = {}, -- settles that failed, to send again: { id, usd, tokens }
    sending = {}, -- the tasks of settles in flight
    seen = nil, -- the budget's totals in the last reply
    cooldowns_at = -math.huge, -- when the cooldowns were last looked up
    counts = { failures = 0, refused = 0, fallbacks = 0, outages = 0, expired = 0 },
  }
end

function M.next_id(sh)
  sh.seq = sh.seq + 1
  return sh.engine .. ":" .. sh.seq
end

-- Says once, on stderr, that Redis could not be reached and what this
-- router does meanwhile.
local function tell(sh)
  if sh.told then
    return
  end
  sh.told = true
  io.stderr:write(fmt("poengine: router '%s': the shared limits at %s cannot be reached (%s): %s\n", sh.name,
    sh.url, sh.cause, sh.mode == "local" and "using this engine's local limits until Redis answers"
      or "calls that need the budget fail with EBUDGET, and rate limits and cooldowns are this engine's own,"
        .. " until Redis answers"))
end

local function failed(sh, message, code)
  sh.counts.failures = sh.counts.failures + 1
  if not sh.down then
    sh.counts.outages = sh.counts.outages + 1
  end
  sh.down = true
  sh.retry_at = now() + RETRY
  sh.cause = tostring(code) .. ": " .. tostring(message)
  tell(sh)
  return nil, sh.cause, code
end

--- Whether Redis is worth a call now: it has not failed, or a second has
--- passed since and the client is connected again.
function M.reachable(sh)
  return not sh.down or (now() >= sh.retry_at and sh.client:stats().connected)
end

--- Runs a script and waits for its reply, or returns nil, cause, code
--- (at once while Redis is known to be away).
function M.eval(sh, script, keys, args)
  if not M.reachable(sh) then
    return nil, sh.cause, "ECONN"
  end
  local reply, message, code = sh.client:eval(script, keys, args):wait()
  if reply == nil then
    return failed(sh, message, code)
  end
  sh.down = false
  return reply
end

-- Keeps the budget's totals of a reply, and the gap between the team's
-- spend and this engine's, which the local limits start from when Redis
-- goes away.
local function saw(sh, r, reply)
  local seen = { usd = tonumber(reply[2]), tokens = tonumber(reply[3]), reserved_usd = tonumber(reply[4]),
    reserved_tokens = tonumber(reply[5]), reservations = reply[6] }
  sh.seen = seen
  sh.counts.expired = sh.counts.expired + reply[7]
  r.spent_offset_usd = math.max(0, seen.usd - r.spent_usd)
  r.spent_offset_tokens = math.max(0, seen.tokens - r.spent_tokens)
  return seen
end

local function num(x)
  return fmt("%.17g", x)
end

-- Sends a settle in the background (a task, so the script's end waits for
-- it); one that fails is kept for later.
local function send_settle(sh, r, id, usd, tokens)
  local task
  task = po.async(function()
    local reply = M.eval(sh, scripts.SETTLE, sh.budget_keys, { id, num(usd), num(tokens) })
    if reply then
      saw(sh, r, reply)
    else
      sh.unsettled[#sh.unsettled + 1] = { id, usd, tokens }
    end
    sh.sending[task] = nil
  end)
  if not task:done() then
    sh.sending[task] = true
  end
end

-- Sends the settles that failed before, now that Redis may answer.
local function flush(sh, r)
  local list = sh.unsettled
  if #list == 0 or not M.reachable(sh) then
    return
  end
  sh.unsettled = {}
  for _, s in ipairs(list) do
    send_settle(sh, r, s[1], s[2], s[3])
  end
end

--- Reserves call.usd and call.tokens in the shared budget. Returns true
--- (call.shared_id names the reservation); false when Redis cannot be
--- reached and on_shared_error = "local" (the caller reserves locally); or
--- nil, message, "EBUDGET". A call that does not fit while reservations
--- are out waits for one to settle (this engine's, which wakes it, or
--- another's, which it looks for every half second at most).
---@param sh table
---@param r table   the router
---@param call table
---@param on_wait? fun(text: string)
function M.reserve(sh, r, call, on_wait)
  flush(sh, r)
  local b = r.budget
  local delay = 0.02
  while true do
    local id = M.next_id(sh)
    local reply, cause = M.eval(sh, scripts.RESERVE, sh.budget_keys, { id, num(call.usd), num(call.tokens),
      b.usd and num(b.usd) or "", b.tokens and num(b.tokens) or "", sh.ttl_ms })
    if not reply then
      if sh.mode == "local" then
        sh.counts.fallbacks = sh.counts.fallbacks + 1
        return false
      end
      sh.counts.refused = sh.counts.refused + 1
      return nil, fmt("budget: the shared budget '%s' at %s cannot be reached (%s); nothing was sent", sh.name, sh.url,
        cause), "EBUDGET"
    end
    local seen = saw(sh, r, reply)
    if reply[1] == 1 then
      call.shared_id = id
      return true
    end
    if seen.reservations == 0 then
      return nil, fmt("budget: this call may cost up to $%.6f and %d tokens; $%.6f of $%s and %d of %s tokens are"
        .. " spent by the engines sharing '%s'; nothing was sent", call.usd, call.tokens, seen.usd, tostring(b.usd or "-"),
        seen.tokens, tostring(b.tokens or "-"), sh.name), "EBUDGET"
    end
    if on_wait then
      on_wait(("llm: waiting for %d call%s in flight to settle: the shared budget '%s' has no room for this one yet")
        :format(seen.reservations, seen.reservations == 1 and "" or "s", sh.name))
    end
    local turn = po.future()
    local waiters = r.budget_waiters
    waiters[#waiters + 1] = turn
    turn:wait(delay)
    for i = #waiters, 1, -1 do
      if waiters[i] == turn then
        table.remove(waiters, i)
      end
    end
    delay = math.min(POLL_MAX, delay * 2)
  end
end

--- Replaces call's shared reservation by its real cost (in the
--- background); a call reserved locally while Redis was away is charged
--- to the shared budget once Redis answers.
function M.settle(sh, r, call, usd, tokens)
  local id = call.shared_id
  call.shared_id = nil
  if not id then
    id = "local:" .. M.next_id(sh) -- (no reservation of that name: charged as it is)
    sh.unsettled[#sh.unsettled + 1] = { id, usd, tokens }
    flush(sh, r)
    return
  end
  send_settle(sh, r, id, usd, tokens)
end

---------------------------------------------------------------------------
-- Deployments: rpm/tpm windows and cooldowns

--- Names the Redis keys of router deployment d: its name and the model it
--- calls, so engines configured alike share them.
function M.deployment(sh, d)
  local key = sh.prefix .. "d:" .. tostring(d.name) .. "/" .. tostring(d.model or d.provider.model or "")
  d.shared = sh
  d.window_keys = { key .. ":starts", key .. ":tpm", key .. ":tpm_tokens" }
  d.cool_key = key .. ":cooldown"
end

--- Waits (yields inside po.async) for room in d's shared rpm and tpm
--- windows and takes it. Returns the tpm entry { t =, tokens =,
--- shared_id = }, or nil when Redis cannot be reached (the caller uses
--- d's local windows).
function M.acquire(sh, d, estimate, window, on_wait)
  local id = M.next_id(sh)
  local args = { id, d.rpm or "", d.tpm or "", estimate, math.floor(window * 1000) }
  while true do
    local reply = M.eval(sh, scripts.WINDOW, d.window_keys, args)
    if not reply then
      sh.counts.fallbacks = sh.counts.fallbacks + 1
      return nil
    end
    if reply[1] == 1 then
      return { t = now(), tokens = estimate, shared_id = d.tpm and id or nil }
    end
    local wait = reply[2] / 1000
    if on_wait then
      on_wait(("llm: waiting %.1f s for the shared %s window of %s"):format(wait, reply[3], d.name))
    end
    po.sleep(wait)
  end
end

--- Corrects a call's tokens in d's shared tpm window (in the background:
--- an estimate left there only makes the window stricter).
function M.correct(sh, d, id, tokens)
  if M.reachable(sh) then
    sh.client:eval(scripts.TOKENS, { d.window_keys[2], d.window_keys[3] }, { id, tokens })
  end
end

--- Cools d down for `seconds` in Redis too, so every engine skips it (in
--- the background); text: why, scrubbed of secrets.
function M.cool(sh, d, seconds, text)
  if M.reachable(sh) then
    po.async(M.eval, sh, scripts.COOL, { d.cool_key }, { math.ceil(seconds * 1000), text or "" })
  end
end

--- Moves each deployment's down_until to the cooldown another engine set,
--- when it ends later; keeps the local state when Redis is away. Looks at
--- most every COOLDOWN_LOOK seconds: calls made together share one look.
function M.cooldowns(sh, deployments)
  local t0 = now()
  if t0 < sh.cooldowns_at + COOLDOWN_LOOK then
    return
  end
  sh.cooldowns_at = t0
  local keys = {}
  for i, d in ipairs(deployments) do
    keys[i] = d.cool_key
  end
  local reply = M.eval(sh, scripts.COOLDOWNS, keys)
  if not reply then
    return
  end
  local t = now()
  for i, d in ipairs(deployments) do
    local left = reply[2 * i - 1]
    if left > 0 and t + left / 1000 > d.down_until then
      d.down_until = t + left / 1000
      if reply[2 * i] ~= "" then
        d.last_error = reply[2 * i]
      end
    end
  end
end

---------------------------------------------------------------------------

--- Sends the settles kept while Redis was away (when it answers now) and
--- waits for every settle in flight. Returns how many are still kept.
function M.flush(sh, r)
  flush(sh, r)
  local task = next(sh.sending)
  while task do
    task:wait()
    sh.sending[task] = nil
    task = next(sh.sending)
  end
  return #sh.unsettled
end

--- The shared figures of router:stats().
function M.stats(sh)
  local c, seen = sh.counts, sh.seen or {}
  return {
    name = sh.name,
    redis = sh.url,
    on_shared_error = sh.mode,
    reachable = not sh.down,
    failures = c.failures,
    outages = c.outages,
    refused = c.refused,
    fallbacks = c.fallbacks,
    expired = c.expired,
    unsettled = #sh.unsettled,
    spent_usd = seen.usd,
    spent_tokens = seen.tokens,
    reservations = seen.reservations,
  }
end

return M
