--- One optimizer run as people judge it, read from its directory (what
--- po.optimizer writes under <home>/runs/<id>): the event log
--- (events.jsonl: start, candidate, cycle, final, end) and the last
--- checkpoint in the run's store. Nothing here writes; a run still being
--- written is read as far as its complete lines go.
---
--- m = { id, dir, task, method, direction, status, started, updated,
---       cycles, original_score, best_score, best, final, cost,
---       candidates, chain, cycle_outcomes, warning }
--- (docs/scripting.md, "Runs").
local po = require "poengine"
local checkpoint = require "poengine.optimizer.checkpoint"
local record = require "poengine.optimizer.record"
local result = require "poengine.optimizer.result"
local score = require "poengine.optimizer.score"

local M = {}

local function file_size(path)
  local f = io.open(path, "rb")
  if not f then
    return nil
  end
  local size = f:seek("end")
  f:close()
  return size
end

--- The events of `dir`'s event log from byte `offset` (default 0): a list
--- of decoded tables, complete lines only, the offset just past the last
--- complete line (where the next read starts), and the list of each
--- event's own end offset (a stream's resumption points). A line that is
--- not JSON is skipped. nil, message, "ENOENT" when there is no event log.
---@param dir string
---@param offset? integer
---@return table[]|nil events, integer|string offset, integer[]|string ends
function M.events(dir, offset)
  offset = offset or 0
  local f, err = io.open(dir .. "/events.jsonl", "rb")
  if not f then
    return nil, "no event log in " .. dir .. ": " .. tostring(err), "ENOENT"
  end
  local size = f:seek("end")
  if offset > size then
    offset = 0 -- the log was started afresh (a new run under the same id)
  end
  f:seek("set", offset)
  local text = f:read("*a") or ""
  f:close()
  local events, ends, pos = {}, {}, 1
  while true do
    local nl = text:find("\n", pos, true)
    if not nl then
      break
    end
    local ev = po.json.decode(text:sub(pos, nl - 1))
    if type(ev) == "table" then
      events[#events + 1] = ev
      ends[#events] = offset + nl
    end
    pos = nl + 1
  end
  return events, offset + pos - 1, ends
end

--- Is the process that wrote a start event (its pid and process_start)
--- still running? The pid alone could have been reused; its start time (in
--- ticks since boot) cannot.
function M.alive(start)
  if type(start.pid) ~= "number" then
    return false
  end
  local pid, ticks = record.process(math.floor(start.pid))
  if not pid then
    return false
  end
  return not start.process_start or ticks == start.process_start
end

-- Days from 1970-01-01 to a date of the proleptic Gregorian calendar
-- (Howard Hinnant's days_from_civil): UTC arithmetic that no time zone or
-- daylight-saving rule of the reader's machine can shift.
local function days_from_civil(y, m, d)
  y = m <= 2 and y - 1 or y
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local doy = math.floor((153 * (m + (m > 2 and -3 or 9)) + 2) / 5) + d - 1
  local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end

-- Seconds since the epoch of an event's "time" (UTC, "%Y-%m-%dT%H:%M:%SZ").
local function epoch(stamp)
  local y, mo, d, h, mi, s = tostring(stamp or ""):match("^(%d+)-(%d+)-(%d+)T(%d+):(%d+):(%d+)Z$")
  if not y then
    return nil
  end
  return days_from_civil(tonumber(y), tonumber(mo), tonumber(d)) * 86400 + tonumber(h) * 3600 + tonumber(mi) * 60
    + tonumber(s)
end
M.epoch = epoch

-- id and parent: the candidate's and its parent's ids as the run knows
-- them (qualified by worker in a run of several).
local function candidate_of(ev, id, parent)
  return {
    cycle = ev.cycle, id = id, parent = parent, worker = ev.worker,
    change = record.describe_change { params = ev.params, diff = ev.diff } or "",
    params = ev.params, diff = ev.diff, stage = ev.stage, verdict = ev.verdict, speedup = ev.speedup,
    ci_low = ev.ci_low, ci_high = ev.ci_high, runs = ev.runs, confirm = ev.confirm,
    accepted = ev.accepted == true, malformed = ev.malformed, results = ev.results or {},
    cost = ev.cost, score = ev.score, time = ev.time,
  }
end

local function outcomes_of(list, cycle)
  local o = record.outcomes(list)
  o.cycle = cycle
  return o
end

-- A mirrored run's figures from its workers' own (per[worker]): the
-- summed cost, the best worker's score, chain and final check, and
-- m.workers. Returns whether some worker started and every one that did
-- has ended.
local function merge_workers(m, names, per)
  local usd, tokens = 0, 0
  local best
  local all_ended, started = true, false
  m.workers = {}
  for _, name in ipairs(names) do
    local ws = per[name]
    if ws.spent then
      usd, tokens = usd + (ws.spent.usd or 0), tokens + (ws.spent.tokens or 0)
    end
    if ws.start and not ws.finished then
      all_ended = false
    end
    started = started or ws.start ~= nil
    if type(ws.best_score) == "number" and (not best or score.better(m.direction, ws.best_score, best.best_score)) then
      best = ws
    end
    m.workers[#m.workers + 1] = { name = name, status = ws.finished and "finished" or "running",
      candidates = ws.candidates, best_score = ws.best_score, cost = ws.spent and { usd = ws.spent.usd or 0,
      tokens = ws.spent.tokens or 0 } or nil }
  end
  m.cost = { usd = usd, tokens = tokens }
  if best then
    m.best_score, m.chain, m.final = best.best_score, best.chain, best.final
  end
  return all_ended and started
end

-- The workers that published a mirrored run's events (poengine.runs.mirror
-- adds `worker` to each), in order of appearance; empty for a local run.
local function workers_of(events)
  local list, seen = {}, {}
  for _, ev in ipairs(events) do
    local w = ev.worker
    if type(w) == "string" and not seen[w] then
      seen[w] = true
      list[#list + 1] = w
    end
  end
  return list
end

--- Builds the model from a list of events (as M.events gives them) and the
--- run's last checkpoint (or nil); `dir` names the run.
---
--- A run mirrored from a stream that several workers published to is one
--- run of several lineages: each worker's candidate ids are qualified as
--- "<worker>/<id>" (so two workers' "1.1" stay apart), each worker's
--- start, cycles and end are its own, the cost is their sum, the best is
--- the best worker's (with its chain), and the run is finished when every
--- worker has ended. m.workers lists them.
function M.build(dir, events, cp)
  local m = {
    id = dir:match("([^/]+)/*$") or dir, dir = dir, direction = "min", status = "stopped", cycles = 0,
    cost = { usd = 0, tokens = 0 }, candidates = {}, chain = { "original" }, cycle_outcomes = {},
  }
  local worker_names = workers_of(events)
  local multi = #worker_names > 1
  local function qualified(ev, id)
    if id == nil then
      return nil
    end
    id = tostring(id)
    return (multi and id ~= "original") and (tostring(ev.worker) .. "/" .. id) or id
  end
  local per = {} -- worker (or "") -> { start, finished, spent, best_score, chain }
  local function worker_state(ev)
    local w = ev.worker or ""
    per[w] = per[w] or { chain = { "original" }, candidates = 0 }
    return per[w]
  end
  local start, finished
  local by_cycle, order = {}, {}
  local pending, pending_order, listed = {}, {}, {} -- validated, not yet recorded with their cycle
  for _, ev in ipairs(events) do
    local kind = ev.kind
    local ws = worker_state(ev)
    m.task = m.task or ev.task
    m.updated = epoch(ev.time) or m.updated
    if kind == "start" then
      if not start then
        m.started = ev.started or epoch(ev.time)
      end
      start = ev
      finished = nil -- a resumed run is going again
      ws.start, ws.finished = ev, nil
      -- the cycle a killed process left is run again
      for id, pev in pairs(pending) do
        if pev.worker == ev.worker then
          pending[id] = nil
        end
      end
      m.method, m.direction = ev.method or m.method, ev.direction or m.direction
    elseif kind == "validated" and type(ev.cycle) == "number" then
      local id = qualified(ev, ev.candidate)
      if not pending[id] and not listed[id] then
        pending_order[#pending_order + 1] = id
        listed[id] = true
      end
      pending[id] = ev
    elseif kind == "candidate" and type(ev.cycle) == "number" then
      local id = qualified(ev, ev.candidate)
      pending[id] = nil
      local c = candidate_of(ev, id, qualified(ev, ev.parent))
      m.candidates[#m.candidates + 1] = c
      ws.candidates = ws.candidates + 1
      if not by_cycle[ev.cycle] then
        by_cycle[ev.cycle] = {}
        order[#order + 1] = ev.cycle
      end
      local list = by_cycle[ev.cycle]
      list[#list + 1] = c
      if c.accepted then
        m.chain[#m.chain + 1] = c.id
        ws.chain[#ws.chain + 1] = c.id
      end
    elseif kind == "cycle" then
      ws.spent = ev.spent or ws.spent
      ws.best_score = ev.best_score or ws.best_score
      if ev.spent then
        m.cost = { usd = ev.spent.usd or 0, tokens = ev.spent.tokens or 0 }
      end
      m.best_score = ev.best_score or m.best_score
      m.original_score = ev.original_score or m.original_score
      if type(ev.cycle) == "number" and ev.cycle > m.cycles then
        m.cycles = ev.cycle
      end
      if ev.failed and type(ev.cycle) == "number" and not by_cycle[ev.cycle] then
        by_cycle[ev.cycle] = {}
        order[#order + 1] = ev.cycle
      end
    elseif kind == "final" then
      finished = finished or ev -- a run written before end events existed
      ws.finished = ws.finished or ev
    elseif kind == "end" then
      finished = ev
      ws.finished, ws.spent, ws.best_score, ws.final = ev, ev.spent or ws.spent, ev.best_score or ws.best_score, ev.final
      m.final = ev.final
      m.warning = ev.warning
      m.original_score = ev.original_score or m.original_score
      m.best_score = ev.best_score or m.best_score
      if ev.spent then
        m.cost = { usd = ev.spent.usd or 0, tokens = ev.spent.tokens or 0 }
      end
    end
  end
  -- The first candidate of each cycle's parent is the previous accepted
  -- one when the log predates parent fields.
  local parent = "original"
  for _, k in ipairs(order) do
    for _, c in ipairs(by_cycle[k]) do
      c.parent = c.parent or parent
    end
    for _, c in ipairs(by_cycle[k]) do
      if c.accepted then
        parent = c.id
      end
    end
    m.cycle_outcomes[#m.cycle_outcomes + 1] = outcomes_of(by_cycle[k], k)
    if k > m.cycles then
      m.cycles = k
    end
  end
  -- The cycle in progress: its candidates validated so far, not yet timed
  -- (pending; in no outcome count until their cycle is recorded).
  for _, id in ipairs(pending_order) do
    local ev = pending[id]
    if ev then
      local c = candidate_of(ev, id, qualified(ev, ev.parent))
      c.pending = true
      c.parent = c.parent or parent
      c.stage = ev.passed and nil or c.stage
      c.passed = ev.passed
      m.candidates[#m.candidates + 1] = c
    end
  end
  if cp then
    m.cycles = math.max(m.cycles, cp.cycle or 0)
    m.best_score = m.best_score or cp.best_score
    m.original_score = m.original_score or (cp.original and cp.original.score)
    if cp.spent and (cp.spent.usd or 0) >= m.cost.usd then
      m.cost = { usd = cp.spent.usd or 0, tokens = cp.spent.tokens or 0 }
    end
    m.task = m.task or cp.task
  end
  if #worker_names > 0 then
    finished = merge_workers(m, worker_names, per)
    -- Its workers' processes are on other machines: a worker that has not
    -- ended is taken as running.
    m.status = finished and "finished" or (start and "running" or m.status)
  elseif finished then
    m.status = "finished"
  elseif start and M.alive(start) then
    m.status = "running"
  end
  if start and not finished and #worker_names == 0 then
    m.process = { pid = start.pid, process_start = start.process_start }
  end
  -- The best over the original: the final side-by-side check's verdict
  -- when there is one (an interval from one set of interleaved runs);
  -- else the ratio of the scores the cycles measured, without interval.
  if m.final and m.final.speedup then
    m.best = { speedup = m.final.speedup, ci_low = m.final.ci_low, ci_high = m.final.ci_high,
      verdict = m.final.verdict, source = "final check" }
  else
    local ratio = result.improvement(m.direction, m.original_score, m.best_score)
    if ratio then
      m.best = { speedup = ratio, source = "cycle scores" }
    end
  end
  return m
end

--- The model of the run in `dir`; nil, message, code when `dir` holds no
--- run (ENOENT) or its store cannot be read.
---@param dir string
---@return table|nil model, string? message, string? code
function M.load(dir)
  if type(dir) ~= "string" or dir == "" then
    error("poengine.runs.model.load: dir must be a non-empty string", 2)
  end
  dir = dir:gsub("/+$", "")
  local events, err, code = M.events(dir)
  if not events then
    return nil, err, code
  end
  -- Cycle and end events carry what the checkpoint holds; only a log
  -- written before they existed needs the run's store (an LMDB open, which
  -- a reader of a run being written or removed is better without).
  local cp
  local has_cycles = false
  for _, ev in ipairs(events) do
    if ev.kind == "cycle" or ev.kind == "end" then
      has_cycles = true
      break
    end
  end
  if not has_cycles and file_size(dir .. "/store/data.mdb") then
    cp = checkpoint.last(dir .. "/store") -- an unreadable checkpoint leaves the events' figures
  end
  return M.build(dir, events, cp)
end

return M
