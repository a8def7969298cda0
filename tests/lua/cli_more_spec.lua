-- The CLI's subcommand dispatch with a subcommand found on the Lua path:
-- the exit status each kind of return value gives, a module loaded once,
-- a module that is not a subcommand; and `poengine store`'s argument
-- parsing.
local cli = require "poengine.cli"
local store_cli = require "poengine.cli.store"
local proc = require "tests.tools.proc"

describe("poengine's subcommands from the Lua path", function()
  local dir, saved_path
  setup(function()
    dir = proc.tempdir()
    assert(os.execute("mkdir -p " .. proc.quote(dir .. "/poengine/cli")) == 0)
    local function write(name, text)
      local f = assert(io.open(dir .. "/poengine/cli/" .. name .. ".lua", "w"))
      f:write(text)
      f:close()
    end
    -- The status is what main returns, given as the first argument.
    write("specstatus", [=[
      local values = { ["true"] = true, ["false"] = false, ["nil"] = nil, three = "3", word = "many", seven = 7 }
      return { main = function(args) return values[args[1]] end }
    ]=])
    write("specbroken", "return 42\n")
    saved_path = package.path
    package.path = dir .. "/?.lua;" .. package.path
  end)
  teardown(function()
    package.path = saved_path
    package.loaded["poengine.cli.specstatus"], package.loaded["poengine.cli.specbroken"] = nil, nil
    proc.rmdir(dir)
  end)

  it("exit with 0 for true or nothing, 1 for false or a word, and a number as it is", function()
    local got = {}
    for _, v in ipairs { "true", "nil", "false", "word", "three", "seven" } do
      got[#got + 1] = cli.run("specstatus", { v })
    end
    assert.are.same({ 0, 0, 1, 1, 3, 7 }, got)
    assert.is_true(cli.find("specstatus")) -- loaded now: found without searching
  end)

  it("raise when the module does not return a table with main; nil for one that is not there", function()
    assert.has_error(function() cli.run("specbroken", {}) end,
      "poengine: subcommand module poengine.cli.specbroken does not return a table with main(args)")
    assert.is_nil(cli.run("specnowhere", {}))
  end)
end)

describe("poengine store's arguments", function()
  it("help alone or after check; one directory at most; a command first", function()
    assert.are.same({ help = true }, store_cli.parse { "--help" })
    assert.are.same({ repair = false, help = true }, store_cli.parse { "check", "-h" })
    assert.are.same({ nil, "unexpected argument 'b'" }, { store_cli.parse { "check", "a", "b" } })
    assert.are.same({ nil, "unexpected argument '--fix'" }, { store_cli.parse { "check", "--fix" } })
    assert.are.same({ nil, "a command is needed" }, { store_cli.parse {} })
  end)
end)
