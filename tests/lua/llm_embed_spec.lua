-- po.llm.embed and po.llm.embedder against the test server's /v1/embeddings
-- (deterministic vectors from the text), through an adapter this spec adds
-- to po.llm.adapters as a script may: the contract's embed_request /
-- embed_parse, in OpenAI's documented shape. Batching, the cache, usage and
-- cost, EUNSUPPORTED, errors, and the embedder serving the semantic cache
-- end to end.
local po = require "poengine"
local llm_server = require "tests.tools.llm_server"
local adapters = require("poengine.llm.provider").adapters

local server
local KEY = "sk-live-SECRET-0123456789"
local MODEL = "text-embedding-3-small"

-- The chat side of OpenAI's adapter, plus embeddings.
local embedtest = setmetatable({
  embed_request = function(cfg, texts, model, opts)
    local headers = { ["Content-Type"] = "application/json", Authorization = "Bearer " .. cfg.api_key }
    return cfg.base_url .. "/embeddings", headers,
      { model = model, input = po.json.array(texts), dimensions = opts.dimensions, encoding_format = "float" }
  end,
  embed_parse = function(body)
    if type(body.data) ~= "table" then
      return nil, "no data in the reply", "EPROTO"
    end
    local vectors = {}
    for _, d in ipairs(body.data) do
      vectors[d.index + 1] = d.embedding
    end
    return { vectors = vectors, usage = { input = body.usage and body.usage.prompt_tokens } }
  end,
}, { __index = adapters.openai })

local function provider(extra)
  local opts = { base_url = server.url .. "/v1", api_key = KEY, model = MODEL }
  for k, v in pairs(extra or {}) do
    opts[k] = v
  end
  return po.llm.provider("embedtest", opts)
end

local function requests()
  return server:stats().by_path["/v1/embeddings"] or 0
end

local function norm(v)
  local s = 0
  for _, x in ipairs(v) do
    s = s + x * x
  end
  return math.sqrt(s)
end

setup(function()
  server = llm_server.start()
  adapters.embedtest = embedtest
end)

teardown(function()
  adapters.embedtest = nil
  server:stop()
end)

before_each(function()
  server:reset()
end)

