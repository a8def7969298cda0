-- The C side of po.cache and po.semantic (poengine_core.cache,
-- poengine_core.semantic): each argument check raises naming the function
-- and the argument, and the inputs the Lua layer lets through unchanged
-- (empty values, records of the shared tier that are not the key's, keys
-- that cannot be encoded) get the documented answer.
local po = require "poengine"
local core = require "poengine_core"
local proc = require "tests.tools.proc"
local q = proc.quote
local ccache, sem = core.cache, core.semantic

local function raises(pattern, fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok)
  if not tostring(err):find(pattern, 1, true) then
    error(("expected an error containing %q, got %q"):format(pattern, tostring(err)), 2)
  end
end

local function tempdir()
  local path = os.tmpname()
  os.remove(path)
  assert(os.execute("mkdir -p " .. q(path)) == 0)
  return path
end

describe("poengine_core.cache", function()
  describe("open", function()
    local open = ccache.open

    it("names the option that is wrong", function()
      raises("po.cache.open: policy must be a string, got number", open, { policy = 1 })
      raises("po.cache.open: sync must be one of 'full', 'batch', 'none', got 'fast'", open, { sync = "fast" })
      for _, n in ipairs { 0, 1.5, 2 ^ 60, -3 } do
        raises("po.cache.open: max_entries must be a positive integer, got " .. tostring(n), open, { max_entries = n })
      end
      raises("po.cache.open: max_bytes must be a positive integer, got string", open, { max_bytes = "1k" })
      raises("po.cache.open: ttl must be a non-negative number of seconds, got string", open, { ttl = "1h" })
      raises("po.cache.open: ttl must be a non-negative number of seconds, got -1", open, { ttl = -1 })
      raises("po.cache.open: ttl must be a non-negative number of seconds, got inf", open, { ttl = math.huge })
      raises("po.cache.open: path must not be empty", open, { path = "" })
      raises("po.cache.open: path must be a string (a directory) or nil, got number", open, { path = 1 })
      raises("po.cache.open: namespace must be a string, got table", open, { namespace = {} })
      for _, ns in ipairs { "", ("n"):rep(256), "a\0b" } do
        raises("po.cache.open: namespace must be 1 to 255 bytes with no zero byte", open, { namespace = ns })
      end
      raises("po.cache.open: semantic must be a table or false, got boolean", open, { semantic = true })
      raises("po.cache.open: semantic must be a table or false, got number", open, { semantic = 1 })
      raises("po.cache.open: create must be a boolean, got string", open, { create = "no" })
      raises("po.cache.open: create = false needs a path", open, { create = false })
    end)

    it("with create = false, finds no store where there is none", function()
      local dir = tempdir()
      local h, err, code = open { path = dir .. "/none", create = false }
      assert.is_nil(h)
      assert.are.equal("ENOENT", code)
      assert.truthy(err:find("po.cache.open: no cache store in " .. dir .. "/none", 1, true))
      -- a store that exists opens
      local made = assert(open { path = dir .. "/made", create = true })
      made:close()
      local again = assert(open { path = dir .. "/made", create = false })
      again:close()
      os.execute("rm -rf " .. q(dir))
    end)

    it("refuses other limits for a namespace already open, naming the one that differs", function()
      local h = assert(open { namespace = "binding-clash", max_entries = 10, max_bytes = 1000, policy = "lru" })
      raises("namespace 'binding-clash' is already open in this process with another max_bytes", open,
        { namespace = "binding-clash", max_bytes = 2000 })
      raises("namespace 'binding-clash' is already open in this process with another policy", open,
        { namespace = "binding-clash", policy = "sieve" })
      -- the same limits: one more reference
      local same = assert(open { namespace = "binding-clash", max_entries = 10, max_bytes = 1000, policy = "lru" })
      same:close()
      assert.are.equal("binding-clash", h:config().namespace)
      h:close()
    end)
  end)

  describe("a handle", function()
    local h
    before_each(function()
      h = assert(ccache.open { namespace = "binding-handle", max_bytes = 64, ttl = 60 })
    end)
    after_each(function()
      h:close()
    end)

    it("answers an empty value as an empty string", function()
      assert.is_true(h:set("empty", "", 3))
      local v, flags = h:get("empty")
      assert.are.equal("", v)
      assert.are.equal(3, flags)
    end)

    it("refuses a bad ttl and an entry larger than max_bytes", function()
      raises("cache:set: ttl must be a non-negative number of seconds, got -5", h.set, h, "k", "v", 0, -5)
      raises("cache:set: ttl must be a non-negative number of seconds, got string", h.set, h, "k", "v", 0, "1")
      local ok, err, code = h:set("k", ("x"):rep(100), 0)
      assert.is_nil(ok)
      assert.are.equal("ETOOBIG", code)
      assert.truthy(err:find("cache:set: key and value take 101 bytes, more than max_bytes (64)", 1, true))
    end)

    it("checks the vector it is given", function()
      raises("cache:set: vector must be a list of numbers", h.set, h, "k", "v", 0, nil, "p", "emb", "text", "1,2")
      raises("cache:set: the embedding must have 1 to 4096 numbers, got 0", h.set, h, "k", "v", 0, nil, "p", "emb",
        "text", {})
      local big = {}
      for i = 1, 4097 do
        big[i] = 1
      end
      raises("cache:get: the embedding must have 1 to 4096 numbers, got 4097", h.semantic_get, h, "k", "p", "emb",
        "text", 0.9, 1, big)
      raises("cache:set: the embedding's item 2 is not a number", h.set, h, "k", "v", 0, nil, "p", "emb", "text",
        { 1, "2" })
      -- a function embedder's set without the vector asks for it
      assert.is_false(h:set("k", "v", 0, nil, "p", "emb", "text"))
    end)

    it("tells a zero embedding and one of another dimension apart from a store failure", function()
      assert.is_true(h:set("a", "1", 0, nil, "p", "emb", "text a", { 1, 0, 0 }))
      for _, vec in ipairs { { 0, 0, 0 }, { 1, 0 } } do
        local ok, err, code = h:set("b", "2", 0, nil, "p", "emb", "text b", vec)
        assert.is_nil(ok)
        assert.are.equal("EEMBED", code)
        assert.truthy(err:find("cache:set: the embedding is all zeros, or its", 1, true))
      end
      local v, _, _, score = h:semantic_get("c", "p", "emb", "text a", 0.9, 2, { 2, 0, 0 })
      assert.are.equal("1", v)
      assert.are.equal(1, score)
    end)

    it("makes a shared-tier record, with the handle's ttl or its own", function()
      local hex, rec = h:shared_record("key", "value", 7)
      assert.are.equal(ccache.key("key"), hex)
      local v, flags, age, ttl = h:shared_fill("key", rec)
      assert.are.equal("value", v)
      assert.are.equal(7, flags)
      assert.is_true(age >= 0 and age < 5)
      assert.is_true(ttl > 55 and ttl <= 60)
      local _, forever = h:shared_record("key2", "value", 0, 0)
      assert.are.equal(0, select(4, h:shared_fill("key2", forever)))
      raises("cache:set: ttl must be a non-negative number of seconds, got -1", h.shared_record, h, "k", "v", 0, -1)
    end)

    it("takes from the shared tier only a live record of the same key", function()
      local _, rec = h:shared_record("mine", "value", 0, 60)
      assert.is_nil(h:shared_fill("other", rec)) -- another key's
      assert.is_nil(h:shared_fill("mine", "not a record"))
      assert.is_nil(h:shared_fill("mine", rec:sub(1, #rec - #"value" - 1))) -- cut inside the key
      local _, soon = h:shared_record("soon", "value", 0, 0.01)
      os.execute("sleep 0.05")
      assert.is_nil(h:shared_fill("soon", soon)) -- expired
      assert.is_nil(h:get("mine")) -- nothing was stored from those
      assert.are.equal("value", h:shared_fill("mine", rec))
      assert.are.equal("value", h:get("mine")) -- and this one was
    end)

    it("checks prune's options, and needs a store for prune and contents", function()
      raises("cache:prune: the cache has no store (it was opened without a path)", h.prune, h, {})
      raises("cache:contents: the cache has no store (it was opened without a path)", h.contents, h)
      raises("cache:prune: older_than must be a non-negative number of seconds, got -1", h.prune, h, { older_than = -1 })
      raises("cache:prune: older_than must be a non-negative number of seconds, got string", h.prune, h,
        { older_than = "1d" })
      raises("cache:prune: max_bytes must be a non-negative integer, got 1.5", h.prune, h, { max_bytes = 1.5 })
      raises("cache:prune: max_bytes must be a non-negative integer, got 1.1529215046068e+18", h.prune, h,
        { max_bytes = 2 ^ 60 })
      raises("cache:prune: batch must be an integer from 1 to 1048576", h.prune, h, { batch = 0 })
      raises("cache:prune: batch must be an integer from 1 to 1048576", h.prune, h, { batch = 2 ^ 21 })
      raises("cache:prune: dry_run must be a boolean, got number", h.prune, h, { dry_run = 1 })
    end)

    it("is unusable once closed, and closes twice", function()
      local other = assert(ccache.open { namespace = "binding-closed" })
      other:close()
      other:close()
      raises("cache:get: the cache is closed", other.get, other, "k")
      raises("cache:set: the cache is closed", other.set, other, "k", "v", 0)
      raises("cache:stats: the cache is closed", other.stats, other)
    end)
  end)

  describe("keys", function()
    it("cannot encode an infinity or a pointer, and says which", function()
      raises("po.cache.key: cannot encode inf", ccache.key, { x = math.huge })
      raises("po.cache.key: cannot encode -inf", ccache.key, { x = -math.huge })
      local h = assert(ccache.open { namespace = "binding-pointer" })
      local pointer = h:pointers()
      raises("po.cache.key: cannot encode a light userdata", ccache.key, { x = pointer })
      h:close()
      -- json.null is the one light userdata a key holds: as null
      assert.are.equal(ccache.key { x = po.json.null }, ccache.key { x = po.json.null })
      assert.are_not.equal(ccache.key { x = po.json.null }, ccache.key { x = false })
    end)

    it("tells booleans and sparse or out-of-order arrays apart", function()
      assert.are_not.equal(ccache.key { a = true }, ccache.key { a = false })
      local sparse = { [1] = "a", [3] = "c" }
      assert.are_not.equal(ccache.key(sparse), ccache.key { "a", "c" })
      -- keys 1..n however they were inserted: the same array
      local late = {}
      late[3], late[2], late[1] = "c", "b", "a"
      assert.are.equal(ccache.key { "a", "b", "c" }, ccache.key(late))
    end)

    it("is made right by a finalizer that runs while another key is being made", function()
      -- A key of 5000 pairs reads names again (lua_pushlstring), where the
      -- collector may step and run finalizers that make keys themselves.
      local big = {}
      for i = 1, 5000 do
        big["k" .. i] = { i }
      end
      local expected = ccache.key(big)
      local made, making, during = {}, false, 0
      collectgarbage("setpause", 1)
      collectgarbage("setstepmul", 1000)
      -- until some finalizers have run inside a key (a few rounds in practice)
      for _ = 1, 200 do
        for i = 1, 200 do
          local p = newproxy(true)
          getmetatable(p).__gc = function()
            if making then
              during = during + 1
            end
            made[#made + 1] = { i, ccache.key { finalizer = i } }
          end
        end
        making = true
        local got = ccache.key(big)
        making = false
        assert.are.equal(expected, got)
        if during > 0 then
          break
        end
      end
      collectgarbage("setpause", 200)
      collectgarbage("setstepmul", 200)
      collectgarbage()
      assert.is_true(during > 0)
      for _, m in ipairs(made) do
        assert.are.equal(ccache.key { finalizer = m[1] }, m[2])
      end
    end)

    it("writes a long array the same however it was built", function()
      local fwd, bwd = {}, {}
      for i = 1, 5000 do
        fwd[i] = i
      end
      for i = 5000, 1, -1 do
        bwd[i] = i
      end
      assert.are.equal(ccache.key(fwd), ccache.key(bwd))
      assert.are_not.equal(ccache.key(fwd), ccache.key { 1, 2, 3 })
      assert.are.equal("[1,null,3]", ccache.canonical { 1, po.json.null, 3 })
    end)

    it("shows a string key as it is and a request as canonical text", function()
      assert.are.equal("plain key", ccache.canonical("plain key"))
      assert.are.equal('{"b":[1,2.5],"c":{}}', ccache.canonical { c = {}, b = { 1, 2.5 } })
    end)
  end)

  it("words the failure codes the FFI path gets", function()
    local codes = {}
    for rc = -64, -1 do
      local message, name = ccache.error_text(rc)
      assert.are.equal("string", type(message))
      codes[name] = message
    end
    assert.truthy(codes.ENOMEM:find("memory", 1, true))
    assert.are.equal("string", type(codes.ESTORE)) -- the store's last error, whatever it was
  end)
end)

describe("poengine_core.semantic index", function()
  it("names the option that is wrong", function()
    for _, d in ipairs { 0, 1.5, 65537 } do
      raises("po.semantic.index: dim must be an integer from 1 to 65536, got " .. tostring(d), sem.index, { dim = d })
    end
    raises("po.semantic.index: dim must be an integer from 1 to 65536, got string", sem.index, { dim = "8" })
    raises('po.semantic.index: kind must be "f32" or "i8", got f16', sem.index, { kind = "f16" })
    raises('po.semantic.index: kind must be "f32" or "i8", got number', sem.index, { kind = 8 })
  end)

  it("checks ids, vectors and k", function()
    local ix = sem.index { dim = 2, kind = "i8" }
    for _, id in ipairs { -1, 1.5, 2 ^ 54 } do
      raises("po.semantic.index:add: id must be an integer from 0 to 2^53", ix.add, ix, id, { 1, 0 })
    end
    raises("po.semantic.index:add: vector[2] must be a finite float, got nan", ix.add, ix, 1, { 1, 0 / 0 })
    raises("po.semantic.index:add: vector[1] must be a finite float", ix.add, ix, 1, { 1e39, 0 })
    ix:add(1, { 1, 0 })
    for _, k in ipairs { 0, 1.5 } do
      raises("po.semantic.index:search: k must be a positive integer, got " .. tostring(k), ix.search, ix, { 1, 0 }, k)
    end
    raises("po.semantic.index:search: k must be a positive integer, got string", ix.search, ix, { 1, 0 }, "2")
    local ids = ix:search({ 1, 0 }, 10)
    assert.are.same({ 1 }, ids)
    ix:close()
  end)
end)
