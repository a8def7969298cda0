-- The command line's error paths: where an error is located, what a script
-- that cannot be opened or read says, the options' joined and missing
-- forms, and a session at the prompt that meets errors and goes on.
local proc = require "tests.tools.proc"
local q = proc.quote

local function with_script(text, fn)
  local s = proc.tempfile(text, ".lua")
  local ok, err = pcall(fn, s)
  os.remove(s)
  assert(ok, err)
end

describe("an error raised without a location", function()
  it("is located at the innermost line of the script", function()
    with_script("local x = 1\nerror('boom', 0)\n", function(s)
      local status, out, err = proc.poengine(q(s))
      assert.are.equal(1, status)
      assert.are.equal("", out)
      assert.are.equal("poengine: " .. s .. ":2: boom\n", err)
    end)
  end)

  it("is located even when it holds a 'name:digits' that is not a location", function()
    -- "file.c:12x" has no ": " after the digits; the second line is not searched
    with_script("error('see file.c:12x or a:b\\nx.lua:3: no', 0)\n", function(s)
      local status, _, err = proc.poengine(q(s))
      assert.are.equal(1, status)
      assert.are.equal("poengine: " .. s .. ":1: see file.c:12x or a:b\nx.lua:3: no\n", err)
    end)
  end)

  it("skips poengine's own frames, in any directory of POENGINE_LUA_PATH", function()
    local dir = proc.tempdir()
    assert(os.execute("mkdir -p " .. q(dir .. "/poengine")) == 0)
    local f = assert(io.open(dir .. "/poengine/strict.lua", "wb"))
    f:write("local M = {}\nfunction M.check(v)\n  if not v then error('po.strict: v is required', 0) end\nend\nreturn M\n")
    f:close()
    with_script("local strict = require 'poengine.strict'\n\nstrict.check(nil)\n", function(s)
      local env = "POENGINE_LUA_PATH=" .. q("/nonexistent;;" .. dir) .. " "
      local status, _, err = proc.sh(env .. q(proc.bin) .. " " .. q(s))
      assert.are.equal(1, status)
      assert.are.equal("poengine: " .. s .. ":3: po.strict: v is required\n", err)
    end)
    proc.rmdir(dir)
  end)

  it("from -e has no file of the user's to point at, and stays as it is", function()
    local status, _, err = proc.poengine("-e \"error('plain', 0)\"")
    assert.are.equal(1, status)
    assert.are.equal("poengine: plain\n", err)
  end)

  it("keeps a number raised at level 0 as it is, without a traceback", function()
    local status, _, err = proc.poengine("-e 'error(42, 0)'")
    assert.are.equal(1, status)
    assert.are.equal("poengine: 42\n", err)
  end)

  it("names the type of an error object whose __tostring gives no string", function()
    local status, _, err = proc.poengine([[-e 'error(setmetatable({}, { __tostring = function() return {} end }))']])
    assert.are.equal(1, status)
    assert.are.equal("poengine: (error object is a table value)\n", err)
  end)
end)

describe("POENGINE_DEBUG", function()
  it("set empty or to 0 leaves the traceback off", function()
    with_script("error('it broke')\n", function(s)
      for _, value in ipairs { "''", "0" } do
        local status, _, err = proc.sh("POENGINE_DEBUG=" .. value .. " " .. q(proc.bin) .. " " .. q(s))
        assert.are.equal(1, status)
        assert.are.equal("poengine: " .. s .. ":1: it broke\n", err)
      end
    end)
  end)
end)

