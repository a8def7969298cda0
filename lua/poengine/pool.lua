--- The worker pool: Lua functions on other cores.
---
--- N worker threads (default: one per online CPU), each with its own Lua
--- state with `po` loaded. Only plain values cross between states, copied:
--- nil, booleans, numbers, strings and tables of these. The mechanism is C
--- (src/core/pool.c, src/bind/bind_pool.c, src/bind/bind_worker.c); see
--- docs/scripting.md.
local core = require "poengine_core"

local pool = core.pool

---@class poengine.pool
local M = {}

--- Runs fn(...) on a worker and returns a future of its results. fn is a Lua
--- function without upvalues (it crosses as bytecode) or
--- `{ module = "name", fn = "field" }` (the worker requires the module).
---@param fn function|{ module: string, fn: string }
---@return poengine.Future
M.submit = pool.submit

--- Like submit, with the seconds the function ran on its worker (not
--- counting time in the queue) before its results: a future of
--- `seconds, ...`.
---@param fn function|{ module: string, fn: string }
---@return poengine.Future
M.submit_timed = pool.submit_timed

--- Many jobs, one callback, no future per job: `b = po.pool.batch(on_result,
--- shared...)`, then `b:submit(id, fn, ...)` for each job (id a whole number
--- from 1, unique among the batch's jobs in flight) runs `fn(shared...,
--- ...)` on a worker, timed like submit_timed. Submitted jobs are handed to
--- the workers together by `b:flush()` (a long burst in chunks of 64 as it
--- is submitted), or at the latest when the script next waits. Each finished job calls `on_result(id, seconds, ...)`, or
--- `on_result(id, nil, message, code)` (an error with its traceback,
--- ECANCELED), from the event loop. `b:cancel(id)` keeps a job that has
--- not started from running; `b:in_flight()` counts the jobs not yet
--- reported; `b:started(id)` is when job id started (po.now() seconds), or
--- nil while it is queued; `b:abandon(id)` leaves a running job to its
--- thread, which a new worker replaces, and the job is never reported
--- (true; false if it was not running). The shared values are copied once per batch, not per job.
--- po.validate runs its function validators this way.
---@param on_result fun(id: integer, seconds: number|nil, ...)
---@return userdata
M.batch = pool.batch

--- Sets the number of workers: `{ workers = n }`. Before the first submit,
--- or while no job is in flight (the running pool is stopped and the next
--- submit starts the new size).
---@param opts { workers?: integer }
M.configure = pool.configure

--- Stops the workers: queued jobs fail with ECANCELED, running ones finish
--- first. The next submit starts the pool again.
M.shutdown = pool.shutdown

--- `{ workers, started, queued, running, in_flight, abandoned }`
--- (abandoned: threads left running an abandoned job).
---@return table
M.stats = pool.stats

--- True inside a pool worker's own Lua state.
---@return boolean
M.in_worker = pool.in_worker

--- A job as bytes for another process: `po.pool.pack(fn, ...)` (fn as for
--- submit; its upvalues and the arguments as a worker gets them), and
--- `po.pool.unpack(s)` -> fn, ... there. `po.pool.encode(...)` and
--- `po.pool.decode(s)` carry plain values the same way.
M.pack, M.unpack, M.encode, M.decode = pool.pack, pool.unpack, pool.encode, pool.decode

--- The number of online CPUs (the default pool size).
---@return integer
M.cpu_count = pool.cpu_count

return M
