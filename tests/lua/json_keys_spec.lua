-- po.json.encode at the edges of keys and options: a string key and a
-- number key with the same text, infinite keys under sort_keys, the widest
-- indent, and a mark replaced by the other.
local po = require "poengine"
local json = po.json
local encode = json.encode
local raises = require "tests.tools.raises"

describe("po.json.encode keys", function()
  it("sorts a string key before a number key of the same text", function()
    local t = { [1] = "number", ["1"] = "string", [1.5] = "x", ["1.5"] = "y" }
    assert.are.equal('{"1":"string","1":"number","1.5":"y","1.5":"x"}', encode(t, { sort_keys = true }))
  end)

  it("refuses an infinite key under sort_keys, of either sign", function()
    raises("po.json.encode: cannot encode an infinite number as a key at $.a", encode,
      { a = { [math.huge] = 1, b = 2 } }, { sort_keys = true })
    raises("po.json.encode: cannot encode an infinite number as a key at $", encode,
      { [-math.huge] = 1, b = 2 }, { sort_keys = true })
  end)
end)

describe("po.json.encode options", function()
  it("indents by up to 16 spaces", function()
    assert.are.equal("[\n" .. (" "):rep(16) .. "1\n]", encode({ 1 }, { indent = 16 }))
    raises("po.json.encode: indent must be true, false or an integer from 0 to 16", encode, { 1 }, { indent = 17 })
  end)

  it("are named by strings", function()
    raises("po.json.encode: option names must be strings, got number", encode, { 1 }, { true })
  end)
end)

describe("po.json marks", function()
  it("replace each other: the last one given decides", function()
    local t = json.object({ 1, 2 })
    assert.are.equal('{"1":1,"2":2}', encode(t, { sort_keys = true }))
    assert.are.equal(t, json.array(t))
    assert.are.equal("[1,2]", encode(t))
    assert.are.equal("[]", encode(json.array(json.object())))
  end)
end)
