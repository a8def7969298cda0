-- poengine.util.options: the option and field names check the Lua modules
-- share; what it raises, and where the error points.
local options = require "poengine.util.options"

local function message(fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok)
  return err
end

describe("poengine.util.options.check", function()
  local allowed = { size = "number", name = "string", anything = true }

  it("returns the table when every name is known and every type right", function()
    local t = { size = 3, name = "x", anything = {} }
    assert.are.equal(t, options.check("f", t, allowed, 1))
    assert.are.same({}, options.check("f", {}, allowed, 1))
  end)

  it("names the function and the unknown key, as an option or another noun, with a prefix", function()
    assert.matches("f: unknown option 'sise'$", message(options.check, "f", { sise = 1 }, allowed, 1))
    assert.matches("f: unknown field 'sise'$", message(options.check, "f", { sise = 1 }, allowed, 1, "field"))
    assert.matches("f: unknown option 'semantic%.sise'$",
      message(options.check, "f", { sise = 1 }, allowed, 1, nil, "semantic."))
    assert.matches("f: unknown option '1'$", message(options.check, "f", { 5 }, allowed, 1))
  end)

  it("names the key, its expected type and the type given", function()
    assert.matches("f: size must be a number, got string$", message(options.check, "f", { size = "3" }, allowed, 1))
    assert.matches("f: task%.name must be a string, got table$",
      message(options.check, "f", { name = {} }, allowed, 1, "field", "task."))
  end)

  it("points the error at the level the caller asks for", function()
    local function api(opts)
      options.check("api", opts, allowed, 2)
    end
    local line = debug.getinfo(1, "l").currentline + 1
    local err = message(function() api { bad = true } end)
    assert.matches("util_options_spec%.lua:" .. line .. ": api: unknown option 'bad'$", err)
  end)
end)
