-- po.json: encode/decode, null, array/object marks, canonical output, every
-- error path, and the JSONTestSuite parsing corpus through decode.
local po = require "poengine"
local json = po.json

local encode, decode, null = json.encode, json.decode, json.null

local function sorted(v, opts)
  opts = opts or {}
  opts.sort_keys = true
  return encode(v, opts)
end

-- decode, then encode canonically
local function rt(text)
  local v, err = decode(text)
  assert(v ~= nil, err)
  return sorted(v)
end

local raises = require "tests.tools.raises"

local function decode_fails(text, message)
  local v, err, code = decode(text)
  assert.is_nil(v)
  assert.are.equal("EJSON", code)
  if message then assert.are.equal(message, err) end
  return err
end

describe("po.json", function()
  it("has exactly the documented API", function()
    local names = {}
    for k in pairs(json) do names[#names + 1] = k end
    table.sort(names)
    assert.are.same({ "array", "decode", "encode", "null", "object" }, names)
    assert.are.equal("userdata", type(null))
  end)

  describe("encode", function()
    it("writes scalars", function()
      assert.are.equal("null", encode(nil))
      assert.are.equal("null", encode(null))
      assert.are.equal("true", encode(true))
      assert.are.equal("false", encode(false))
      assert.are.equal('"hi"', encode("hi"))
      assert.are.equal("42", encode(42))
    end)

    it("writes integers up to 2^53 without exponent, and other numbers canonically", function()
      local cases = {
        { 0, "0" }, { -0.0, "-0" }, { 1, "1" }, { -1, "-1" }, { 123.0, "123" },
        { 2 ^ 31, "2147483648" }, { 2 ^ 53 - 1, "9007199254740991" }, { 2 ^ 53, "9007199254740992" },
        { -(2 ^ 53), "-9007199254740992" }, { 2 ^ 53 + 2, "9007199254740994" },
        { 0.1, "0.1" }, { 0.5, "0.5" }, { -2.5, "-2.5" }, { 1 / 3, "0.3333333333333333" },
        { 0.1 + 0.2, "0.30000000000000004" }, { 1e300, "1e+300" }, { 1e21, "1e+21" },
        { 1e-7, "1e-07" }, { 5e-324, "4.94065645841247e-324" }, { 1.7976931348623157e308, "1.7976931348623157e+308" },
      }
      for _, c in ipairs(cases) do
        assert.are.equal(c[2], encode(c[1]))
        -- and they read back exactly
        local back = decode("[" .. c[2] .. "]")[1]
        assert.are.equal(c[1], back)
      end
      assert.are.equal(1 / -math.huge, decode("-0")) -- sign of zero survives
      assert.are.equal(-math.huge, 1 / decode(encode(-0.0)))
    end)

    it("escapes only what JSON requires", function()
      assert.are.equal([["a\"b\\c/d"]], encode('a"b\\c/d'))
      assert.are.equal([["\n\r\t\b\f"]], encode("\n\r\t\b\f"))
      assert.are.equal([["\u0000\u0001\u001f\u000b"]], encode("\0\1\31\11"))
      assert.are.equal('"\127 é €"', encode("\127 é €"))
    end)

    it("writes arrays and objects without whitespace", function()
      assert.are.equal("[1,2,3]", encode({ 1, 2, 3 }))
      assert.are.equal('{"a":1}', encode({ a = 1 }))
      assert.are.equal('[[],{},[1,{"b":[true]}]]', encode({ json.array(), {}, { 1, { b = { true } } } }))
    end)

    it("encodes an unmarked empty table as {} and marked ones as marked", function()
      assert.are.equal("{}", encode({}))
      assert.are.equal("[]", encode(json.array()))
      assert.are.equal("[]", encode(json.array({})))
      assert.are.equal("{}", encode(json.object()))
      assert.are.equal('{"1":"a","2":"b"}', sorted(json.object({ "a", "b" })))
      assert.are.equal('["a","b"]', encode(json.array({ "a", "b" })))
    end)

    it("decides array or object from the keys", function()
      assert.are.equal("[1,null,3]", encode({ 1, nil, 3 }))
      assert.are.equal("[1,null,null,4]", encode({ [1] = 1, [4] = 4 })) -- n <= 2 * count
      assert.are.equal('{"1":1,"5":5}', sorted({ [1] = 1, [5] = 5 }))  -- too sparse: object
      assert.are.equal('{"1":1,"2":2,"n":2}', sorted({ 1, 2, n = 2 }))
      assert.are.equal('{"0":"z","1":"a"}', sorted({ [0] = "z", "a" }))
      assert.are.equal('{"1.5":true}', encode({ [1.5] = true }))
      assert.are.equal('{"-1":true}', encode({ [-1] = true }))
      assert.are.equal('[null,null,"c"]', encode(json.array({ null, null, "c" })))
    end)

    it("sort_keys output is canonical whatever the insertion order", function()
      local keys = {}
      for i = 1, 200 do keys[i] = "k" .. i end
      keys[#keys + 1] = ""
      keys[#keys + 1] = "a\0b"
      keys[#keys + 1] = "a"
      keys[#keys + 1] = "é"
      keys[#keys + 1] = "Z"
      local a, b = {}, {}
      for i = 1, #keys do a[keys[i]] = { i, { x = i, y = keys[i] } } end
      for i = #keys, 1, -1 do b[keys[i]] = { i, { y = keys[i], x = i } } end
      -- churn b's hash part so its internal order differs
      for i = 1, 500 do b["tmp" .. i] = i end
      for i = 1, 500 do b["tmp" .. i] = nil end
      local ea, eb = sorted(a), sorted(b)
      assert.are.equal(ea, eb)
      assert.are.equal(ea, sorted(decode(ea)))
    end)

    it("sorts keys by bytes, shorter first on a common prefix", function()
      assert.are.equal('{"":0,"A":1,"B":2,"a":3,"a\\u0000":4,"ab":5,"b":6,"é":7}',
        sorted({ b = 6, ["a\0"] = 4, a = 3, [""] = 0, ["é"] = 7, B = 2, ab = 5, A = 1 }))
      assert.are.equal('{"10":1,"9":2,"a":3}', sorted({ [10] = 1, [9] = 2, a = 3 }))
    end)

    it("indents with 2 spaces for true and n spaces for a number", function()
      local v = { a = { 1, { b = json.array(), c = json.object() } }, d = "x" }
      assert.are.equal([[
{
  "a": [
    1,
    {
      "b": [],
      "c": {}
    }
  ],
  "d": "x"
}]], encode(v, { indent = true, sort_keys = true }))
      assert.are.equal('{\n    "k": [\n        1\n    ]\n}', encode({ k = { 1 } }, { indent = 4 }))
      assert.are.equal('[\n1,\n2\n]', encode({ 1, 2 }, { indent = 0 }))
      assert.are.equal('[1,2]', encode({ 1, 2 }, { indent = false }))
      assert.are.equal("7", encode(7, { indent = true }))
    end)

    it("handles big strings and wide tables", function()
      local big = string.rep("x\0\"", 500000)
      assert.are.equal(big, decode(encode(big)))
      local t = {}
      for i = 1, 20000 do t["key" .. i] = i end
      assert.are.same(t, decode(sorted(t)))
      assert.are.equal(encode(t, { sort_keys = true }), sorted(decode(encode(t))))
    end)
  end)

  describe("encode errors", function()
    it("names a function, with the path", function()
      raises("po.json.encode: cannot encode a function at $.steps[2].run",
        encode, { steps = { { run = "ok" }, { run = print } } })
      raises("po.json.encode: cannot encode a function at $.steps[2].run",
        encode, { steps = { { run = "ok" }, { run = print } } }, { sort_keys = true })
    end)

    it("names userdata, threads and light userdata", function()
      raises("cannot encode a userdata at $[1]", encode, { io.stdout })
      raises("cannot encode a userdata at $.p", encode, { p = newproxy() })
      raises("cannot encode a thread at $", encode, coroutine.create(print))
    end)

    it("rejects NaN and infinities", function()
      raises("po.json.encode: cannot encode NaN at $.x", encode, { x = 0 / 0 })
      raises("po.json.encode: cannot encode inf at $[2]", encode, { 1, math.huge })
      raises("po.json.encode: cannot encode -inf at $", encode, -math.huge)
      raises("cannot encode an infinite number as a key at $", encode, { [math.huge] = 1 })
    end)

    it("quotes keys that are not identifiers in the path", function()
      raises('at $["a b"][1]["q\\"\\u0001"]', encode, { ["a b"] = { { ['q"\1'] = print } } })
      raises("at $[1.5]", encode, { [1.5] = print })
    end)

    it("detects cycles", function()
      local t = { a = {} }
      t.a.b = t
      raises("po.json.encode: cycle at $.a.b", encode, t)
      local arr = { 1 }
      arr[2] = arr
      raises("po.json.encode: cycle at $[2]", encode, arr, { sort_keys = true })
      -- the same table twice (not a cycle) is fine
      local shared = { 1 }
      assert.are.equal("[[1],[1]]", encode({ shared, shared }))
    end)

    it("limits nesting to 1000", function()
      local function nest(n)
        local t = {}
        local inner = t
        for _ = 2, n do
          local nt = {}
          inner[1] = nt
          inner = nt
        end
        return t
      end
      local ok = encode(nest(1000))
      assert.are.equal(string.rep("[", 999) .. "{}" .. string.rep("]", 999), ok)
      raises("po.json.encode: nesting deeper than 1000 at $[1][1]", encode, nest(1001))
    end)

    it("rejects bad key types, naming them", function()
      raises("po.json.encode: cannot encode a boolean key at $.x", encode, { x = { [true] = 1 } })
      raises("cannot encode a table key at $", encode, { [{}] = 1 }, { sort_keys = true })
      raises("po.json.array) has a string key", encode, json.array({ 1, x = 2 }))
      raises("too sparse", encode, json.array({ [1] = 1, [10] = 2 }))
    end)

    it("checks its arguments and options", function()
      raises("po.json.encode: value expected", encode)
      raises("po.json.encode: unknown option 'indnet'", encode, {}, { indnet = true })
      raises("po.json.encode: options must be a table, got string", encode, {}, "x")
      raises("po.json.encode: indent must be", encode, {}, { indent = "2" })
      raises("po.json.encode: indent must be", encode, {}, { indent = -1 })
      raises("po.json.encode: indent must be", encode, {}, { indent = 1.5 })
      raises("po.json.encode: sort_keys must be a boolean, got number", encode, {}, { sort_keys = 1 })
    end)

    it("stays correct when a finalizer encodes during an encode", function()
      local big = {}
      for i = 1, 2000 do big["k" .. i] = { i, "v" .. i } end
      local expect = sorted(big)
      -- With a pause of 0 the collector steps at each of encode's 2000 key
      -- pushes, so finalizers of the proxies run inside the encode.
      local encoding, inner = false, {}
      local pause = collectgarbage("setpause", 0)
      collectgarbage()
      for _ = 1, 200 do
        local p = newproxy(true)
        getmetatable(p).__gc = function() if encoding then inner[#inner + 1] = encode({ z = { 1 } }) end end
      end
      encoding = true
      local out = encode(big, { sort_keys = true })
      encoding = false
      collectgarbage("setpause", pause)
      assert.are.equal(expect, out)
      assert.is_true(#inner > 0, "no finalizer ran during the encode")
      for _, text in ipairs(inner) do assert.are.equal('{"z":[1]}', text) end
    end)

    it("still works after an error", function()
      pcall(encode, { a = { b = print } })
      assert.are.equal('{"a":[1]}', encode({ a = { 1 } }))
    end)
  end)

  describe("decode", function()
    it("reads every kind of value", function()
      local v = decode(' {"a": [1, -2.5e2, true, false, null, "s"], "b": {}} ')
      assert.are.equal(1, v.a[1])
      assert.are.equal(-250, v.a[2])
      assert.is_true(v.a[3])
      assert.is_false(v.a[4])
      assert.are.equal(null, v.a[5])
      assert.are.equal("s", v.a[6])
      assert.are.equal(6, #v.a)
      assert.are.same({}, v.b)
      assert.are.equal("x", decode('"x"'))
      assert.are.equal(3, decode("3"))
      assert.are.equal(null, decode("null"))
    end)

    it("marks decoded arrays and objects, so [] and {} round-trip", function()
      assert.are.equal("[]", encode(decode("[]")))
      assert.are.equal("{}", encode(decode("{}")))
      assert.are.equal('{"a":[],"b":{},"c":[{}]}', rt('{"c":[{}],"b":{},"a":[]}'))
      assert.are.equal(getmetatable(json.array()), getmetatable(decode("[1]")))
      assert.are.equal(getmetatable(json.object()), getmetatable(decode('{"a":1}')))
    end)

    it("round-trips nested values, unicode and embedded zeros", function()
      local v = {
        name = "caf\195\169 \226\130\172 \240\159\152\128",
        zeros = "a\0b\0",
        ["key\0with zero"] = { 1, 2, { deep = { "x" } } },
        list = json.array({ 1.5, -3, "", null, false }),
      }
      local text = sorted(v)
      local back = decode(text)
      assert.are.same(v, back)
      assert.are.equal(text, sorted(back))
      assert.are.equal(text, sorted(decode(encode(v, { indent = 3 }))))
    end)

    it("decodes \\u escapes, surrogate pairs and \\u0000 exactly", function()
      assert.are.equal("a\0b", decode('"a\\u0000b"'))
      assert.are.equal("\0", decode('"\\u0000"'))
      assert.are.equal("A\195\169\226\130\172\240\157\132\158", decode('"\\u0041\\u00e9\\u20AC\\uD834\\uDD1E"'))
      local t = decode('{"k\\u0000":"v\\u0000v","x":["\\u0000\\u0000", "plain"]}')
      assert.are.equal("v\0v", t["k\0"])
      assert.are.equal("\0\0", t.x[1])
      assert.are.equal("plain", t.x[2])
      assert.are.equal('"/"', encode(decode('"\\/"'))) -- \/ decodes to /, written back bare
      assert.are.equal("/", decode('"\\/"'))
    end)

    it("round-trips integers up to 2^53 and floats", function()
      for _, n in ipairs({ 0, 1, -1, 2 ^ 52 + 1, 2 ^ 53, -(2 ^ 53), 0.1, 1e300, -1e-300, 123456.789 }) do
        assert.are.equal(n, decode(encode(n)))
        assert.are.equal(n, decode(encode({ n }))[1])
      end
      -- 2^53+1 is not a double: it reads as the nearest one, 2^53, which
      -- writes back as 9007199254740992 (not the text it came from).
      assert.are.equal(2 ^ 53, decode("9007199254740993"))
      assert.are.equal("9007199254740992", encode(decode("9007199254740993")))
    end)

    it("reads numbers of any length", function()
      local long = "1234567890123456789012345678901234567890123456789012345678901234567890"
      assert.are.equal(tonumber(long), decode(long))
      assert.are.equal(tonumber("-" .. long .. "e-60"), decode("[-" .. long .. "e-60]")[1])
      assert.are.equal(math.huge, decode("[1e999]")[1])
      assert.are.equal(-math.huge, decode("-1e999"))
    end)

    it("keeps the last of repeated keys", function()
      assert.are.equal(2, decode('{"a":1,"a":2}').a)
    end)

    it("passes invalid UTF-8 through unchanged, both ways", function()
      local bad = "\255\254 \192\128 \237\160\128 \128"
      assert.are.equal(bad, decode('"' .. bad .. '"'))
      assert.are.equal('"' .. bad .. '"', encode(bad))
      assert.are.equal(bad, decode(encode(bad)))
    end)
  end)

  describe("decode errors", function()
    it("returns nil, a message with the byte offset, and EJSON", function()
      decode_fails("[01]", "po.json.decode: invalid number (leading zero) at byte 2")
      decode_fails("[1.]", "po.json.decode: invalid number at byte 3")
      decode_fails('{"a" 1}', "po.json.decode: expected ':' at byte 5")
      decode_fails("", "po.json.decode: unexpected end of input at byte 0")
      decode_fails("[1,2", "po.json.decode: unexpected end of input at byte 4")
      decode_fails('"a\tb"', "po.json.decode: control character in string at byte 2")
      decode_fails('"\\x"', "po.json.decode: invalid escape at byte 1")
      decode_fails('["\\uD800"]', "po.json.decode: unpaired surrogate in \\u escape at byte 2")
      decode_fails("[1,]", "po.json.decode: expected a value at byte 3")
      decode_fails("\239\187\191{}", "po.json.decode: expected a value at byte 0")
      decode_fails("[\f]", "po.json.decode: expected a value at byte 1")
      decode_fails("[1]\0", "po.json.decode: unexpected data after the JSON value at byte 3")
      decode_fails("[NaN]")
      decode_fails("[Infinity]")
    end)

    it("rejects trailing garbage", function()
      decode_fails("[1] x", "po.json.decode: unexpected data after the JSON value at byte 4")
      decode_fails("{}{}", "po.json.decode: unexpected data after the JSON value at byte 2")
      decode_fails("1 2")
      assert.are.same({ 1 }, decode(" [1] \n\t\r "))
    end)

    it("limits nesting to 1000", function()
      local ok = decode(string.rep("[", 1000) .. string.rep("]", 1000))
      local depth = 0
      while type(ok) == "table" do
        depth = depth + 1
        ok = ok[1]
      end
      assert.are.equal(1000, depth)
      decode_fails(string.rep("[", 1001) .. string.rep("]", 1001),
        "po.json.decode: nesting deeper than 1000 at byte 1000")
      decode_fails(string.rep('{"a":', 1001) .. "1" .. string.rep("}", 1001),
        "po.json.decode: nesting deeper than 1000 at byte 5000")
      decode_fails(string.rep("[", 100000)) -- no stack overflow
    end)

    it("raises on a non-string argument", function()
      raises("po.json.decode: text must be a string, got table", decode, {})
      raises("po.json.decode: text must be a string, got number", decode, 12)
      raises("po.json.decode: text must be a string, got no value", decode)
    end)
  end)

  describe("array and object marks", function()
    it("return the table they mark, or a new one", function()
      local t = { 1 }
      assert.are.equal(t, json.array(t))
      assert.are.equal(t, json.object(t))
      assert.are.equal('{"1":1}', encode(t)) -- the last mark wins
      assert.are.equal("table", type(json.array()))
      assert.are.equal("table", type(json.object(nil)))
    end)

    it("refuse tables with a foreign metatable and non-tables", function()
      raises("po.json.array: the table already has a metatable", json.array, setmetatable({}, {}))
      raises("po.json.object: t must be a table or nil, got string", json.object, "x")
    end)
  end)

  describe("the JSONTestSuite corpus", function()
    local dir = (os.getenv("POENGINE_SOURCE_DIR") or ".") .. "/../shared/corpora/JSONTestSuite/test_parsing"
    local listing = io.popen('ls "' .. dir .. '" 2>/dev/null')
    local files = {}
    for name in listing:lines() do
      if name:match("%.json$") then files[#files + 1] = name end
    end
    listing:close()

    -- The corpus is always beside the tree (and in CI): its absence fails,
    -- or the walk below would pass having read nothing.
    it("is present", function()
      assert(#files >= 300, "JSONTestSuite corpus not found (or incomplete) at " .. dir)
    end)

    it("decodes y_, rejects n_ with EJSON, survives i_", function()
      local counts = { y = 0, n = 0, i = 0 }
      for _, name in ipairs(files) do
        local f = assert(io.open(dir .. "/" .. name, "rb"))
        local text = f:read("*a")
        f:close()
        local kind = name:sub(1, 1)
        local ok, v, err, code = pcall(decode, text)
        assert(ok, name .. ": raised " .. tostring(v))
        if kind == "y" then
          assert(err == nil, name .. ": " .. tostring(err))
          -- and what it decodes to encodes and reads back the same
          local again = sorted(v)
          assert.are.equal(again, sorted(decode(again)))
        elseif kind == "n" then
          assert(v == nil and code == "EJSON", name .. " was accepted")
          assert(err:match("at byte %d+$"), name .. ": " .. err)
        end
        counts[kind] = (counts[kind] or 0) + 1
      end
      assert.is_true(counts.y >= 90)
      assert.is_true(counts.n >= 180)
    end)
  end)
end)
