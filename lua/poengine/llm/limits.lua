--- A router deployment's limits: its concurrency slots (calls beyond
--- max_concurrency wait, first come first served) and its rpm and tpm
--- windows (a call that would exceed them waits until the oldest start or
--- spend leaves the window). The state lives in the deployment's fields:
--- inflight, waiters, starts (start times) and spent ({ t, tokens }).
local po = require "poengine"

local M = {}

local now, sleep = po.now, po.sleep
local floor = math.floor
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

--- A rough count of a request's tokens before sending: 4 characters a token
--- for the text, plus what it may generate.
---@param req table   a normalized request
---@return integer
function M.estimate_tokens(req)
  local chars = #(req.system or "")
  for _, m in ipairs(req.messages) do
    if type(m.content) == "string" then
      chars = chars + #m.content
    end
  end
  return floor(chars / 4) + 1 + (req.max_tokens or 0)
end

--- Waits (yields inside po.async) for a concurrency slot of deployment d,
--- then for room under its rpm and tpm. Returns the tpm reservation
--- { t =, tokens = estimate }, to be corrected with the real count.
---@param d table        a router deployment
---@param estimate integer
---@param window number  seconds of the rpm/tpm windows
---@return table
function M.acquire(d, estimate, window)
  if d.max_concurrency and d.inflight >= d.max_concurrency then
    local slot = po.future()
    d.waiters[#d.waiters + 1] = slot
    slot:wait() -- release() hands its slot over: inflight stays counted
  else
    d.inflight = d.inflight + 1
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
  return reservation
end

--- Gives d's concurrency slot back: to the oldest waiting call, if any.
---@param d table
function M.release(d)
  local nextw = table.remove(d.waiters, 1)
  if nextw then
    nextw:resolve(true)
  else
    d.inflight = d.inflight - 1
  end
end

return M
