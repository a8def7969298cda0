--- A router's limits. Per deployment: its concurrency slots (calls beyond
--- max_concurrency wait, first come first served) and its rpm and tpm
--- windows (a call that would exceed them waits until the oldest start or
--- spend leaves the window); the state lives in the deployment's fields:
--- inflight, waiters, starts (start times) and spent ({ t, tokens }).
--- Per router: the budget, kept by reservation (a call reserves its worst
--- case before it is sent, and settles to its real cost after), in this
--- process or, with r.shared, in Redis (poengine.llm.router_shared).
local po = require "poengine"
local shared = require "poengine.llm.router_shared"

local M = {}

local now, sleep = po.now, po.sleep
local floor, ceil = math.floor, math.ceil
local type, ipairs = type, ipairs

-- Drops entries older than the window from a list of times or { t, ... }.
local function trim(list, t, window, key)
  local cut = 0
  for i = 1, #list do
    local v = list[i]
    if (key and v[key] or v) > t - window then
      break
    end
    cut = i
  end
  if cut > 0 then
    local n = #list
    for i = 1, n - cut do
      list[i] = list[i + cut]
    end
    for i = n - cut + 1, n do
      list[i] = nil
    end
  end
end

local function tokens_in_window(d)
  local sum = 0
  for _, e in ipairs(d.spent) do
    sum = sum + e.tokens
  end
  return sum
end

--- The output a budget reserves for a call that sets no max_tokens (its
--- request's or its deployment's): a reply can be longer, and is then
--- charged what it really cost.
M.DEFAULT_OUTPUT = 4096

--- A rough count of the tokens of a text: 4 bytes a token (rounded up).
--- Byte-level tokenizers give at most one token a byte, so the real count
--- is at most 4 times this one.
---@param text string
---@return integer
function M.estimate_text(text)
  return M.estimate_bytes(#text)
end

--- The same estimate from a length in bytes.
---@param n integer
---@return integer
function M.estimate_bytes(n)
  return ceil(n / 4)
end

-- Bytes of a message's content: a string, or the text of its parts
-- (images are not estimated).
local function content_bytes(c)
  if type(c) == "string" then
    return #c
  end
  local n = 0
  for _, p in ipairs(type(c) == "table" and c or {}) do
    if type(p.text) == "string" then
      n = n + #p.text
    end
  end
  return n
end

--- A rough count of a request's input tokens before sending: 4 bytes a
--- token for the system prompt, the message texts, the tool calls'
--- arguments, the tools' and the response format's schemas (as JSON), plus
--- one.
---@param req table   a normalized request
---@return integer
function M.estimate_input(req)
  local chars = #(req.system or "")
  for _, m in ipairs(req.messages) do
    chars = chars + content_bytes(m.content)
    for _, tc in ipairs(m.tool_calls or {}) do
      chars = chars + #tc.name + #(tc.arguments_json or "")
    end
  end
  if req.tools then
    chars = chars + #po.json.encode(req.tools)
  end
  local rf = req.response_format
  if rf and rf.schema then
    chars = chars + #po.json.encode(rf.schema)
  end
  return floor(chars / 4) + 1
end

--- A rough count of a request's tokens before sending (the tpm limit's
--- estimate): its input, plus what it may generate when it says.
---@param req table   a normalized request
---@return integer
function M.estimate_tokens(req)
  return M.estimate_input(req) + (req.max_tokens or 0)
end

