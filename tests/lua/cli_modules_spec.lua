-- Where the CLI's Lua modules come from, and what it says when one cannot
-- be loaded: a copy of poengine outside its build directory uses only the
-- embedded modules; a module with a syntax error in POENGINE_LUA_PATH is
-- named with its file; -v says when libcurl cannot be loaded.
local proc = require "tests.tools.proc"
local q = proc.quote

local build = os.getenv("POENGINE_BUILD_DIR") or "build"
local shim = build .. "/tests/libfaultshim.so"

-- The source a copy of poengine in dir, with POENGINE_LUA_PATH unset, loads
-- poengine.future from.
local function future_source_of_copy_in(dir)
  assert(os.execute("mkdir -p " .. q(dir) .. " && cp " .. q(proc.bin) .. " " .. q(dir .. "/poengine")) == 0)
  local status, out, err = proc.sh("env -u POENGINE_LUA_PATH " .. q(dir .. "/poengine")
    .. [[ -e 'print(debug.getinfo(require("poengine.future").async, "S").source)']])
  proc.rmdir(dir)
  assert.are.equal(0, status, err)
  return out
end
local sanitizer = os.getenv("POENGINE_EXE_SANITIZER_PRELOAD") or ""

describe("an installed poengine", function()
  it("uses its embedded modules, not the source tree, when POENGINE_LUA_PATH is unset", function()
    assert.are.equal("@lua/poengine/future.lua\n", future_source_of_copy_in(proc.tempdir()))
  end)

  it("is not taken for the build's own binary in a directory whose name only starts like the build's", function()
    assert.are.equal("@lua/poengine/future.lua\n", future_source_of_copy_in(build .. "-copy"))
  end)
end)

describe("a module of POENGINE_LUA_PATH with a syntax error", function()
  it("is named with its file, at the line of the script that required it", function()
    local dir = proc.tempdir()
    assert(os.execute("mkdir -p " .. q(dir .. "/poengine")) == 0)
    local f = assert(io.open(dir .. "/poengine/bad.lua", "wb"))
    f:write("local x = = 1\n")
    f:close()
    local s = proc.tempfile("local ok = true\nrequire 'poengine.bad'\n", ".lua")
    local status, out, err = proc.sh("POENGINE_LUA_PATH=" .. q(dir) .. " " .. q(proc.bin) .. " " .. q(s))
    os.remove(s)
    proc.rmdir(dir)
    assert.are.equal(1, status)
    assert.are.equal("", out)
    local file = dir .. "/poengine/bad.lua"
    assert.are.equal("poengine: " .. s .. ":2: error loading module 'poengine.bad' from file '" .. file .. "':\n\t"
      .. file .. ":1: unexpected symbol near '='\n", err)
  end)
end)

describe("poengine -v", function()
  it("says libcurl is unavailable when it cannot be loaded", function()
    local preload = sanitizer ~= "" and (sanitizer .. ":" .. shim) or shim
    local status, out, err = proc.sh("POENGINE_FAULT='dlopen~curl:1+' LD_PRELOAD=" .. q(preload) .. " "
      .. q(proc.bin) .. " -v")
    assert.are.equal(0, status, err)
    assert.matches("\nlibcurl unavailable\n$", out)
    assert.matches("faultshim: dlopen failed", err)
  end)
end)