describe("po.llm.embed", function()
  it("returns one unit vector per text, in order, with usage and cost", function()
    local out = assert(po.llm.embed(provider(), { "one two three", "four", "one two three" }, { dimensions = 16 }))
    assert.are.equal(3, #out.vectors)
    for _, v in ipairs(out.vectors) do
      assert.are.equal(16, #v)
      assert.is_true(math.abs(norm(v) - 1) < 1e-5)
    end
    assert.are.same(out.vectors[1], out.vectors[3])
    assert.are_not.same(out.vectors[1], out.vectors[2])
    -- The repeated text is sent once: 4 words.
    assert.are.same({ input = 4 }, out.usage)
    assert.are.equal(4 * 0.02 / 1e6, out.cost)
    assert.are.equal(0, out.cached)
    assert.are.equal(MODEL, out.model)
    local st = server:stats()
    assert.are.equal(1, st.by_path["/v1/embeddings"])
    assert.are.same({ model = MODEL, input = { "one two three", "four" }, dimensions = 16, encoding_format = "float" },
      st.last_body)
  end)

  it("embeds a single string", function()
    local out = assert(po.llm.embed(provider(), "just one", { dimensions = 8 }))
    assert.are.equal(1, #out.vectors)
    assert.are.equal(8, #out.vectors[1])
  end)

  it("sends batch texts a request and keeps the order", function()
    local texts = { "a a", "b b", "c c", "d d", "e e" }
    local whole = assert(po.llm.embed(provider(), texts, { dimensions = 8 }))
    server:reset()
    local batched = assert(po.llm.embed(provider(), texts, { dimensions = 8, batch = 2 }))
    assert.are.equal(3, requests())
    assert.are.same(whole.vectors, batched.vectors)
    assert.are.equal(10, batched.usage.input)
  end)

  it("answers from a cache what it embedded before, per model and dimensions", function()
    local cache = assert(po.cache.open { namespace = "llm-embed-spec" })
    cache:clear()
    local first = assert(po.llm.embed(provider(), { "red", "green" }, { dimensions = 8, cache = cache }))
    assert.are.equal(1, requests())
    local again = assert(po.llm.embed(provider(), { "green", "blue", "red" }, { dimensions = 8, cache = cache }))
    assert.are.equal(2, requests())
    assert.are.same({ "blue" }, server:stats().last_body.input) -- only the new text is sent
    assert.are.equal(2, again.cached)
    assert.are.same(first.vectors[2], again.vectors[1])
    assert.are.same(first.vectors[1], again.vectors[3])
    assert.are.equal(1, again.usage.input)
    local all = assert(po.llm.embed(provider(), { "red" }, { dimensions = 8, cache = cache }))
    assert.are.equal(1, all.cached)
    assert.are.equal(0, all.cost)
    assert.are.equal(2, requests())
    -- Other dimensions, another model: other vectors, not served from the cache.
    assert.are.equal(0, assert(po.llm.embed(provider(), { "red" }, { dimensions = 4, cache = cache })).cached)
    assert.are.equal(0, assert(po.llm.embed(provider(), { "red" }, { dimensions = 8, cache = cache,
      model = "text-embedding-3-large" })).cached)
    assert.are.equal(4, requests())
    cache:close()
  end)

  it("takes a router's deployment or a deployment spec", function()
    local r = po.llm.router { deployments = { { provider = provider { model = "text-embedding-3-large" } } } }
    local out = assert(po.llm.embed(r.deployments[1], { "x" }))
    assert.are.equal("text-embedding-3-large", out.model)
    assert.are.equal(3072, #out.vectors[1]) -- the server's default for a "-large" model
    out = assert(po.llm.embed({ provider = "embedtest", base_url = server.url .. "/v1", model = MODEL, api_key = KEY },
      { "x" }))
    assert.are.equal(1536, #out.vectors[1])
  end)

  it("returns EUNSUPPORTED for a provider without embeddings", function()
    local a = po.llm.provider("anthropic", { base_url = server.url, model = "claude-3-5-haiku" })
    local out, err, code = po.llm.embed(a, { "x" })
    assert.is_nil(out)
    assert.are.equal("EUNSUPPORTED", code)
    assert.are.equal("anthropic: anthropic has no embeddings endpoint", err)
    local l = po.llm.provider("lua", { model = "m", fn = function() return "x" end })
    assert.are.equal("EUNSUPPORTED", select(3, po.llm.embed(l, "x")))
    assert.are.equal(0, requests())
  end)

  it("returns the server's errors with codes, never the key", function()
    local out, err, code, info = po.llm.embed(provider { headers = { ["X-Test-Fault"] = "fault=429;retry_after=7" } },
      { "x" })
    assert.is_nil(out)
    assert.are.equal("ERATELIMIT", code)
    assert.are.equal(429, info.status)
    assert.are.equal(7, info.retry_after)
    assert.matches("HTTP 429: rate limit reached", err)
    out, err, code = po.llm.embed(provider { headers = { ["X-Test-Fault"] = "fault=malformed" } }, { "x" })
    assert.are.equal("EJSON", code)
    -- An empty input is a 400 from OpenAI; the key stays out of the message.
    out, err, code = po.llm.embed(provider(), { "" })
    assert.are.equal("EINVALID", code)
    assert.is_nil(err:find(KEY, 1, true))
    out, err, code = po.llm.embed(provider { max_body = 100 }, { "long enough" })
    assert.are.equal("ETOOBIG", code)
  end)

  it("raises on programmer errors", function()
    assert.has_error(function() po.llm.embed(provider(), { "x", 2 }) end, "po.llm.embed: texts[2] must be a string, got number")
    assert.has_error(function() po.llm.embed(provider(), "x", { batches = 2 }) end, "po.llm.embed: unknown option 'batches'")
    assert.has_error(function() po.llm.embed(provider(), "x", { batch = 0 }) end,
      "po.llm.embed: batch must be a positive integer, got 0")
    assert.has_error(function() po.llm.embed(po.llm.provider("embedtest", { base_url = server.url }), "x") end,
      "po.llm.embed: no model: give the provider, the deployment or opts.model one")
    local sem = assert(po.cache.open { namespace = "llm-embed-spec-sem", semantic = {} })
    assert.has_error(function() po.llm.embed(provider(), "x", { cache = sem }) end,
      "po.llm.embed: cache must have no semantic tier (open a handle without `semantic`; it may share the store and namespace)")
    sem:close()
  end)
end)

describe("po.llm.embedder", function()
  it("gives a function and an id for the semantic cache", function()
    local fn, id = po.llm.embedder(provider(), { dimensions = 16 })
    assert.are.equal("embedtest:" .. MODEL .. ":16", id)
    local v = fn("hello there")
    assert.are.equal(16, #v)
    assert.are.same(v, assert(po.llm.embed(provider(), "hello there", { dimensions = 16 })).vectors[1])
    assert.are.equal("embedtest:" .. MODEL .. ":default", select(2, po.llm.embedder(provider())))
    assert.has_error(function() po.llm.embedder(po.llm.provider("anthropic", { model = "c" })) end,
      "po.llm.embedder: anthropic: anthropic has no embeddings endpoint (EUNSUPPORTED)")
  end)

  local A = "Please summarize the parser module in two sentences for the release notes of the next version."
  local B = "please summarize the parser module  in two sentences for the release notes of the next version"
  local C = "Please summarize the lexer module in two sentences for the release notes of the next version."

  for _, in_task in ipairs { false, true } do
    it("lets a cache answer a near-duplicate through the server's embeddings" .. (in_task and ", inside a task" or ""),
      function()
        local fn, id = po.llm.embedder(provider(), { dimensions = 256 })
        local cache = assert(po.cache.open { namespace = "llm-embed-spec-e2e-" .. tostring(in_task),
          semantic = { embed = fn, embed_id = id } })
        cache:clear()
        local calls = 0
        local model = po.llm.provider("lua", { model = "m", fn = function(req)
          calls = calls + 1
          return "answer " .. calls
        end })
        local r = po.llm.router { deployments = { { provider = model } }, cache = cache }
        local function run()
          local a = assert(r:complete { prompt = A })
          local b = assert(r:complete { prompt = B })
          local c = assert(r:complete { prompt = C })
          return a, b, c
        end
        local a, b, c
        if in_task then
          local res = assert(po.async(function() return { run() } end):wait(30))
          a, b, c = res[1], res[2], res[3]
        else
          a, b, c = run()
        end
        assert.is_false(a.cached)
        assert.are.equal("semantic", b.cached)
        assert.are.equal("answer 1", b.text)
        -- C scores about 0.95 too, but names another module: refused.
        assert.is_false(c.cached)
        assert.are.equal("answer 2", c.text)
        assert.are.equal(2, calls)
        -- Each prompt's text was embedded once, by the server.
        assert.are.equal(3, requests())
        cache:close()
      end)
  end

  it("makes the cache fail with EEMBED when the server fails", function()
    local fn, id = po.llm.embedder(provider { headers = { ["X-Test-Fault"] = "fault=status;status=503" } })
    local cache = assert(po.cache.open { namespace = "llm-embed-spec-fail", semantic = { embed = fn, embed_id = id } })
    local v, err, code = cache:get { prompt = "anything" }
    assert.is_nil(v)
    assert.are.equal("EEMBED", code)
    assert.matches("EHTTP: embedtest " .. MODEL .. ": HTTP 503", err, 1, true)
    cache:close()
  end)
end)