describe("a script that cannot be opened or read", function()
  it("exits 2 naming the path and the reason", function()
    local status, out, err = proc.poengine("/etc/passwd/flow.lua")
    assert.are.equal(2, status)
    assert.are.equal("", out)
    assert.are.equal("poengine: cannot open /etc/passwd/flow.lua: Not a directory\n", err)
  end)

  it("exits 2 when reading fails after the file opened", function()
    -- /proc/self/mem opens, and its first page (unmapped) answers EIO
    local status, _, err = proc.poengine("/proc/self/mem")
    assert.are.equal(2, status)
    assert.are.equal("poengine: cannot read /proc/self/mem: Input/output error\n", err)
  end)

  it("is a missing script, not a subcommand, when the name cannot be one", function()
    -- subcommand modules under every name; only [a-z][a-z0-9_-]* names run
    local dir = proc.tempdir()
    assert(os.execute("mkdir -p " .. q(dir .. "/poengine/cli")) == 0)
    local names = { "hello_2-x", "Test", "9test", "te$t", "~test" }
    for _, name in ipairs(names) do
      local f = assert(io.open(dir .. "/poengine/cli/" .. name .. ".lua", "wb"))
      f:write("return { main = function() print('ran " .. name .. "') return 0 end }\n")
      f:close()
    end
    local env = "POENGINE_LUA_PATH=" .. q(dir) .. " "
    local status, out, err = proc.sh(env .. q(proc.bin) .. " hello_2-x")
    assert.are.equal(0, status, err)
    assert.are.equal("ran hello_2-x\n", out)
    for i = 2, #names do
      status, out, err = proc.sh(env .. q(proc.bin) .. " " .. q(names[i]))
      assert.are.equal(2, status)
      assert.are.equal("", out)
      assert.are.equal("poengine: cannot open " .. names[i] .. ": No such file or directory\n", err)
    end
    proc.rmdir(dir)
  end)

  it("exits 1 with the message when a subcommand raises", function()
    local dir = proc.tempdir()
    assert(os.execute("mkdir -p " .. q(dir .. "/poengine/cli")) == 0)
    local f = assert(io.open(dir .. "/poengine/cli/broken.lua", "wb"))
    f:write("return 42\n")
    f:close()
    local status, _, err = proc.sh("POENGINE_LUA_PATH=" .. q(dir) .. " " .. q(proc.bin) .. " broken")
    proc.rmdir(dir)
    assert.are.equal(1, status)
    assert.are.equal("poengine: poengine: subcommand module poengine.cli.broken does not return a table with main(args)\n", err)
  end)
end)

describe("-e and -l", function()
  it("take their value joined or as the next argument", function()
    local status, out, err = proc.poengine("'-eprint(1)' -lpoengine -e 'print(poengine == po)'")
    assert.are.equal(0, status, err)
    assert.are.equal("1\ntrue\n", out)
  end)

  it("stop at the first that fails, exiting 1", function()
    local status, out, err = proc.poengine("-e 'x =' -e 'print(1)'")
    assert.are.equal(1, status)
    assert.are.equal("", out)
    assert.are.equal("poengine: (command line):1: unexpected symbol near '<eof>'\n", err)
    status, out, err = proc.poengine("-l no.such.module -e 'print(1)'")
    assert.are.equal(1, status)
    assert.are.equal("", out)
    assert.matches("^poengine: module 'no.such.module' not found:\n", err)
  end)

  it("-l without a name is a usage error", function()
    local status, out, err = proc.poengine("-e 'print(1)' -l")
    assert.are.equal(2, status)
    assert.are.equal("", out)
    assert.matches("^poengine: option '%-l' needs an argument\nusage: ", err)
  end)
end)

describe("-v and -i with a script", function()
  it("-v prints the versions, then runs the script", function()
    with_script("print('script ran')\n", function(s)
      local status, out = proc.poengine("-v " .. q(s))
      assert.are.equal(0, status)
      assert.matches("^poengine %d+%.%d+%.%d+\n.*\nscript ran\n$", out)
    end)
  end)

  it("-i runs the script, then the prompt, which reports errors and goes on", function()
    local input = table.concat({
      "for i = 1, 2 do",           -- incomplete: continued on the next line
      "io.write(i, ';') end",
      "x = = 1",                   -- a syntax error
      "print = function() error('no print') end",
      "=1",                        -- printing the value fails
      "io.stdout:write('still here\\n')",
    }, "\n") .. "\n"
    with_script("io.write('script ran\\n')\n", function(s)
      local status, out, err = proc.poengine("-i " .. q(s), input)
      assert.are.equal(0, status)
      assert.are.equal("script ran\n> >> 1;2;> > > > still here\n> \n", out)
      assert.are.equal("poengine: stdin:1: unexpected symbol near '='\npoengine: stdin:1: no print\n"
        .. "poengine: stdin:1: no print\n", err)
    end)
  end)

  it("-i does not start the prompt when the script fails", function()
    with_script("error('early')\n", function(s)
      local status, out, err = proc.poengine("-i " .. q(s), "print('not run')\n")
      assert.are.equal(1, status)
      assert.are.equal("", out)
      assert.are.equal("poengine: " .. s .. ":1: early\n", err)
    end)
  end)
end)
