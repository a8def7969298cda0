--- Futures and the scheduler: po.async, po.sleep, po.all, po.any, po.after,
--- po.future.
---
--- A future stands for work that finishes later: a po.async task, a timer,
--- and (through the same type) child processes, HTTP transfers and jobs on
--- the worker pool. `fut:wait()` blocks the caller; inside a po.async task
--- it yields the task's coroutine instead, so many tasks wait at once in one
--- thread. Everything that waits goes through one reactor (the C event loop,
--- epoll); timers live in a heap here and give the reactor its timeout.
local core = require "poengine_core"

local now, step, loop_alive = core.now, core.step, core.loop_alive
local co_create, co_resume, co_running, co_status, co_yield =
  coroutine.create, coroutine.resume, coroutine.running, coroutine.status, coroutine.yield
local select, type, setmetatable, tostring, error = select, type, setmetatable, tostring, error
local traceback = debug.traceback
local unpack = unpack or table.unpack

local M = {}

---@class poengine.Future
---@field state "pending"|"done"|"failed"
local Future = {}
Future.__index = Future
Future.__name = "poengine.future"

local SUSPEND = {} -- what a task yields when it waits on something

-- Ready queue: tasks to resume and callbacks to run, in order.
local ready, ready_head, ready_tail = {}, 1, 0

local function ready_push(item)
  ready_tail = ready_tail + 1
  ready[ready_tail] = item
end

local timers = require "poengine.timers"
local start_timer, stop_timer, next_deadline, run_due_timers = timers.start, timers.stop, timers.next_deadline,
  timers.run_due

---------------------------------------------------------------------------
-- Tasks

-- coroutine -> task, only to find the running task. Weak keys alone would
-- keep every task forever (the task refers to its coroutine, and LuaJIT has
-- no ephemerons), so values are weak too: a task lives as long as something
-- that can still resume it (its future's cancel hook, a waiter, a timer,
-- the ready queue) does, and a finished one leaves the table at once.
local tasks = setmetatable({}, { __mode = "kv" })
local live_tasks = 0
local task_seq = 0 -- task ids: a future remembers the id of the task that made it

-- The id of the running task, or nil outside tasks.
local function running_id()
  local task = tasks[co_running() or 0]
  return task and task.id
end
local unobserved = {} -- failed task futures nobody has looked at yet

local function pack(...)
  return { n = select("#", ...), ... }
end

-- A task stops counting as live once it has finished or been canceled.
local function retire(task)
  if not task.retired then
    task.retired = true
    live_tasks = live_tasks - 1
  end
end

