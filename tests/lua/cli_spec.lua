-- The poengine command line: running scripts, options, exit statuses,
-- subcommands, module lookup, and the same C code loaded into stock luajit.
local proc = require "tests.tools.proc"
local q = proc.quote

local function script_file(text)
  return proc.tempfile(text, ".lua")
end

local function tempdir()
  local path = os.tmpname()
  os.remove(path)
  assert(os.execute("mkdir -p " .. q(path)) == 0)
  return path
end

local function write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

describe("poengine script.lua", function()
  it("sets arg as luajit does and passes the arguments as ...", function()
    local s = script_file([[
      local n = select("#", ...)
      print(arg[0] == ... and "bad" or "ok", n, ..., arg[1], arg[2], arg[-1] ~= nil)
    ]])
    local status, out, err = proc.poengine(q(s) .. " one two")
    assert.are.equal(0, status, err)
    assert.are.equal("ok\t2\tone\tone\ttwo\ttrue\n", out)
    status, out = proc.poengine("-e 'x=1' " .. q(s) .. " a")
    assert.are.equal(0, status)
    local s2 = script_file([[print(arg[0], arg[-1], arg[-2], arg[1])]])
    status, out = proc.poengine("-e 'x=1' " .. q(s2) .. " a")
    assert.are.equal(s2 .. "\tx=1\t-e\ta\n", out)
    os.remove(s)
    os.remove(s2)
  end)

  it("presets the global po as the same table as require 'poengine'", function()
    local status, out = proc.poengine([[-e 'print(po == require("poengine"), type(po.now))']])
    assert.are.equal(0, status)
    assert.are.equal("true\tfunction\n", out)
  end)

  it("exits 0 on success and honours os.exit", function()
    assert.are.equal(0, (proc.poengine("-e 'local x = 1'")))
    assert.are.equal(7, (proc.poengine("-e 'os.exit(7)'")))
    assert.are.equal(1, (proc.poengine("-e 'os.exit(false)'")))
    assert.are.equal(0, (proc.poengine("-e 'os.exit(true)'")))
  end)

  it("closes the state on os.exit, so finalizers run before the process ends", function()
    local s = script_file([[
      local p = newproxy(true)
      getmetatable(p).__gc = function() io.stdout:write("finalized\n") end
      _G.keep = p
      po.sleep(0.001)
      os.exit(5)
    ]])
    local status, out = proc.poengine(q(s))
    os.remove(s)
    assert.are.equal(5, status)
    assert.are.equal("finalized\n", out)
  end)

  it("exits 1 on an uncaught error in the script with one line naming the place, and nothing else", function()
    local s = script_file("local function f() error('it broke') end\nf()\n")
    local status, out, err = proc.poengine(q(s))
    assert.are.equal(1, status)
    assert.are.equal("", out)
    assert.are.equal("poengine: " .. s .. ":1: it broke\n", err)
    -- With --traceback, or POENGINE_DEBUG=1, the stack comes too.
    status, out, err = proc.poengine("--traceback " .. q(s))
    assert.are.equal(1, status)
    assert.matches("^poengine: [^\n]*:1: it broke\nstack traceback:\n", err)
    assert.not_matches("lua_pcall", err)
    status, out, err = proc.sh("POENGINE_DEBUG=1 " .. q(proc.bin) .. " " .. q(s))
    assert.matches("^poengine: [^\n]*:1: it broke\nstack traceback:\n", err)
    os.remove(s)
  end)

  it("puts an API mistake on one line at the line of the script that made it", function()
    local s = script_file("local x = 1\npo.run { argv = { 'ls' }, timout = 1 }\n")
    local status, out, err = proc.poengine(q(s))
    os.remove(s)
    assert.are.equal(1, status)
    assert.are.equal("", out)
    assert.are.equal("poengine: " .. s .. ":2: po.run: unknown option 'timout'\n", err)
  end)

  it("keeps the traceback for a failure inside poengine's own modules (a bug)", function()
    local dir = tempdir()
    assert(os.execute("mkdir -p " .. q(dir .. "/poengine")) == 0)
    write(dir .. "/poengine/buggy.lua", "local M = {}\nfunction M.go(t) return t.field.x end\nreturn M\n")
    local s = script_file("require('poengine.buggy').go({})\n")
    local status, _, err = proc.sh("POENGINE_LUA_PATH=" .. q(dir) .. " " .. q(proc.bin) .. " " .. q(s))
    os.remove(s)
    os.execute("rm -rf " .. q(dir))
    assert.are.equal(1, status)
    assert.matches("^poengine: [^\n]*poengine/buggy.lua:2: attempt to index field 'field' %(a nil value%)\nstack traceback:\n", err)
    assert.matches("in function 'go'", err)
  end)

  it("exits 1 without a traceback for an error raised with a non-string value", function()
    local status, _, err = proc.poengine("-e 'error({ code = 3 })'")
    assert.are.equal(1, status)
    assert.are.equal("poengine: (error object is a table value)\n", err)
    status, _, err = proc.poengine("-e 'error()'") -- what busted raises to unwind
    assert.are.equal(1, status)
    assert.are.equal("", err)
  end)

  it("uses __tostring of an error object", function()
    local status, _, err = proc.poengine([[-e 'error(setmetatable({}, { __tostring = function() return "custom" end }))']])
    assert.are.equal(1, status)
    assert.matches("^poengine: custom\nstack traceback:", err)
  end)

  it("exits 1 on a syntax error, naming the place", function()
    local s = script_file("local = 1\n")
    local status, _, err = proc.poengine(q(s))
    os.remove(s)
    assert.are.equal(1, status)
    assert.matches("^poengine: [^\n]*:1: '<name>' expected near '='\n$", err)
  end)

  it("prints one clear line and exits 2 for a missing script", function()
    local status, out, err = proc.poengine("/no/such/flow.lua")
    assert.are.equal(2, status)
    assert.are.equal("", out)
    assert.are.equal("poengine: cannot open /no/such/flow.lua: No such file or directory\n", err)
  end)

  it("prints one clear line and exits 2 for a script that cannot be read", function()
    local dir = tempdir()
    local status, _, err = proc.poengine(q(dir))
    assert.are.equal(2, status)
    assert.are.equal("poengine: cannot run " .. dir .. ": it is a directory\n", err)
    os.execute("rmdir " .. q(dir))
  end)
end)

