-- po.run's checks of its spec, field by field (the ones proc_spec leaves
-- out), and what a spec that passes them does at the edges: a cwd that is
-- a file, a pid once the status went elsewhere.
local po = require "poengine"

local function raises(spec, message)
  assert.has_error(function() po.run(spec) end, message)
end

describe("po.run checks", function()
  it("names the field and what it got", function()
    raises({ argv = { "ls" }, timeout = "soon" }, "po.run: timeout must be a positive number of seconds, got string")
    raises({ argv = { "ls" }, timeout = 0 }, "po.run: timeout must be a positive number of seconds, got 0")
    raises({ argv = { "ls" }, kill_grace = -1 }, "po.run: kill_grace must be a non-negative number of seconds, got -1")
    raises({ argv = { "ls" }, env = "A=1" }, "po.run: env must be a table of name = value, got string")
    raises({ argv = { "ls" }, env = { "A=1" } }, "po.run: env names must be strings, got number")
    raises({ argv = { "ls" }, env = { ["A=B"] = "1" } }, "po.run: env name 'A=B' is not a valid variable name")
    raises({ argv = { "ls" }, env = { [""] = "1" } }, "po.run: env name '' is not a valid variable name")
    raises({ argv = { "ls" }, cwd = 5 }, "po.run: cwd must be a string, got number")
    raises({ argv = { "ls" }, stdin = {} }, "po.run: stdin must be a string, got table")
    raises({ argv = "ls" }, "po.run: argv must be a table of strings, got string")
    raises({ argv = { "ls" }, cmd = "ls" }, "po.run: give argv or cmd, not both")
    raises({ cmd = { "ls" }, shell = true }, "po.run: cmd must be a string, got table")
    raises({ argv = { "ls" }, shell = true }, 'po.run: shell = true needs cmd = "command line", not argv')
    raises({ argv = { "ls" }, output_limit = -1 }, "po.run: output_limit must be a non-negative whole number of bytes")
    raises({ argv = { "ls" }, cpu = "0" }, "po.run: cpu must be a non-negative whole number (one of po.cpus())")
  end)

  it("takes numbers in argv and env as strings, and false unsets inherited variables only", function()
    local r = po.run_sync { argv = { "sh", "-c", 'echo "$1 $N ${PO_GONE-unset}"', "sh", 42 }, env = { N = 7, PO_GONE = false } }
    assert.are.equal("42 7 unset\n", r.stdout)
    r = po.run_sync { argv = { "/usr/bin/env" }, inherit_env = false, env = { GONE = false, KEPT = "k" } }
    assert.are.equal("KEPT=k\n", r.stdout)
  end)

  it("reports a cwd that is a file as not a directory", function()
    local path = os.tmpname()
    local r = po.run_sync { argv = { "true" }, cwd = path }
    os.remove(path)
    assert.are.equal("error", r.status)
    assert.are.equal("cannot change directory to '" .. path .. "': Not a directory", r.error)
    assert.is_nil(r.code)
  end)

  it("names signals by number for results recorded elsewhere", function()
    local core = require "poengine_core"
    assert.are.equal("SIGKILL", core.signal_name(9))
    assert.are.equal("SIGTERM", core.signal_name(15))
    assert.is_nil(core.signal_name(0))
    assert.is_nil(core.signal_name(4096))
  end)

  it("reports a CPU outside the mask as a run that could not start", function()
    local r = po.run_sync { argv = { "true" }, cpu = 999999 }
    assert.are.equal("error", r.status)
    assert.matches("^cannot pin to the CPU: ", r.error)
  end)
end)
