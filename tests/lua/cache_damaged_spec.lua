-- po.cache over a damaged store, and the edges of its Lua layer: a record
-- whose header or JSON value was overwritten on disk is reported (ESTORE,
-- EJSON), on the FFI fast path and the binding's alike; the semantic
-- tier's text of requests with content parts; options and embedders that
-- are refused; every method of a closed cache raises.
local po = require "poengine"
local proc = require "tests.tools.proc"
local raises = require "tests.tools.raises"

local n = 0
local function ns()
  n = n + 1
  return "damaged" .. n
end

-- The size of the header in front of each record's key (cache_disk_internal.h's entry_hdr).
local ENTRY_HDR = 40

-- Overwrites the store's bytes: `edit(data, at)` returns the new data, `at`
-- being where `marker` is in it (each record is its header, key, value).
local function damage(dir, marker, edit)
  local path = dir .. "/data.mdb"
  local data = proc.read(path)
  local at = assert(data:find(marker, 1, true), "the record is not in the store")
  assert(not data:find(marker, at + 1, true), "the record is in the store twice")
  proc.write(path, edit(data, at))
end

describe("po.cache over a damaged store", function()
  local dir
  before_each(function()
    dir = proc.tempdir()
  end)
  after_each(function()
    proc.rmdir(dir)
  end)

  it("a stored table whose JSON was cut is EJSON, naming the decoder's complaint", function()
    local name = ns()
    local c = assert(po.cache.open { path = dir, namespace = name })
    assert(c:set("k", { v = "MARKER-0123456789" }))
    c:close()
    damage(dir, '"MARKER-0123456789"', function(data, at)
      return data:sub(1, at - 1) .. '"MARKER-0123456789!' .. data:sub(at + 19)
    end)
    c = assert(po.cache.open { path = dir, namespace = name })
    local v, msg, code = c:get("k")
    assert.are.same({ nil, "EJSON" }, { v, code })
    assert.matches("^cache:get: a stored table does not decode: po%.json%.decode: unterminated string", msg)
    c:close()
  end)

  it("a record of another version is ESTORE, for a string key (FFI path) and a request key alike", function()
    local req = { model = "m", messages = { { role = "user", content = "what is 2 + 2?" } } }
    for _, key in ipairs { "kkkk", req } do
      local name = ns()
      local c = assert(po.cache.open { path = dir, namespace = name })
      assert(c:set(key, "VALUE-MARKER"))
      c:close()
      damage(dir, "VALUE-MARKER", function(data, at)
        -- the header is where its klen says the key runs up to the value
        for start = at - ENTRY_HDR - 1, 1, -1 do
          local klen = at - start - ENTRY_HDR
          local b1, b2, b3, b4 = data:byte(start + 4, start + 7)
          if b1 + 256 * (b2 + 256 * (b3 + 256 * b4)) == klen and data:byte(start) == 1 then
            return data:sub(1, start - 1) .. "\99" .. data:sub(start + 1)
          end
        end
        error("no record header in front of the value")
      end)
      c = assert(po.cache.open { path = dir, namespace = name })
      local v, msg, code = c:get(key)
      assert.are.same({ nil, "ESTORE" }, { v, code })
      assert.matches("^cache:get: a cache entry record has version %d+, not %d+$", msg)
      c:close()
      os.execute("rm -rf " .. proc.quote(dir) .. "/*")
    end
  end)
end)

describe("po.cache's semantic tier text", function()
  it("takes the text parts of a message's content and the prompt, leaving the rest as parameters", function()
    local image = { type = "image", url = "https://example.com/cat.png" }
    local text, params = po.cache._semantic_parts { model = "m", prompt = "and then?", messages = {
      { role = "user", content = { { type = "text", text = "look:", cache_control = { type = "ephemeral" } }, image } },
      "not a message",
    } }
    assert.are.equal("look:\nand then?", text)
    assert.are.same({ model = "m", messages = {
      { role = "user", content = { { type = "text", cache_control = { type = "ephemeral" } }, image } },
      "not a message",
    } }, params)
  end)
end)

describe("po.cache's options and embedders", function()
  it("refuses an empty embed_id and candidates out of 1..64", function()
    local embed = function() return { 1, 0 } end
    raises("po.cache.open: semantic.embed_id must be a non-empty string, got ", po.cache.open,
      { semantic = { embed = embed, embed_id = "" } })
    raises("po.cache.open: semantic.candidates must be an integer from 1 to 64, got 0", po.cache.open,
      { semantic = { candidates = 0 } })
    raises("po.cache.open: semantic.candidates must be an integer from 1 to 64, got 2.5", po.cache.open,
      { semantic = { candidates = 2.5 } })
  end)

  it("set's options must be a table; without ttl the cache's ttl holds", function()
    local c = assert(po.cache.open { namespace = ns() })
    raises("cache:set: options must be a table, got number", c.set, c, "k", "v", 5)
    assert.is_true(c:set("k", "v", {}))
    assert.are.equal("v", c:get("k"))
    c:close()
  end)

  it("an embedder that returns no list is EEMBED, on get and on set", function()
    local c = assert(po.cache.open { namespace = ns(), semantic = { embed = function() return "vector" end,
      embed_id = "bad" } })
    assert.are.same({ nil, "cache: the embed function must return a non-empty list of numbers, got string", "EEMBED" },
      { c:get("what is 2 + 2?") })
    assert.are.same({ nil, "cache: the embed function must return a non-empty list of numbers, got string", "EEMBED" },
      { c:set("what is 3 + 3?", "6") })
    assert.is_nil(c:get("what is 3 + 3?"))
    c:close()
  end)
end)

describe("a closed po.cache", function()
  it("raises in delete, clear and contents, naming the method", function()
    local c = assert(po.cache.open { namespace = ns() })
    c:close()
    raises("cache:delete: the cache is closed", c.delete, c, "k")
    raises("cache:clear: the cache is closed", c.clear, c)
    raises("cache:contents: the cache is closed", c.contents, c)
  end)
end)
