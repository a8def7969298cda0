--- An optimizer run's state on disk, in its directory: the collector and
--- the checkpoint log in the run's store (LMDB; a checkpoint is committed
--- after each cycle, so a process killed at any moment leaves the last
--- one), and the event log. A run opens them fresh, or resumes from the
--- last checkpoint.
local po = require "poengine"
local buffer = require "string.buffer"

local M = {}

local VERSION = 1

--- Commits the optimizer's state after a cycle; true, or nil, message, code.
function M.save(self)
  local state = {
    version = VERSION,
    task = self.task.id,
    cycle = self.cycle,
    baseline = self.baseline,
    original = self.original,
    best_score = self.best_score,
    accepted = self.accepted,
    stall = self.stall,
    evidence = self.evidence,
    spent = self:spent(),
    search = self.searcher and { seen = self.searcher.seen, proposed = self.searcher.proposed,
      best = self.searcher.best, current = self.searcher.current, next_index = self.searcher.next_index },
  }
  local ok, err, code = self.checkpoints:append(string.char(VERSION) .. buffer.encode(state), 3)
  if not ok then
    return nil, err, code
  end
  return true
end

-- The last checkpoint, nil when there is none, or nil, message.
local function load(log)
  local last = log:tail(1)
  if not last or #last == 0 then
    return nil
  end
  local bytes = last[1]
  if type(bytes) ~= "string" or bytes:byte(1) ~= VERSION then
    return nil, "the checkpoint was written by an unknown version"
  end
  return buffer.decode(bytes:sub(2))
end

--- The last checkpoint of the run whose store is `store_dir`, read
--- without changing anything: the state table, nil when there is none,
--- or nil, message, code.
function M.last(store_dir)
  local log, err, code = po.store.log(store_dir, "checkpoints")
  if not log then
    return nil, err, code
  end
  local cp, perr = load(log)
  log:close()
  if perr then
    return nil, perr, "ECHECKPOINT"
  end
  return cp
end

local function restore(self, cp)
  self.cycle = cp.cycle
  self.baseline = cp.baseline
  self.original = cp.original
  self.best_score = cp.best_score
  self.first_score = cp.original.score
  self.accepted = cp.accepted
  self.stall = cp.stall
  self.evidence = cp.evidence
  self.prior_spent = cp.spent
  if self.searcher and cp.search then
    for k, v in pairs(cp.search) do
      self.searcher[k] = v
    end
  end
  self.resumed_from = cp.cycle
end

-- Closes what open() opened before it failed; returns nil, message, code.
local function abandon(self, own_collector, message, code)
  if self.checkpoints then
    self.checkpoints:close()
    self.checkpoints = nil
  end
  if own_collector then
    self.collector:close()
  end
  return nil, message, code
end

--- Opens the run's state for optimizer self in self.out_dir: sets
--- self.collector (opts.collector, else one persisted in the run's store),
--- self.checkpoints, self.events and self.events_path; with opts.resume,
--- restores self from the last checkpoint, else clears the history of
--- the run's own store. Returns true, or nil, message, code having closed
--- what it opened.
function M.open(self, opts)
  local out_dir = self.out_dir
  local own = not opts.collector
  local col, cerr, ccode = opts.collector or po.metrics.collector { path = out_dir .. "/store", max_history = 10000 }
  if not col then
    return nil, "po.optimizer: cannot open the run's collector: " .. tostring(cerr), ccode
  end
  self.collector = col
  local log, err, code = po.store.log(out_dir .. "/store", "checkpoints", { durability = "full" })
  if not log then
    return abandon(self, own, "po.optimizer: cannot open the run's store: " .. tostring(err), code)
  end
  self.checkpoints = log
  if opts.resume then
    local cp, perr = load(log)
    if perr then
      return abandon(self, own, "po.optimizer: cannot resume: " .. perr, "ECHECKPOINT")
    end
    if cp then
      restore(self, cp)
    end
  else
    -- A new run starts its history afresh (the cache, elsewhere, is kept).
    log:clear()
    if own then
      col:clear()
    end
  end
  self.events_path = out_dir .. "/events.jsonl"
  local events, eerr = io.open(self.events_path, opts.resume and "a" or "w")
  if not events then
    return abandon(self, own, "po.optimizer: cannot open the event log: " .. tostring(eerr), "EIO")
  end
  self.events = events
  return true
end

return M