describe("options", function()
  it("-e runs code and -l requires a module into a global, in order", function()
    local status, out = proc.poengine([[-e 'print(poengine)' -l poengine -e 'print(poengine == po)']])
    assert.are.equal(0, status)
    assert.are.equal("nil\ntrue\n", out)
  end)

  it("-v and --version print poengine's version and its libraries'", function()
    for _, flag in ipairs { "-v", "--version" } do
      local status, out = proc.poengine(flag)
      assert.are.equal(0, status)
      assert.matches("^poengine %d+%.%d+%.%d+\nLuaJIT 2%.1[^\n]*\nLMDB %d+%.%d+%.%d+\ncJSON %d+%.%d+%.%d+\nlibcurl %d+%.%d+%.%d+\n$", out)
    end
  end)

  it("-h and --help print the usage and the subcommands on stdout", function()
    for _, flag in ipairs { "-h", "--help" } do
      local status, out, err = proc.poengine(flag)
      assert.are.equal(0, status, err)
      assert.matches("^usage: poengine %[options%] %[script %[args...%]%]", out)
      assert.matches("\n  test +run busted specs", out)
    end
  end)

  it("prints the usage on stderr and exits 2 for an unknown option", function()
    local status, out, err = proc.poengine("--frobnicate x.lua")
    assert.are.equal(2, status)
    assert.are.equal("", out)
    assert.matches("^poengine: unknown option '%-%-frobnicate'\nusage: ", err)
    status, _, err = proc.poengine("-e")
    assert.are.equal(2, status)
    assert.matches("option '%-e' needs an argument", err)
  end)

  it("- reads the script from standard input", function()
    local status, out = proc.poengine("- a b", "print('from stdin', ...)")
    assert.are.equal(0, status)
    assert.are.equal("from stdin\ta\tb\n", out)
  end)

  it("runs standard input when there is no script and no terminal", function()
    local status, out = proc.poengine("", "print(6 * 7)")
    assert.are.equal(0, status)
    assert.are.equal("42\n", out)
  end)

  it("-- ends the options", function()
    local dir = tempdir()
    write(dir .. "/-v", "print('a script named -v', ...)")
    local status, out = proc.sh("cd " .. q(dir) .. " && " .. q(proc.bin) .. " -- -v -e")
    assert.are.equal(0, status)
    assert.are.equal("a script named -v\t-e\n", out)
    os.execute("rm -rf " .. q(dir))
  end)

  it("offers an interactive prompt on a terminal", function()
    -- script(1) gives poengine a pseudo-terminal as standard input.
    local status, out = proc.sh("script -qec " .. q(q(proc.bin)) .. " /dev/null",
      "return 6 * 7\nt = {\n1 }\nprint('sum', t[1] + 1)\nerror('oops')\nprint('still here')\n")
    assert.are.equal(0, status)
    assert.matches("> ", out)
    assert.matches("42", out)
    assert.matches(">> ", out) -- the unfinished table continued on the next line
    assert.matches("sum\t2", out)
    assert.matches("oops", out)
    assert.matches("still here", out)
  end)

  it("reads =expr at the prompt as return expr, as luajit does", function()
    local status, out = proc.poengine("-i", "=6 * 7\nx = 5\n= x + 1, 'two'\n")
    assert.are.equal(0, status)
    assert.matches("42\n", out)
    assert.matches("6\ttwo\n", out)
  end)

  it("writes piped output line by line, not when the script ends", function()
    -- The script prints a line, then waits (at most 10 s) for a file the
    -- test makes only once it has read that line. Block-buffered output
    -- would hold the line back until the script ends, so the file would
    -- never appear in time.
    local flag = os.tmpname()
    os.remove(flag)
    local s = script_file(([[
      print("first")
      local deadline = po.now() + 10
      while po.now() < deadline and not io.open(%q) do po.sleep(0.01) end
      print(io.open(%q) and "saw the file" or "gave up")
    ]]):format(flag, flag))
    local p = assert(io.popen(q(proc.bin) .. " " .. q(s)))
    assert.are.equal("first", p:read("*l"))
    assert(io.open(flag, "w")):close()
    assert.are.equal("saw the file", p:read("*l"))
    p:close()
    os.remove(flag)
    os.remove(s)
  end)
end)