--- Waits (yields inside po.async) for a concurrency slot of deployment d,
--- then for room under its rpm and tpm (d.shared: in Redis, unless it is
--- away). Returns the tpm reservation
--- { t =, tokens = estimate }, to be corrected with the real count. What it
--- holds is written into call as it gets it (call.slot_wait: the future of
--- a queued call, done once it holds a slot; call.slot; call.tpm), so that
--- M.abandon can give it back when the waiting task is canceled.
---@param d table        a router deployment
---@param estimate integer
---@param window number  seconds of the rpm/tpm windows
---@param call table
---@param on_wait? fun(text: string) told what the call waits for, before it waits
---@return table
function M.acquire(d, estimate, window, call, on_wait)
  if d.max_concurrency and d.inflight >= d.max_concurrency then
    if on_wait then
      on_wait(("llm: waiting for a free slot of %s (max_concurrency %d)"):format(d.name, d.max_concurrency))
    end
    local slot = po.future()
    d.waiters[#d.waiters + 1] = slot
    call.slot_wait = slot
    slot:wait() -- release() hands its slot over: inflight stays counted
  else
    d.inflight = d.inflight + 1
  end
  call.slot = true
  if d.shared and (d.rpm or d.tpm) then
    local entry = shared.acquire(d.shared, d, estimate, window, on_wait)
    if entry then
      call.tpm = entry
      return entry
    end
  end
  while true do
    local t = now()
    local wait = 0
    if d.rpm then
      trim(d.starts, t, window)
      if #d.starts >= d.rpm then
        wait = d.starts[1] + window - t
      end
    end
    if d.tpm and wait <= 0 then
      trim(d.spent, t, window, "t")
      if #d.spent > 0 and tokens_in_window(d) + estimate > d.tpm then
        wait = d.spent[1].t + window - t
      end
    end
    if wait <= 0 then
      break
    end
    if on_wait then
      on_wait(("llm: waiting %.1f s for the %s window of %s"):format(wait, #d.starts >= (d.rpm or math.huge) and "rpm"
        or "tpm", d.name))
    end
    sleep(wait)
  end
  local t = now()
  if d.rpm then
    d.starts[#d.starts + 1] = t
  end
  local reservation = { t = t, tokens = estimate }
  if d.tpm then
    d.spent[#d.spent + 1] = reservation
  end
  call.tpm = reservation
  return reservation
end

--- Corrects the tokens a call counts for in its deployment's tpm window
--- to its real count (the estimate was taken before it was sent).
---@param call table
---@param tokens integer
function M.correct(call, tokens)
  local entry = call.tpm
  if not entry then
    return
  end
  entry.tokens = tokens
  if entry.shared_id then
    shared.correct(call.d.shared, call.d, entry.shared_id, tokens)
  end
end

--- Gives d's concurrency slot back: to the oldest call still waiting, if
--- any (a canceled waiter's future has failed and is passed over).
---@param d table
function M.release(d)
  while true do
    local nextw = table.remove(d.waiters, 1)
    if not nextw then
      d.inflight = d.inflight - 1
      return
    end
    if nextw:resolve(true) then
      return
    end
  end
end

--- Whether call holds its deployment's slot: it got one, or it was handed
--- one while its task had not yet run again.
local function holds_slot(call)
  local w = call.slot_wait
  return call.slot or (w ~= nil and w.state == "done")
end

---------------------------------------------------------------------------
-- The budget: r.budget = { usd =, tokens = } caps r.spent_usd and
-- r.spent_tokens; r.reserved_usd, r.reserved_tokens and r.reservations are
-- what calls in flight may still spend; r.budget_waiters, the futures of
-- calls waiting for them to settle.

-- r.spent_offset_*: what the engines sharing r's budget had spent beyond
-- this one when Redis last answered (the local limits start from there).
local function fits(r, usd, tokens)
  local b = r.budget
  return (not b.usd or r.spent_usd + (r.spent_offset_usd or 0) + r.reserved_usd + usd <= b.usd)
    and (not b.tokens or r.spent_tokens + (r.spent_offset_tokens or 0) + r.reserved_tokens + tokens <= b.tokens)
end

-- The router's shared state when its budget (a cap) is held in Redis.
local function shared_budget(r)
  local b = r.budget
  return (b.usd or b.tokens) and r.shared
end
M.shared_budget = shared_budget

local function hold(r, call)
  r.reserved_usd = r.reserved_usd + call.usd
  r.reserved_tokens = r.reserved_tokens + call.tokens
  r.reservations = r.reservations + 1
  call.reserved = true
  return true
end

--- Reserves call.usd and call.tokens (the call's worst case) in router r's
--- budget: at once when they fit, after calls in flight settle when they
--- fit then, never when they cannot. Returns true, or nil, message,
--- "EBUDGET" (nothing was sent). A shared budget is reserved in Redis,
--- and here when Redis is away and the router says "local".
---@param r table   a router
---@param call table { usd =, tokens = }
---@param on_wait? fun(text: string) told when the call waits for calls in flight
function M.reserve(r, call, on_wait)
  local sh = shared_budget(r)
  if sh then
    local ok, err, code = shared.reserve(sh, r, call, on_wait)
    if ok then
      return hold(r, call)
    elseif ok == nil then
      return nil, err, code
    end
  end
  while not fits(r, call.usd, call.tokens) do
    if r.reservations == 0 then
      local b = r.budget
      return nil, string.format("budget: this call may cost up to $%.6f and %d tokens; $%.6f of $%s and %d of %s"
        .. " tokens are spent; nothing was sent", call.usd, call.tokens, r.spent_usd + (r.spent_offset_usd or 0),
        tostring(b.usd or "-"), r.spent_tokens + (r.spent_offset_tokens or 0), tostring(b.tokens or "-")), "EBUDGET"
    end
    if on_wait then
      on_wait(("llm: waiting for %d call%s in flight to settle: the budget has no room for this one yet")
        :format(r.reservations, r.reservations == 1 and "" or "s"))
    end
    local turn = po.future()
    r.budget_waiters[#r.budget_waiters + 1] = turn
    turn:wait()
  end
  return hold(r, call)
end

--- Replaces call's reservation by what it really cost, and lets the calls
--- waiting for the budget look again. Does nothing for a call that holds
--- no reservation (or has settled already).
---@param r table   a router
---@param call table
---@param usd number
---@param tokens integer
function M.settle(r, call, usd, tokens)
  if not call.reserved then
    return
  end
  call.reserved = false
  r.reserved_usd = r.reserved_usd - call.usd
  r.reserved_tokens = r.reserved_tokens - call.tokens
  r.reservations = r.reservations - 1
  if r.reservations == 0 then
    r.reserved_usd, r.reserved_tokens = 0, 0 -- no rounding left over
  end
  r.spent_usd = r.spent_usd + usd
  r.spent_tokens = r.spent_tokens + tokens
  local sh = shared_budget(r)
  if sh then
    shared.settle(sh, r, call, usd, tokens)
  end
  local waiters = r.budget_waiters
  r.budget_waiters = {}
  for _, w in ipairs(waiters) do
    w:resolve(true)
  end
end

--- Gives back everything a call holds when its task is canceled: its slot
--- (to the next waiting call), and its budget and tpm reservations, which
--- become what it may have cost (usd, tokens: nothing when it was not sent).
---@param r table   a router
---@param call table
---@param usd number
---@param tokens integer
function M.abandon(r, call, usd, tokens)
  if holds_slot(call) then
    call.slot, call.slot_wait = false, nil
    M.release(call.d)
  end
  M.correct(call, tokens)
  M.settle(r, call, usd, tokens)
end

return M
