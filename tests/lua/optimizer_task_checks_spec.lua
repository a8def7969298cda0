-- A task is code the user wrote: each mistake raises naming the field
-- (po.optimizer.check_task), a task file that cannot load says why with
-- ETASK (po.optimizer.load_task), a search's own options are checked, and
-- the timing phase's Slurm settings gain --exclusive once.
local po = require "poengine"
local raises = require "tests.tools.raises"
local proc = require "tests.tools.proc"
local search = require "poengine.optimizer.search"
local task_mod = require "poengine.optimizer.task"

local function valid()
  return {
    id = "t", workdir = "/tmp", target_files = { "a.txt" },
    objective = { validator = po.validate.benchmark { name = "b", argv = { "true" } } },
  }
end

local function with(changes)
  local t = valid()
  for k, v in pairs(changes) do
    t[k] = v
  end
  return t
end

local function without(field)
  local t = valid()
  t[field] = nil
  return t
end

local function objective(changes)
  local t = valid()
  for k, v in pairs(changes) do
    t.objective[k] = v
  end
  return t
end

describe("po.optimizer.check_task", function()
  it("fills in the defaults of a valid task without changing the caller's table", function()
    local given = valid()
    local t = po.optimizer.check_task(given)
    assert.are.equal("min", t.objective.direction)
    assert.are.equal(4, t.candidates_per_cycle)
    assert.are.equal(10, t.budget.cycles)
    assert.is_false(t.apply)
    assert.is_nil(given.budget)
  end)

  it("names the field of each mistake", function()
    for _, case in ipairs {
      { "po.optimizer: task must be a table, got string", "t" },
      { "po.optimizer: task.id must be a name of letters, digits, '_', '.' or '-'", with { id = "a b" } },
      { "po.optimizer: task.id must be a string, got boolean", with { id = false } },
      { "po.optimizer: task.workdir is required", without "workdir" },
      { "po.optimizer: task.target_files must list at least one file", with { target_files = {} } },
      { "po.optimizer: task.target_files[2]: ", with { target_files = { "a.txt", "../b.txt" } } },
      { "po.optimizer: task.objective.validator must be a validator (po.validate.benchmark{...})",
        with { objective = {} } },
      { "po.optimizer: task.objective.validator must be a validator", objective { validator = { name = "x" } } },
      { "po.optimizer: task.objective.direction must be 'min' or 'max'", objective { direction = "down" } },
      { "po.optimizer: task.objective.confirm must be a boolean", objective { confirm = "yes" } },
      { "po.optimizer: task.objective.pareto must be a boolean", objective { pareto = 1 } },
      { "po.optimizer: task.objective.directions must be a list of 'min' and 'max'", objective { directions = {} } },
      { "po.optimizer: task.objective.directions must be a list of 'min' and 'max'",
        objective { directions = { "min", "up" } } },
      { "po.optimizer: task.objective.alpha must be a number in (0, 0.5)", objective { alpha = 0.5 } },
      { "po.optimizer: task.objective.alpha must be a number in (0, 0.5)", objective { alpha = 0 } },
      { "po.optimizer: task.objective.min_effect must be a number in [0, 1)", objective { min_effect = 1 } },
      { "po.optimizer: task.objective.max_runs must be a whole number of at least 2", objective { max_runs = 2.5 } },
      { "po.optimizer: task.objective.max_runs must be a whole number of at least 2", objective { max_runs = 1 } },
      { "po.optimizer: task.objective.warmup must be a whole number of at least 0", objective { warmup = -1 } },
      { "po.optimizer: task.method must be 'llm-rewrite', 'llm-diff', 'search' or a function",
        with { method = "guess" } },
      { "po.optimizer: task.space is required with method 'search'", with { method = "search" } },
    } do
      raises(case[1], po.optimizer.check_task, case[2])
    end
    -- edges that are allowed
    po.optimizer.check_task(objective { min_effect = 0, warmup = 0, max_runs = 2, directions = { "min", "max" } })
  end)
end)

describe("po.optimizer.load_task", function()
  local dir
  before_each(function()
    dir = proc.tempdir()
  end)
  after_each(function()
    proc.rmdir(dir)
  end)
  local function file(name, text)
    local path = dir .. "/" .. name
    assert(po.write_file(path, text))
    return path
  end

  it("says why a task file cannot be used, with ETASK", function()
    local task, err, code = po.optimizer.load_task(file("syntax.lua", "return {"))
    assert.is_nil(task)
    assert.are.equal("ETASK", code)
    assert.matches("syntax%.lua:1: ", err)
    task, err, code = po.optimizer.load_task(file("raises.lua", "error('no such setting', 0)"))
    assert.is_nil(task)
    assert.are.equal("ETASK", code)
    assert.are.equal("task file " .. dir .. "/raises.lua failed: no such setting", err)
    task, err, code = po.optimizer.load_task(file("number.lua", "return 42"))
    assert.is_nil(task)
    assert.are.equal("ETASK", code)
    assert.are.equal("task file " .. dir .. "/number.lua must return a table, got number", err)
  end)

  it("takes a relative workdir from the file's directory", function()
    local task = assert(po.optimizer.load_task(file("rel.lua", "return { workdir = 'project' }")))
    assert.are.equal(dir .. "/project", task.workdir)
    task = assert(po.optimizer.load_task(file("abs.lua", "return { workdir = '/srv/project' }")))
    assert.are.equal("/srv/project", task.workdir)
  end)
end)

describe("the search's own checks", function()
  it("raises naming the option or parameter", function()
    raises("search.new: opts must be a table", search.new, "grid")
    raises("search.new: strategy must be 'grid', 'random' or 'hill', got best", search.new,
      { space = { a = { 1, 2 } }, strategy = "best" })
    raises("search.new: direction must be 'min' or 'max'", search.new, { space = { a = { 1, 2 } }, direction = "up" })
    raises("search: space must be a non-empty table of parameters", search.new, { space = {} })
    raises("search: parameter names must be strings", search.new, { space = { { 1, 2 } } })
    raises("search: start value 3 is not among the values of 'a'", search.new,
      { space = { a = { 1, 2 } }, start = { a = 3 } })
  end)
end)

describe("the timing phase's executor", function()
  it("is local (nil) unless Slurm, and a Slurm one gets --exclusive once", function()
    assert.is_nil(task_mod.timing_executor(nil))
    assert.is_nil(task_mod.timing_executor { kind = "local" })
    local ex = task_mod.timing_executor { kind = "slurm", extra_args = { "--nice=5" } }
    assert.are.same({ "--nice=5", "--exclusive" }, ex.extra_args)
    local given = { kind = "slurm", extra_args = { "--exclusive=user", "--nice=5" } }
    ex = task_mod.timing_executor(given)
    assert.are.same({ "--exclusive=user", "--nice=5" }, ex.extra_args)
    assert.are_not.equal(given, ex) -- a copy: the task's own settings are left as they were
    ex = task_mod.timing_executor { kind = "slurm" }
    assert.are.same({ "--exclusive" }, ex.extra_args)
  end)
end)