describe("subcommands", function()
  it("runs poengine.cli.NAME with its arguments and its exit status", function()
    local status, out = proc.poengine("test --version")
    assert.are.equal(0, status)
    assert.matches("^%d+%.%d+%.%d+\n$", out)
  end)

  it("finds subcommands added in POENGINE_LUA_PATH and lists them in --help", function()
    local dir = tempdir()
    os.execute("mkdir -p " .. q(dir .. "/poengine/cli"))
    write(dir .. "/poengine/cli/hello.lua", [[
      return { summary = "says hello", main = function(args)
        print("hello", #args, args[1], arg[0])
        return 3
      end }
    ]])
    local env = "POENGINE_LUA_PATH=" .. q(dir) .. " "
    local status, out = proc.sh(env .. q(proc.bin) .. " hello world")
    assert.are.equal(3, status)
    assert.are.equal("hello\t1\tworld\thello\n", out)
    status, out = proc.sh(env .. q(proc.bin) .. " --help")
    assert.are.equal(0, status)
    assert.matches("\n  hello +says hello\n", out)
    os.execute("rm -rf " .. q(dir))
  end)

  it("lets an existing file win over a subcommand of the same name", function()
    local dir = tempdir()
    write(dir .. "/test", "print('the file named test')")
    local status, out = proc.sh("cd " .. q(dir) .. " && " .. q(proc.bin) .. " test")
    assert.are.equal(0, status)
    assert.are.equal("the file named test\n", out)
    os.execute("rm -rf " .. q(dir))
  end)

  it("treats an unknown name as a missing script", function()
    local status, _, err = proc.poengine("no-such-subcommand")
    assert.are.equal(2, status)
    assert.are.equal("poengine: cannot open no-such-subcommand: No such file or directory\n", err)
  end)
end)

describe("Lua modules", function()
  it("are compiled into the binary", function()
    local dir = tempdir() -- an empty override path: nothing but the embedded bytecode
    local status, out, err = proc.sh("POENGINE_LUA_PATH=" .. q(dir) .. " " .. q(proc.bin)
      .. [[ -e 'local f = require "poengine.future"; print(debug.getinfo(f.async, "S").source)']])
    assert.are.equal(0, status, err)
    assert.are.equal("@lua/poengine/future.lua\n", out)
    os.execute("rm -rf " .. q(dir))
  end)

  it("come from POENGINE_LUA_PATH first, so Lua can be edited without rebuilding", function()
    local dir = tempdir()
    os.execute("mkdir -p " .. q(dir .. "/poengine/cli"))
    write(dir .. "/poengine/cli/test.lua", "return { main = function() print('overridden') return 0 end }")
    local status, out = proc.sh("POENGINE_LUA_PATH=" .. q("/nonexistent;" .. dir) .. " " .. q(proc.bin) .. " test")
    assert.are.equal(0, status)
    assert.are.equal("overridden\n", out)
    os.execute("rm -rf " .. q(dir))
  end)

  it("come from the source tree when the binary runs from its build directory", function()
    local status, out = proc.sh("env -u POENGINE_LUA_PATH " .. q(proc.bin)
      .. [[ -e 'print(debug.getinfo(require("poengine.future").async, "S").source)']])
    assert.are.equal(0, status)
    local src = os.getenv("POENGINE_SOURCE_DIR")
    if proc.bin:find(os.getenv("POENGINE_BUILD_DIR") or "\0", 1, true) == 1 then
      assert.are.equal("@" .. src .. "/lua/poengine/future.lua\n", out)
    end
  end)

  it("load into stock luajit through the poengine_core module", function()
    local moddir = os.getenv("POENGINE_MODULE_DIR") or "build"
    local code = [[
      local core = require "poengine_core"
      local po = require "poengine"
      local f = po.async(function() po.sleep(0.01) return core.version end)
      print(f:wait() == po.version, po.json ~= nil)
    ]]
    local preload = os.getenv("POENGINE_SANITIZER_PRELOAD") or ""
    if preload ~= "" then
      preload = "LD_PRELOAD=" .. q(preload) .. " "
    end
    local status, out, err = proc.sh(preload .. "LUA_CPATH=" .. q(moddir .. "/?.so;;") .. " luajit -e " .. q(code))
    assert.are.equal(0, status, err)
    assert.are.equal("true\ttrue\n", out)
  end)
end)

describe("poengine optimize with a mistake in the task file", function()
  local function task_file(text)
    local dir = tempdir()
    write(dir .. "/task.lua", text)
    return dir, dir .. "/task.lua"
  end

  it("names the file, the line and the field in one line, with the closest name", function()
    local dir, path = task_file([[
return {
  id = "t1",
  workdir = ".",
  target_files = { "task.lua" },
  objectve = { validator = po.validate.benchmark { argv = { "true" } } },
}
]])
    local status, out, err = proc.poengine("optimize " .. q(path))
    os.execute("rm -rf " .. q(dir))
    assert.are.equal(2, status)
    assert.are.equal("", out)
    assert.are.equal(1, select(2, err:gsub("\n", "")))
    assert.matches("^poengine optimize: " .. path:gsub("%p", "%%%0") .. ":5: unknown field 'task%.objectve' "
      .. "%(did you mean 'objective'%?%); a task's fields are apply, ", err)
  end)

  it("points at the line of a nested field with a wrong value", function()
    local dir, path = task_file([[
return {
  id = "t1",
  workdir = ".",
  target_files = { "task.lua" },
  objective = { validator = po.validate.benchmark { argv = { "true" } },
    direction = "down" },
}
]])
    local status, _, err = proc.poengine("optimize " .. q(path))
    os.execute("rm -rf " .. q(dir))
    assert.are.equal(2, status)
    assert.are.equal("poengine optimize: " .. path .. ":6: task.objective.direction must be 'min' or 'max'\n", err)
  end)
end)

describe("poengine optimize on a pipe", function()
  it("gives a phase that lasts more than a second one plain line; --verbose says what each candidate changed", function()
    local dir = tempdir()
    assert(os.execute("mkdir -p " .. q(dir .. "/w")) == 0)
    write(dir .. "/w/notes.txt", "spin\n")
    local spin = (os.getenv("POENGINE_BUILD_DIR") or "build") .. "/tests/bench_spin"
    write(dir .. "/w/task.lua", ([[
return {
  id = "plain-status", workdir = ".", target_files = { "notes.txt" },
  baseline_params = { rounds = 2000 },
  apply_params = function(params, dir)
    assert(po.files.write({ { path = "rounds.txt", content = tostring(params.rounds) } }, { root = dir })[1].ok)
  end,
  method = function() return { { params = { rounds = 1000 } } } end,
  validators = { { name = "slow check", run = { "sleep", "3" } } },
  objective = { direction = "min", validator = po.validate.benchmark { name = "spin",
    argv = { "sh", "-c", %q .. " $(cat rounds.txt)" }, metric = function(r) return tonumber(r.stdout) end } },
  budget = { cycles = 1 },
}
]]):format(spin))
    local status, out, err = proc.sh("POENGINE_HOME=" .. q(dir .. "/home") .. " " .. q(proc.bin) .. " optimize "
      .. q(dir .. "/w/task.lua") .. " --verbose | cat")
    os.execute("rm -rf " .. q(dir))
    assert.are.equal(0, status, err)
    local lines = {}
    for line in out:gmatch("[^\n]+") do
      lines[#lines + 1] = line
    end
    -- The 3-second validation of the cycle, then of the final check, each
    -- announced once, before what follows them.
    assert.are.equal("cycle 1 of 1: validating 1 candidates ...", lines[1])
    -- --verbose: what the candidate changed, beside its verdict.
    assert.matches("\n  c1%.1 %(rounds=1000%): faster, [%d.]+x %[", out)
    assert.matches("\ncycle 1 of 1: 1 candidates, 1 validated", out)
    assert.matches("\nfinal check: validating the original and the best %.%.%.\n", out)
    assert.are.equal(1, select(2, out:gsub("validating 1 candidates", "")))
    assert.not_matches("\27", out) -- no terminal control codes on a pipe
  end)
end)
