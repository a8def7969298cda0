-- po.executor's and a Slurm run's argument checks: each raises before
-- anything is submitted (no cluster is needed), at the caller's line,
-- naming the field; and a POENGINE_EXECUTOR that names no executor.
local po = require "poengine"
local proc = require "tests.tools.proc"

-- Calls fn(...) from this file; checks that it raises `message` at this file's line.
local function raises_here(message, fn, ...)
  local args = { n = select("#", ...), ... }
  local ok, err = pcall(function() fn(unpack(args, 1, args.n)) end)
  assert.is_false(ok, "expected an error: " .. message)
  assert.truthy(tostring(err):match("^[^:]*executor_args_spec%.lua:%d+: "), "not at the caller's line: " .. tostring(err))
  assert.are.equal(message, (tostring(err):gsub("^[^:]*:%d+: ", "")))
end

local function slurm(spec)
  spec.executor = "slurm"
  return spec
end

describe("a Slurm run's spec", function()
  it("is checked as a local one is: argv or cmd, shell, env, timeout, kill_grace, output_limit", function()
    local cases = {
      { { argv = { "true" }, cmd = "true", shell = true }, "po.run: give argv or cmd, not both" },
      { { cmd = "true" }, "po.run: cmd needs shell = true (a command line never goes to a shell implicitly); or pass "
        .. "argv = {...}" },
      { {}, "po.run: argv (a list of strings) is required" },
      { { argv = { "true" }, shell = true }, "po.run: shell = true needs cmd = \"command line\", not argv" },
      { { argv = { "echo", {} } }, "po.run: argv[2] must be a string, got table" },
      { { argv = { "true" }, env = { ["1X"] = "a" } }, "po.run: env name '1X' is not a valid variable name" },
      { { argv = { "true" }, env = { X = true } }, "po.run: env.X must be a string, a number or false (to unset it), "
        .. "got boolean" },
      { { argv = { "true" }, timeout = 0 }, "po.run: timeout must be a positive number of seconds, got 0" },
      { { argv = { "true" }, kill_grace = -1 }, "po.run: kill_grace must be a non-negative number of seconds, got -1" },
      { { argv = { "true" }, output_limit = 1.5 }, "po.run: output_limit must be a non-negative whole number of bytes" },
    }
    for _, case in ipairs(cases) do
      raises_here(case[2], po.run, slurm(case[1]))
    end
  end)
end)

describe("po.executor.configure", function()
  it("takes a table with a kind, and Slurm options of their types", function()
    raises_here("po.executor.configure: options must be a table, got string", po.executor.configure, "slurm")
    raises_here("po.executor.configure: kind (\"local\" or \"slurm\") is required", po.executor.configure, {})
    raises_here("po.executor.configure: mem must be a string or a number (Slurm's --mem), got table",
      po.executor.configure, { kind = "slurm", mem = {} })
    raises_here("po.executor.configure: extra_args[2] must be a string, got number", po.executor.configure,
      { kind = "slurm", extra_args = { "--exclusive", 5 } })
  end)
end)

describe("POENGINE_EXECUTOR", function()
  it("that names no executor stops a run that uses the default, saying what it must be", function()
    local path = proc.tempfile('local po = require "poengine"\nprint(po.run_sync { argv = { "true" }, executor = "default" }.status)\n', ".lua")
    local status, out, err = proc.sh("POENGINE_EXECUTOR=cloud " .. proc.quote(proc.bin) .. " " .. proc.quote(path))
    os.remove(path)
    assert.are_not.equal(0, status)
    assert.are.equal("", out)
    assert.truthy(err:find("po.executor: POENGINE_EXECUTOR must be \"local\" or \"slurm\", got \"cloud\"", 1, true), err)
  end)
end)
