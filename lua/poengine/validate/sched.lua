--- What po.validate schedules with: a counting semaphore with callbacks
--- (the process-wide limit on validators running at once) and a watchdog
--- (the deadlines of the functions a run starts). Both live on one state's
--- event loop and call back from it; neither knows what a validator is.
local po = require "poengine"

local now = po.now
local pairs, ipairs, setmetatable, max = pairs, ipairs, setmetatable, math.max

local M = {}

---------------------------------------------------------------------------
-- Counting semaphores (everything runs on one state's loop, so a slot is
-- handed straight to the next waiter's callback).

local Semaphore = {}
Semaphore.__index = Semaphore

--- A semaphore of n slots: `:acquire(fn)`, `:release()`, `:set_limit(n)`;
--- fields `limit`, `used` and `tail - head + 1` waiting.
---@param n integer
function M.semaphore(n)
  return setmetatable({ limit = n, used = 0, queue = {}, head = 1, tail = 0 }, Semaphore)
end

-- Calls fn() once a slot is held: at once, or when one is released.
function Semaphore:acquire(fn)
  if self.used < self.limit then
    self.used = self.used + 1
    return fn()
  end
  self.tail = self.tail + 1
  self.queue[self.tail] = fn
end

function Semaphore:release()
  if self.head <= self.tail and self.used <= self.limit then
    local fn = self.queue[self.head]
    self.queue[self.head] = nil
    self.head = self.head + 1
    return fn() -- the slot passes to the waiter
  end
  self.used = self.used - 1
end

function Semaphore:set_limit(n)
  self.limit = n
  while self.used < self.limit and self.head <= self.tail do
    self.used = self.used + 1
    self:release()
  end
end

---------------------------------------------------------------------------
-- The watchdog: one timer per run watches the deadlines of its functions
-- (a timer per validator would cost a heap entry each until its deadline,
-- 600 s away). dog.deadline[k] is key k's deadline; at it, dog.expire[k]()
-- runs, or for a key watched without one, the watchdog's fallback(k) (so a
-- run watching many pool jobs allocates no closure per job).

local Watchdog = {}
Watchdog.__index = Watchdog

--- A watchdog whose keys watched without an expire function call
--- fallback(k) at their deadline.
---@param fallback fun(k: any)
function M.watchdog(fallback)
  local dog = setmetatable({ deadline = {}, expire = {}, n = 0, fallback = fallback }, Watchdog)
  dog.on_timer = function(f)
    if f.state == "done" then
      dog:fire()
    end
  end
  return dog
end

function Watchdog:arm(at, t)
  self.at = at
  self.timer = po.after(max(0, at - t))
  self.timer:on_settle(self.on_timer)
end

function Watchdog:fire()
  self.timer, self.at = nil, nil
  local t, due = now(), {}
  local deadline, expire = self.deadline, self.expire
  for k, d in pairs(deadline) do
    if d <= t then
      due[#due + 1] = k
    end
  end
  -- Expiring one may start others (and watch them): not while traversing.
  for _, k in ipairs(due) do
    if deadline[k] then
      local fn = expire[k]
      deadline[k], expire[k] = nil, nil
      self.n = self.n - 1
      if fn then
        fn()
      else
        self.fallback(k)
      end
    end
  end
  local next_at
  for _, d in pairs(deadline) do
    if not next_at or d < next_at then
      next_at = d
    end
  end
  if next_at and (not self.at or next_at < self.at) then
    if self.timer then
      self.timer:cancel()
    end
    self:arm(next_at, t)
  end
end

--- Watches key k: at `deadline` (po.now() seconds), expire() runs, or the
--- fallback when expire is nil.
function Watchdog:watch(k, deadline, expire)
  self.deadline[k] = deadline
  self.expire[k] = expire
  self.n = self.n + 1
  if not self.at or deadline < self.at then
    if self.timer then
      self.timer:cancel()
    end
    self:arm(deadline, now())
  end
end

--- Stops watching key k (nothing if it is not watched).
function Watchdog:unwatch(k)
  if self.deadline[k] then
    self.deadline[k], self.expire[k] = nil, nil
    self.n = self.n - 1
    if self.n == 0 and self.timer then
      self.timer:cancel()
      self.timer, self.at = nil, nil
    end
  end
end

return M
