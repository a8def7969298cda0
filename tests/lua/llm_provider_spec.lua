-- The providers against the test server: each wire format, plain and
-- streamed, usage and cost per format, the requests they build, the fault
-- matrix at the provider level, and keys kept out of every error.
local po = require "poengine"
local llm_server = require "tests.tools.llm_server"

local server
local KEY = "sk-live-SECRET-0123456789"

local function provider(kind, opts)
  opts = opts or {}
  opts.base_url = opts.base_url or (kind == "openai" and server.url .. "/v1" or server.url)
  opts.api_key = opts.api_key or KEY
  return po.llm.provider(kind, opts)
end

setup(function()
  server = llm_server.start()
  po.llm.prices.set("priced", { input = 1, output = 2, cached = 0.5, cache_write = 1.25 })
end)

teardown(function()
  po.llm.prices.set("priced", nil)
  server:stop()
end)

before_each(function()
  server:reset()
end)

local FORMATS = { "openai", "anthropic", "ollama" }

for _, kind in ipairs(FORMATS) do
  describe(kind, function()
    for _, stream in ipairs { false, true } do
      it("returns the normalized response" .. (stream and ", streamed through on_token" or ""), function()
        local tokens = {}
        local res = assert(provider(kind):complete({
          model = "priced#cached=2;cache_write=3;reasoning=4",
          system = "be brief",
          prompt = "one two three",
          stream = stream,
        }, { on_token = function(t) tokens[#tokens + 1] = t end }))
        assert.are.equal("echo: one two three", res.text)
        assert.are.equal("stop", res.finish_reason)
        assert.are.equal(kind, res.provider)
        assert.are.equal("priced#cached=2;cache_write=3;reasoning=4", res.model)
        assert.is_false(res.cached)
        assert.is_true(res.latency > 0 and res.ttft > 0 and res.ttft <= res.latency)
        assert.is_table(res.raw)
        if stream then
          assert.are.same({ "echo: ", "one ", "two ", "three" }, tokens)
        else
          assert.are.same({}, tokens)
        end
        -- input: the words of the system prompt and the messages (5); output: 4.
        local want = {
          openai = { input = 5, output = 4, cached_read = 2, cache_write = 0, reasoning = 4 },
          anthropic = { input = 5, output = 4, cached_read = 2, cache_write = 3, reasoning = 0 },
          ollama = { input = 5, output = 4, cached_read = 0, cache_write = 0, reasoning = 0 },
        }
        assert.are.same(want[kind], res.usage)
        -- $1/M input, $2/M output, $0.5/M cached reads, $1.25/M cache writes.
        local cost = {
          openai = (3 * 1 + 2 * 0.5 + 4 * 2) / 1e6, -- prompt_tokens includes the cached ones
          anthropic = (5 * 1 + 2 * 0.5 + 3 * 1.25 + 4 * 2) / 1e6,
          ollama = (5 * 1 + 4 * 2) / 1e6,
        }
        assert.are.near(cost[kind], res.cost, 1e-15)
      end)
    end

    it("sends its key and the vendor's request shape", function()
      assert(provider(kind):complete { model = "m", system = "S", prompt = "hi", max_tokens = 7, stop = "X",
        temperature = 0.5 })
      local st = server:stats()
      local h, b = st.last_headers, st.last_body
      if kind == "openai" then
        assert.are.equal("Bearer " .. KEY, h["authorization"])
        assert.are.same({ role = "system", content = "S" }, b.messages[1])
        assert.are.equal(7, b.max_tokens)
        assert.are.same({ "X" }, b.stop)
      elseif kind == "anthropic" then
        assert.are.equal(KEY, h["x-api-key"])
        assert.are.equal("2023-06-01", h["anthropic-version"])
        assert.are.equal("S", b.system)
        assert.are.same({ { role = "user", content = "hi" } }, b.messages)
        assert.are.same({ "X" }, b.stop_sequences)
      else
        assert.are.equal(false, b.stream) -- Ollama streams unless told not to
        assert.are.same({ temperature = 0.5, num_predict = 7, stop = { "X" } }, b.options)
      end
    end)

    it("uses the provider's model over the request's", function()
      local res = assert(provider(kind, { model = "deployed" }):complete { model = "asked", prompt = "hi" })
      assert.are.equal("deployed", res.model)
      assert.are.equal("deployed", server:stats().last_body.model)
    end)

    -- fault -> code (plain, streamed), info check, and what the message must
    -- say: the server's own error text, the parser's place, or libcurl's reason
    local matrix = {
      { "fault=429;retry_after=2", "ERATELIMIT", "ERATELIMIT", function(info) assert.are.equal(429, info.status) assert.are.equal(2, info.retry_after) end,
        "HTTP 429: rate limit reached, slow down$" },
      { "fault=status;status=503", "EHTTP", "EHTTP", function(info) assert.are.equal(503, info.status) end,
        "HTTP 503: injected failure$" },
      { "fault=context", "ECONTEXT", "ECONTEXT", function(info) assert.is_true(info.context_window) end,
        { openai = "HTTP 400: This model's maximum context length is %d+ tokens", anthropic = "HTTP 400: prompt is too long",
          ollama = "HTTP 400: the input length exceeds the context length" } },
      { "fault=malformed", "EJSON", "EJSON", nil, "malformed [%a ]+: po%.json%.decode: .+ at byte %d+$" },
      { "fault=wrong_type", "EPROTO", "EPROTO", nil, "expected a JSON reply, got Content%-Type 'text/html'$" },
      { "fault=truncated", "ECONN", "ECONN", nil, "^POST http://[^ ]+: transfer closed with" },
      { "fault=reset", "ECONN", "ECONN", nil, "^POST http://[^ ]+: Recv failure: Connection reset by peer$" },
    }
    for _, case in ipairs(matrix) do
      it("maps " .. case[1] .. " to " .. case[2] .. ", plain and streamed, with the key in no message", function()
        for _, stream in ipairs { false, true } do
          local res, err, code, info = provider(kind):complete { model = "m#" .. case[1], prompt = "hi", stream = stream }
          assert.is_nil(res)
          assert.are.equal(stream and case[3] or case[2], code)
          assert.is_string(err)
          assert.not_matches("SECRET", err)
          local says = type(case[5]) == "table" and case[5][kind] or case[5]
          assert.matches(says, err)
          if not says:find("^%^POST") then
            -- a server's answer names the provider and the model asked for
            assert.are.equal(kind .. " m#" .. case[1] .. ": ", err:sub(1, #kind + #case[1] + 5))
          end
          if case[4] then
            case[4](info)
          end
        end
      end)
    end

    it("times out a stalled stream, and one that never starts", function()
      local res, err, code = provider(kind, { idle_timeout = 0.3 }):complete { model = "m#fault=stall;stall=5",
        prompt = "hi", stream = true }
      assert.is_nil(res)
      assert.are.equal("ETIMEDOUT", code)
      assert.matches("idle_timeout", err)
      local _, _, code2, info = provider(kind, { ttft_timeout = 0.3 }):complete { model = "m#delay=3", prompt = "hi" }
      assert.are.equal("ETIMEDOUT", code2)
      assert.are.equal("ttfb", info.stage)
    end)
  end)
end

describe("the lua provider", function()
  it("calls the user function with the normalized request and streams what it returns", function()
    local seen
    local p = po.llm.provider("lua", {
      model = "local",
      fn = function(req, emit)
        seen = req
        return { text = "answer to " .. req.messages[1].content, usage = { input = 3, output = 2 } }
      end,
    })
    local tokens = {}
    local res = assert(p:complete({ prompt = "q", stream = true }, { on_token = function(t) tokens[#tokens + 1] = t end }))
    assert.are.equal("answer to q", res.text)
    assert.are.same({ "answer to q" }, tokens)
    assert.are.equal("local", seen.model)
    assert.are.same({ input = 3, output = 2, cached_read = 0, cache_write = 0, reasoning = 0 }, res.usage)
    assert.are.equal("lua", res.provider)
  end)

  it("passes failures and raised errors back as nil, message, code", function()
    local p = po.llm.provider("lua", { model = "x", fn = function() return nil, "overloaded", "EHTTP", { status = 503 } end })
    local res, err, code, info = p:complete { prompt = "q" }
    assert.is_nil(res)
    assert.are.same({ "overloaded", "EHTTP", 503 }, { err, code, info.status })
    local bad = po.llm.provider("lua", { model = "x", fn = function() error("oops") end })
    local _, err2, code2 = bad:complete { prompt = "q" }
    assert.are.equal("ERUNTIME", code2)
    assert.matches("oops", err2)
  end)

  it("returns EPROTO for a response of the wrong shape, before streaming any of it", function()
    for _, res in ipairs { { text = 5 }, { text = "t", finish_reason = {} }, { text = "t", usage = { output = 1 / 0 } },
      { text = "t", usage = { input = -1 } }, { text = "t", usage = { input = 1.5 } }, { text = "t", usage = 3 } } do
      local tokens = {}
      local p = po.llm.provider("lua", { model = "x", fn = function() return res end })
      local out, err, code = p:complete({ prompt = "q", stream = true }, { on_token = function(t) tokens[#tokens + 1] = t end })
      assert.is_nil(out)
      assert.are.equal("EPROTO", code, err)
      assert.are.same({}, tokens)
    end
  end)
end)

describe("po.llm.provider", function()
  it("takes keys from the environment variable the vendor uses", function()
    local p = po.llm.provider("openai", { base_url = server.url .. "/v1", api_key_env = "PO_TEST_NO_SUCH_VAR" })
    assert.is_nil(p.key())
    assert(p:complete { model = "m", prompt = "hi" })
    assert.is_nil(server:stats().last_headers["authorization"])
  end)

  it("follows the SDKs' base URL conventions", function()
    assert.are.equal("https://api.openai.com/v1", po.llm.provider("openai").base_url)
    assert.are.equal("https://api.anthropic.com", po.llm.provider("anthropic").base_url)
    assert.are.equal("http://localhost:8000/v1", po.llm.provider("openai", { base_url = "http://localhost:8000/v1/" }).base_url)
  end)

  it("never shows the key when printed or encoded", function()
    local p = provider("openai")
    assert.not_matches("SECRET", tostring(p))
    for k, v in pairs(p) do
      assert.not_matches("SECRET", tostring(k) .. "=" .. tostring(v))
    end
  end)

  it("raises on programmer errors", function()
    assert.has_error(function() po.llm.provider("gemini") end,
      "po.llm.provider: unknown provider 'gemini' (openai, anthropic, ollama, azure, lua)")
    assert.has_error(function() po.llm.provider("openai", { base_ulr = "x" }) end,
      "po.llm.provider: unknown option 'base_ulr'")
    assert.has_error(function() po.llm.provider("lua", {}) end,
      "po.llm.provider: the lua provider needs fn = function(request, on_token)")
  end)
end)

-- Replies that are JSON but not the shape a format documents (each a file
-- of tests/fixtures/streams/, sent as it is): the adapters return EPROTO,
-- never raise, so a router moves on.
describe("a reply of the wrong shape", function()
  local function fixtures()
    local names = {}
    local dir = (os.getenv("POENGINE_SOURCE_DIR") or ".") .. "/tests/fixtures/streams"
    local p = assert(io.popen("ls '" .. dir .. "'"))
    for name in p:lines() do
      -- (*_embed_* are embeddings replies: llm_replies_spec sends them)
      if name:match("^%a+_") and not name:match("^openai_bom") and not name:match("^%a+_embed_") then
        names[#names + 1] = name
      end
    end
    p:close()
    return names
  end

  for _, name in ipairs(fixtures()) do
    local kind = name:match("^(%a+)_")
    local stream = not name:match("%.json$")
    it("is EPROTO from " .. kind .. ": " .. name, function()
      local res, err, code = provider(kind):complete { model = "m#fault=replay;file=" .. name, prompt = "hi",
        stream = stream }
      assert.is_nil(res)
      assert.are.equal("EPROTO", code, err)
      -- *_cut.* are well-formed streams that stop before their end marker
      assert.matches(name:match("_cut%.") and "the stream ended before" or "bad reply", err)
    end)
  end

  it("moves a router on to the next deployment", function()
    local r = po.llm.router {
      deployments = {
        { provider = "openai", base_url = server.url .. "/v1", model = "m#fault=replay;file=openai_event_null.sse" },
        { provider = "ollama", base_url = server.url, model = "m" },
      },
      retries = 0,
    }
    local res = assert(r:complete { prompt = "hi", stream = true })
    assert.are.equal("ollama", res.provider)
    assert.are.equal("echo: hi", res.text)
  end)

  it("keeps every event of a stream that opens with a byte-order mark", function()
    local res = assert(provider("openai"):complete { model = "m#fault=replay;file=openai_bom.sse", prompt = "hi",
      stream = true })
    assert.are.equal("hello", res.text)
    assert.are.equal("stop", res.finish_reason)
  end)
end)

describe("a reply past a limit", function()
  it("is ETOOBIG when the body outgrows max_body, streamed or not", function()
    for _, kind in ipairs(FORMATS) do
      for _, stream in ipairs { false, true } do
        local res, err, code = provider(kind, { max_body = 300 }):complete {
          model = "m#text=" .. ("word "):rep(200), prompt = "hi", stream = stream }
        assert.is_nil(res)
        assert.are.equal("ETOOBIG", code, err)
        assert.matches("max_body", err)
      end
    end
  end)

  it("is ETOOBIG when one event of a stream outgrows max_event", function()
    for _, kind in ipairs(FORMATS) do
      local res, err, code = provider(kind, { max_event = 1000 }):complete {
        model = "m#text=" .. ("x"):rep(1200), prompt = "hi", stream = true }
      assert.is_nil(res)
      assert.are.equal("ETOOBIG", code, err)
      assert.matches("max_event", err)
      assert(provider(kind, { max_event = 1000 }):complete { model = "m", prompt = "hi", stream = true })
    end
  end)
end)
