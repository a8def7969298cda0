--- The optimizer's task: the checks that raise on a mistake in a task
--- (a task is code the user wrote), the defaults filled in, and task files.
--- docs/optimizer.md lists every field.
local po = require "poengine"
local diff = require "poengine.optimizer.diff"
local options = require "poengine.util.options"

local M = {}

local format = string.format

local TASK_FIELDS = {
  id = "string", description = "string", workdir = "string", target_files = "table", objective = "table",
  validators = "table", method = true, candidates_per_cycle = "number", budget = "table", stop = "table",
  apply = "boolean", space = "table", strategy = "string", seed = "number", prompts = "table",
  model = "string", apply_params = "function", write_params = "function", baseline_params = "table", score = "function",
  keep_sandboxes = "boolean",
  publish = true, -- a table or a redis:// URL: checked by poengine.runs.publish
  max_tokens = "number", temperature = "number", router = "table",
  executor = true, shared_dir = "string", -- where command validators run; sandboxes then on shared_dir
  timing_executor = true, -- where the timing phase measures (default here, see docs/optimizer.md)
}

--- The timing phase's executor settings from resolved ones: nil for local
--- (the default); on Slurm with `--exclusive` added, so that a timed run
--- has its node to itself.
function M.timing_executor(ex)
  if not ex or ex.kind ~= "slurm" then
    return nil
  end
  local copy, args = {}, {}
  for k, v in pairs(ex) do
    copy[k] = v
  end
  for i, a in ipairs(ex.extra_args or {}) do
    if a == "--exclusive" or a:match("^%-%-exclusive=") then
      return copy
    end
    args[i] = a
  end
  args[#args + 1] = "--exclusive"
  copy.extra_args = args
  return copy
end

--- Checks a task and fills in defaults; raises naming the field on a
--- mistake (a task is code the user wrote). Returns the checked task.
---@param task table
function M.check(task)
  if type(task) ~= "table" then
    error("po.optimizer: task must be a table, got " .. type(task), 3)
  end
  options.check("po.optimizer", task, TASK_FIELDS, 3, "field", "task.")
  if task.executor ~= nil then
    po.executor.resolve(task.executor, "po.optimizer: task", "default")
  end
  local timing_ex = task.timing_executor ~= nil
    and po.executor.resolve(task.timing_executor, "po.optimizer: task.timing_executor", "local")
  local t = {}
  for k, v in pairs(task) do
    t[k] = v
  end
  t.timing_executor = M.timing_executor(timing_ex)
  if not t.id or not t.id:match("^[%w_.%-]+$") then
    error("po.optimizer: task.id must be a name of letters, digits, '_', '.' or '-'", 3)
  end
  if not t.workdir then
    error("po.optimizer: task.workdir is required", 3)
  end
  if not t.target_files or #t.target_files == 0 then
    error("po.optimizer: task.target_files must list at least one file", 3)
  end
  for i, path in ipairs(t.target_files) do
    local norm, why = diff.check_path(path)
    if not norm then
      error(format("po.optimizer: task.target_files[%d]: %s", i, why), 3)
    end
    t.target_files[i] = norm
  end
  local o = t.objective
  if not o or type(o.validator) ~= "table" or o.validator.run == nil then
    error("po.optimizer: task.objective.validator must be a validator (po.validate.benchmark{...})", 3)
  end
  o.direction = o.direction or "min"
  if o.direction ~= "min" and o.direction ~= "max" then
    error("po.optimizer: task.objective.direction must be 'min' or 'max'", 3)
  end
  -- The timing phase's rule (docs/optimizer.md, "Timing").
  local ranges = {
    alpha = { 0, 0.5, "a number in (0, 0.5)" }, min_effect = { 0, 1, "a number in [0, 1)", true },
    max_runs = { 2, 10000, "a whole number of at least 2", true, true },
    warmup = { 0, 1000, "a whole number of at least 0", true, true },
  }
  for _, name in ipairs { "confirm", "pareto" } do
    if o[name] ~= nil and type(o[name]) ~= "boolean" then
      error("po.optimizer: task.objective." .. name .. " must be a boolean", 3)
    end
  end
  -- Tuple scores: one direction per component (docs/optimizer.md, "Scores").
  if o.directions ~= nil then
    local ok = type(o.directions) == "table" and #o.directions > 0
    for _, d in ipairs(ok and o.directions or {}) do
      ok = ok and (d == "min" or d == "max")
    end
    if not ok then
      error("po.optimizer: task.objective.directions must be a list of 'min' and 'max'", 3)
    end
  end
  for name, r in pairs(ranges) do
    local x = o[name]
    if x ~= nil then
      local lo_ok = type(x) == "number" and (x > r[1] or (r[4] and x == r[1]))
      if not (lo_ok and x < r[2] and (not r[5] or x % 1 == 0)) then
        error(format("po.optimizer: task.objective.%s must be %s", name, r[3]), 3)
      end
    end
  end
  t.validators = t.validators or {}
  t.method = t.method or "llm-rewrite"
  local m = t.method
  if type(m) ~= "function" and m ~= "llm-rewrite" and m ~= "llm-diff" and m ~= "search" then
    error("po.optimizer: task.method must be 'llm-rewrite', 'llm-diff', 'search' or a function", 3)
  end
  if m == "search" and not t.space then
    error("po.optimizer: task.space is required with method 'search'", 3)
  end
  if m == "search" and not t.apply_params then
    -- By default a point of the space reaches the validators as params.json
    -- in the sandbox (function validators also get candidate.params).
    t.apply_params = function(params, dir)
      local r = po.files.write({ { path = "params.json", content = po.json.encode(params, { sort_keys = true }) } },
        { root = dir })
      assert(r[1].ok, r[1].err)
    end
  end
  t.candidates_per_cycle = t.candidates_per_cycle or 4
  t.budget = t.budget or {}
  t.budget.cycles = t.budget.cycles or 10
  t.stop = t.stop or {}
  t.apply = t.apply or false
  return t
end

-- Edit distance of two short names, for "did you mean".
local function distance(a, b)
  local prev = {}
  for j = 0, #b do
    prev[j] = j
  end
  for i = 1, #a do
    local cur = { [0] = i }
    for j = 1, #b do
      local cost = a:byte(i) == b:byte(j) and 0 or 1
      cur[j] = math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
    end
    prev = cur
  end
  return prev[#b]
end

--- Turns a task check's error into one line for people: the task file and
--- the line where the field is set, the problem, and for an unknown field
--- the closest known name and the list of fields. msg is what M.check
--- raised (with or without a location in front).
---@param path string the task file
---@param msg string
---@return string
function M.explain(path, msg)
  local problem = tostring(msg):gsub("^[^\n]-:%d+: ", ""):gsub("^po%.optimizer: ", "")
  -- The innermost name of the field's path: "task.objective.direction"
  -- is set on the line that says "direction =".
  local dotted = problem:match("task%.([%w_%.]+)")
  local field = dotted and dotted:gsub("%.+$", ""):match("([%w_]+)$")
  local line
  if field then
    local f = io.open(path)
    if f then
      local n = 0
      for text in f:lines() do
        n = n + 1
        if text:find("%f[%w_]" .. field .. "%s*=") then
          line = n
          break
        end
      end
      f:close()
    end
  end
  local unknown = problem:match("^unknown field 'task%.([%w_]+)'")
  if unknown then
    local names, best, best_d = {}, nil, 3
    for name in pairs(TASK_FIELDS) do
      names[#names + 1] = name
      local d = distance(unknown, name)
      if d < best_d then
        best, best_d = name, d
      end
    end
    table.sort(names)
    problem = problem .. (best and (" (did you mean '" .. best .. "'?)") or "")
      .. "; a task's fields are " .. table.concat(names, ", ")
  end
  return (line and (path .. ":" .. line) or path) .. ": " .. problem
end

--- Loads a task file (a Lua file returning a task table); relative paths in
--- the task (workdir) are taken from the file's directory.
---@param path string
function M.load(path)
  local chunk, err = loadfile(path)
  if not chunk then
    return nil, err, "ETASK"
  end
  local ok, task = pcall(chunk)
  if not ok then
    return nil, "task file " .. path .. " failed: " .. tostring(task), "ETASK"
  end
  if type(task) ~= "table" then
    return nil, "task file " .. path .. " must return a table, got " .. type(task), "ETASK"
  end
  local dir = path:match("^(.*)/[^/]*$") or "."
  if task.workdir and task.workdir:sub(1, 1) ~= "/" then
    task.workdir = dir .. "/" .. task.workdir
  end
  return task
end

return M