local function resume_task(task, ...)
  if task.finished or task.canceled then
    return
  end
  local ok, res = co_resume(task.co, ...)
  if not ok then
    -- Only the scheduler's own wrapper runs unprotected in the coroutine.
    error("poengine: scheduler failure: " .. tostring(res))
  end
  if co_status(task.co) == "dead" then
    task.finished = true
    retire(task)
    tasks[task.co] = nil
    local fut = task.future
    fut.on_cancel = nil
    if res[1] then
      fut:_settle("done", pack(unpack(res, 2, res.n)))
    else
      fut:_settle("failed", res[2], "ERUNTIME")
      if not fut.observed then
        unobserved[#unobserved + 1] = fut
      end
    end
  elseif res ~= SUSPEND then
    ready_push(task) -- a plain coroutine.yield in a task: run again next turn
  end
end

-- The traceback stops at the task's own function: the frames of the
-- scheduler below it would only be noise to the reader.
local function task_traceback(err)
  if type(err) == "string" then
    local tb = traceback(err, 2)
    local cut = tb:find("\n\t%[C%]: in function 'xpcall'")
    return cut and tb:sub(1, cut - 1) or tb
  end
  return err
end

local function run_task_body(fn, ...)
  return pack(xpcall(fn, task_traceback, ...))
end

---------------------------------------------------------------------------
-- One turn of the scheduler

-- Runs what is ready and the timers that are due. If that did anything it
-- only polls the reactor, so the caller can look at what changed; otherwise
-- it waits at most max_wait seconds (nil: no limit) for the reactor or the
-- next timer. Returns false when nothing could ever happen again: no ready
-- work, no timer, nothing pending in the reactor.
local function turn(max_wait)
  local last = ready_tail
  local ran = last - ready_head + 1
  while ready_head <= last do
    local task = ready[ready_head] -- (only tasks are queued)
    ready[ready_head] = nil
    ready_head = ready_head + 1
    resume_task(task)
  end
  ran = ran + run_due_timers()
  local wait = max_wait
  if ran > 0 or ready_head <= ready_tail then
    wait = 0
  else
    local deadline = next_deadline()
    if deadline then
      local left = deadline - now()
      if left < 0 then
        left = 0
      end
      if not wait or left < wait then
        wait = left
      end
    elseif not wait and not loop_alive() then
      return false
    end
  end
  local _, err, code = step(wait)
  if err then
    error(err .. " (" .. code .. ")")
  end
  run_due_timers()
  return true
end

---------------------------------------------------------------------------
-- Futures

local function new_future()
  return setmetatable({ state = "pending", owner = running_id() }, Future)
end

--- Settles the future once; later calls are ignored. Wakes its waiters.
function Future:_settle(state, a, b)
  if self.state ~= "pending" then
    return false
  end
  self.state = state
  if state == "done" then
    self.results = a
  else
    self.err, self.code = a, b
  end
  local waiters = self.waiters
  self.waiters = nil
  if waiters then
    -- Every waiter runs, whatever an earlier one (a user's on_settle
    -- callback) raised: one of the later ones may be a task's wake-up,
    -- which would otherwise wait forever. The first error goes on up.
    local first, more = nil, 0
    for i = 1, #waiters do
      local ok, err = pcall(waiters[i], self)
      if not ok then
        if first == nil then
          first = err
        else
          more = more + 1
        end
      end
    end
    if first ~= nil then
      if more > 0 and type(first) == "string" then
        first = first .. ("\n(and %d more on_settle callback%s of this future raised)"):format(more,
          more == 1 and "" or "s")
      end
      error(first, 0)
    end
  end
  return true
end

--- Calls fn(fut) once the future settles (at once if it already has), on
--- the scheduler's thread: fn must not wait. Marks the future as observed
--- (a failed task's error is then not reported at exit).
---@param fn fun(fut: poengine.Future)
function Future:on_settle(fn)
  self.observed = true
  if self.state ~= "pending" then
    fn(self)
    return
  end
  local waiters = self.waiters
  if not waiters then
    waiters = {}
    self.waiters = waiters
  end
  waiters[#waiters + 1] = fn
end

function Future:_drop_waiter(fn)
  local waiters = self.waiters
  if not waiters then
    return
  end
  for i = #waiters, 1, -1 do
    if waiters[i] == fn then
      table.remove(waiters, i)
    end
  end
end

--- The results of a settled future, as fut:wait() returns them: its
--- results, or nil, message, code. Does not wait: on a pending future it
--- raises.
function Future:outcome()
  if self.state == "pending" then
    error("fut:outcome: the future is still pending", 2)
  end
  self.observed = true
  if self.state == "done" then
    local r = self.results
    return unpack(r, 1, r.n)
  end
  return nil, self.err, self.code
end

local function check_timeout(fname, timeout)
  if timeout ~= nil and (type(timeout) ~= "number" or timeout ~= timeout or timeout < 0) then
    error(fname .. ": timeout must be a non-negative number of seconds, got " .. tostring(timeout), 3)
  end
end

local function timed_out(timeout)
  return nil, "timed out after " .. timeout .. " s", "ETIMEDOUT"
end

--- Waits for the future and returns its results, or `nil, message, code`:
--- the error of a failed future, or "ETIMEDOUT" when `timeout` seconds pass
--- first (the work itself goes on). Inside po.async it yields the task.
---@param timeout? number seconds
function Future:wait(timeout)
  if getmetatable(self) ~= Future then
    error("fut:wait: called on a " .. type(self) .. ", not a future (use fut:wait, not fut.wait)", 2)
  end
  check_timeout("fut:wait", timeout)
  self.observed = true
  if self.state ~= "pending" then
    return self:outcome()
  end
  local task = tasks[co_running() or 0]
  if task then
    local woken, timer = false, nil
    local function wake()
      if not woken then
        woken = true
        if timer then
          stop_timer(timer)
        end
        ready_push(task)
      end
    end
    self:on_settle(wake)
    if timeout then
      timer = start_timer(timeout, wake)
    end
    task.waiting = self
    co_yield(SUSPEND)
    task.waiting = nil
    if self.state == "pending" then
      self:_drop_waiter(wake)
      return timed_out(timeout)
    end
    return self:outcome()
  end
  -- Not in a task: run the scheduler here until the future settles.
  local deadline = timeout and now() + timeout
  while self.state == "pending" do
    local left
    if deadline then
      left = deadline - now()
      if left <= 0 then
        return timed_out(timeout)
      end
    end
    if not turn(left) then
      return nil, "fut:wait: the future can never settle: nothing it could wait for is pending", "EDEADLK"
    end
  end
  return self:outcome()
end

--- True once the future has settled (done, failed or canceled).
function Future:done()
  return self.state ~= "pending"
end

--- Cancels pending work: the future fails with "ECANCELED", its waiters
--- wake, and the work stops (a task is never resumed again; a timer is
--- stopped; child processes and transfers are killed by their own hooks).
--- A canceled task also cancels the future it was waiting on when the task
--- itself made that future (its HTTP transfer, its timer, its subtask),
--- then runs its on_cancel hooks.
--- Returns true if it was pending, false if it had already settled.
function Future:cancel()
  if self.state ~= "pending" then
    return false
  end
  local hook, arg = self.on_cancel, self.cancel_arg
  self.on_cancel, self.cancel_arg = nil, nil
  if hook then
    hook(self, arg)
  end
  self:_settle("failed", "canceled", "ECANCELED")
  return true
end

--- Completes a future made by po.future() with the given results.
function Future:resolve(...)
  return self:_settle("done", pack(...))
end

--- Fails a future made by po.future(): waiters get nil, message, code.
---@param message any
---@param code? string default "EFAILED"
function Future:reject(message, code)
  return self:_settle("failed", message, code or "EFAILED")
end

function Future:__tostring()
  return "poengine.future (" .. self.state .. ")"
end

---------------------------------------------------------------------------
-- Public functions

--- A new pending future that the caller settles with fut:resolve(...) or
--- fut:reject(message [, code]): the generic completion source for Lua code.
---@return poengine.Future
function M.future()
  return new_future()
end

--- True if v is a future.
function M.is_future(v)
  return getmetatable(v) == Future
end

-- What a canceled task leaves behind: the future it waits on, when it made
-- it, is canceled first (no more bytes, no more callbacks), then its hooks
-- run, newest first, each protected.
local function cancel_task_work(task)
  local w = task.waiting
  task.waiting = nil
  if w and w.owner == task.id then
    w:cancel()
  end
  local hooks = task.hooks
  task.hooks = nil
  for i = #(hooks or {}) - 1, 1, -2 do
    local arg = hooks[i + 1]
    local ok, err = xpcall(hooks[i], traceback, arg ~= hooks and arg or nil)
    if not ok then
      io.stderr:write("poengine: an on_cancel hook failed: ", tostring(err), "\n")
    end
  end
end

--- Inside a po.async task: runs fn(arg) if the task is canceled, so the
--- work it holds (a slot, a reservation) can be given back;
--- M.off_cancel(fn, arg) forgets it once the work is done. Returns false
--- outside a task, where nothing can cancel the caller.
---@param fn fun(arg: any)
---@param arg any
---@return boolean
function M.on_cancel(fn, arg)
  local task = tasks[co_running() or 0]
  if not task then
    return false
  end
  local hooks = task.hooks
  if not hooks then
    hooks = {}
    task.hooks = hooks
  end
  hooks[#hooks + 1] = fn
  hooks[#hooks + 1] = arg == nil and hooks or arg -- (a list cannot hold nil)
  return true
end

--- Forgets a hook given to M.on_cancel by the running task.
---@param fn fun(arg: any)
---@param arg any
function M.off_cancel(fn, arg)
  local task = tasks[co_running() or 0]
  local hooks = task and task.hooks
  if arg == nil then
    arg = hooks
  end
  for i = #(hooks or {}) - 1, 1, -2 do
    if hooks[i] == fn and hooks[i + 1] == arg then
      table.remove(hooks, i + 1)
      table.remove(hooks, i)
      return
    end
  end
end

--- Runs fn(...) as a task and returns a future of its results. The task
--- starts at once and runs until it first waits; an error inside becomes the
--- future's error (code "ERUNTIME") with its traceback.
---@param fn function
---@return poengine.Future
function M.async(fn, ...)
  if type(fn) ~= "function" then
    error("po.async: fn must be a function, got " .. type(fn), 2)
  end
  local fut = new_future()
  local co = co_create(run_task_body)
  task_seq = task_seq + 1
  local task = { co = co, future = fut, id = task_seq }
  tasks[co] = task
  live_tasks = live_tasks + 1
  fut.on_cancel = function()
    task.canceled = true
    retire(task)
    cancel_task_work(task)
  end
  resume_task(task, fn, ...)
  return fut
end

--- A future that resolves with true after `seconds`; canceling it stops the
--- timer.
---@param seconds number
---@return poengine.Future
function M.after(seconds)
  if type(seconds) ~= "number" or seconds ~= seconds or seconds < 0 then
    error("po.after: seconds must be a non-negative number, got " .. tostring(seconds), 2)
  end
  local fut = new_future()
  local t = start_timer(seconds, function()
    fut:_settle("done", { n = 1, true })
  end)
  fut.on_cancel = function()
    stop_timer(t)
  end
  return fut
end

--- Sleeps `seconds`: blocks, or inside po.async yields the task.
---@param seconds number
function M.sleep(seconds)
  if type(seconds) ~= "number" or seconds ~= seconds or seconds < 0 then
    error("po.sleep: seconds must be a non-negative number, got " .. tostring(seconds), 2)
  end
  M.after(seconds):wait()
end

local function check_futures(fname, futures)
  if type(futures) ~= "table" then
    error(fname .. ": futures must be a table of futures, got " .. type(futures), 3)
  end
  for i = 1, #futures do
    if getmetatable(futures[i]) ~= Future then
      error(fname .. ": futures[" .. i .. "] is a " .. type(futures[i]) .. ", not a future", 3)
    end
  end
end

--- Waits for every future. Returns a table whose [i] is the first result of
--- futures[i] (with n = #futures), or nil, message, code as soon as one
--- fails (the message names which) or the timeout passes. Every future's
--- full results stay available through its own :wait().
---@param futures poengine.Future[]
---@param timeout? number
function M.all(futures, timeout)
  check_futures("po.all", futures)
  check_timeout("po.all", timeout)
  local n = #futures
  local combined = new_future()
  local results = { n = n }
  local left = n
  for i = 1, n do
    futures[i]:on_settle(function(f)
      if f.state == "done" then
        results[i] = f.results[1]
        left = left - 1
        if left == 0 then
          combined:_settle("done", { n = 1, results })
        end
      else
        combined:_settle("failed", "future " .. i .. " failed: " .. tostring(f.err), f.code)
      end
    end)
  end
  if n == 0 then
    return results
  end
  return combined:wait(timeout)
end

--- Waits for the first future to settle. Returns its index followed by its
--- results (or by nil, message, code if it failed); nil, message,
--- "ETIMEDOUT" when the timeout passes first.
---@param futures poengine.Future[]
---@param timeout? number
function M.any(futures, timeout)
  check_futures("po.any", futures)
  check_timeout("po.any", timeout)
  if #futures == 0 then
    error("po.any: futures must not be empty", 2)
  end
  local combined = new_future()
  for i = 1, #futures do
    futures[i]:on_settle(function(f)
      if f.state == "done" then
        combined:_settle("done", pack(i, unpack(f.results, 1, f.results.n)))
      else
        combined:_settle("done", pack(i, nil, f.err, f.code))
      end
    end)
  end
  return combined:wait(timeout)
end

--- Runs the scheduler until no task is left that could still make progress;
--- the CLI calls it when the script returns. Errors of tasks that failed
--- with nobody waiting for them are reported on stderr.
function M.drain()
  while live_tasks > 0 or ready_head <= ready_tail do
    if not turn(nil) then
      break
    end
  end
  if unobserved[1] then -- (the pool's workers call drain after every job)
    for i = 1, #unobserved do
      local fut = unobserved[i]
      if not fut.observed then
        io.stderr:write("poengine: a po.async task failed and nobody waited for it: ", tostring(fut.err), "\n")
      end
    end
    unobserved = {}
  end
  if live_tasks > 0 then
    io.stderr:write("poengine: ", live_tasks, " po.async task(s) still waiting at exit on futures that can never settle\n")
  end
end

---------------------------------------------------------------------------
-- Futures that C operations settle (child processes, HTTP transfers, pool
-- jobs): C makes, settles and detaches them only through these functions,
-- registered once per Lua state when this module loads, and never touches a
-- future's fields. C also runs M.drain through this registration.

-- A pending future whose cancel calls hook(fut, arg); arg is C's handle.
local function new_c_future(hook, arg)
  return setmetatable({ state = "pending", on_cancel = hook, cancel_arg = arg, owner = running_id() }, Future)
end

-- Forgets the C handle of a future that C gave up on (its operation failed
-- to start, or its owner closed): the future stays pending.
local function detach_c_future(fut)
  fut.on_cancel, fut.cancel_arg = nil, nil
end

core.register_future {
  new = new_c_future,
  settle = Future._settle, -- (fut, "done", {n = k, ...}) or (fut, "failed", message, code)
  detach = detach_c_future,
  drain = M.drain,
}

--- Internal, for tests and diagnostics: counts of live tasks and timers.
function M._counts()
  local live, heap = timers.counts()
  return { tasks = live_tasks, timers = live, heap = heap, ready = ready_tail - ready_head + 1 }
end

return M
