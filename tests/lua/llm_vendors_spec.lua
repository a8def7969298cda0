-- The normalized surface end to end on each vendor's wire format, through
-- the real adapters and the test server's default answers: a two-step tool
-- loop, structured output, reasoning kept apart from the answer, and
-- embeddings. Each adapter's own spec (llm_wire_*_spec.lua) holds it to the
-- vendor's documented exchanges; this one holds the three to one behaviour.
local po = require "poengine"
local server = require("tests.tools.llm_server").start()

local PREFIX = { openai = "/v1", anthropic = "", ollama = "" }

local function provider(kind)
  return po.llm.provider(kind, { base_url = server.url .. PREFIX[kind], api_key = "sk-test", model = "m" })
end

local ADD = {
  name = "add",
  description = "adds two numbers",
  parameters = { type = "object", properties = { a = { type = "number" }, b = { type = "number" } },
    required = { "a", "b" } },
}

local SCHEMA = { type = "object", properties = { verdict = { type = "string", enum = { "faster", "same" } },
  runs = { type = "integer" } }, required = { "verdict", "runs" } }

teardown(function()
  server:stop()
end)

for _, kind in ipairs { "openai", "anthropic", "ollama" } do
  describe(kind .. " wire format:", function()
    for _, stream in ipairs { false, true } do
      local how = stream and "streamed" or "not streamed"

      it("a tool loop over two steps (" .. how .. ")", function()
        local got = {}
        local res = assert(po.llm.tool_loop(provider(kind), {
          system = "use the tools",
          prompt = 'call add with {"a": 2, "b": 3}',
          tools = { ADD },
          stream = stream,
        }, {
          add = function(args)
            got[#got + 1] = args
            return { sum = args.a + args.b }
          end,
        }))
        assert.are.equal(2, res.steps)
        assert.are.same({ { a = 2, b = 3 } }, got)
        -- The second request carried the call and its result in the
        -- vendor's form, and the server answered from the result.
        assert.are.equal('tool result: {"sum":5}', res.text)
        local call = res.messages[2].tool_calls[1]
        assert.are.equal("add", call.name)
        assert.are.same({ a = 2, b = 3 }, call.arguments)
        assert.are.same({ a = 2, b = 3 }, po.json.decode(call.arguments_json))
        assert.are.equal(call.id, res.messages[3].tool_call_id)
        local body = server:stats().last_body
        if kind == "anthropic" then
          -- tool_use in the assistant turn, tool_result in a user turn,
          -- the system prompt in `system`.
          assert.are.equal("use the tools", body.system)
          assert.are.equal("tool_use", body.messages[2].content[1].type)
          assert.are.equal(call.id, body.messages[2].content[1].id)
          assert.are.equal("user", body.messages[3].role)
          assert.are.equal("tool_result", body.messages[3].content[1].type)
          assert.are.equal(call.id, body.messages[3].content[1].tool_use_id)
        else
          assert.are.equal("system", body.messages[1].role)
          assert.are.equal("assistant", body.messages[3].role)
          assert.are.equal("tool", body.messages[4].role)
          if kind == "openai" then
            assert.are.equal(call.id, body.messages[4].tool_call_id)
            -- The arguments go back as the model wrote them.
            assert.are.equal(call.arguments_json, body.messages[3].tool_calls[1]["function"].arguments)
          else
            assert.are.equal("add", body.messages[4].tool_name)
            assert.are.same({ a = 2, b = 3 }, body.messages[3].tool_calls[1]["function"].arguments)
          end
        end
      end)

      it("structured output: the reply's json, from a JSON schema (" .. how .. ")", function()
        local res = assert(provider(kind):complete({
          prompt = "time it",
          response_format = { type = "json_schema", name = "verdict", schema = SCHEMA },
          stream = stream,
        }))
        -- (the server answers a schema's integer with the echo's word count)
        assert.are.same({ verdict = "faster", runs = 3 }, res.json)
        assert.are.same(res.json, po.json.decode(res.text))
        assert.is_nil(res.tool_calls) -- Anthropic's forced tool is the answer, not a call
      end)
    end

    it("structured output of any JSON object", function()
      local res = assert(provider(kind):complete({ prompt = "hello there", response_format = { type = "json" } }))
      assert.are.equal("table", type(res.json))
    end)

    it("refuses a field its vendor lacks, naming it, before anything is sent", function()
      local fields = {
        openai = { reasoning = { budget_tokens = 100 } },
        anthropic = { seed = 7 },
        ollama = { tool_choice = "required", tools = { ADD } },
      }
      server:reset()
      local req = { prompt = "x" }
      for k, v in pairs(fields[kind]) do
        req[k] = v
      end
      local res, err, code = provider(kind):complete(req)
      assert.is_nil(res)
      assert.are.equal("EUNSUPPORTED", code)
      local named = kind == "openai" and "budget_tokens" or (kind == "anthropic" and "seed" or "tool_choice")
      assert.matches(named, err)
      assert.are.equal(0, server:stats().requests)
    end)
  end)
end

describe("reasoning kept apart from the answer", function()
  it("anthropic thinking, streamed to on_reasoning", function()
    local thought, said = {}, {}
    local res = assert(provider("anthropic"):complete({
      prompt = "why", max_tokens = 2048, reasoning = { budget_tokens = 1024 }, stream = true,
    }, { on_reasoning = function(t) thought[#thought + 1] = t end, on_token = function(t) said[#said + 1] = t end }))
    assert.are.equal("thinking about: why", res.reasoning)
    assert.are.equal("thinking about: why", table.concat(thought))
    assert.are.equal("echo: why", res.text)
    assert.are.equal("echo: why", table.concat(said))
    assert.are.same({ type = "enabled", budget_tokens = 1024 }, server:stats().last_body.thinking)
  end)

  it("anthropic thinking with tools: the thinking block goes back with the tool turn, signature and all", function()
    for _, stream in ipairs { false, true } do
      local res = assert(po.llm.tool_loop(provider("anthropic"), {
        prompt = 'call add with {"a": 1, "b": 1}', tools = { ADD }, max_tokens = 2048,
        reasoning = { budget_tokens = 1024 }, stream = stream,
      }, { add = function(args) return args.a + args.b end }))
      assert.are.equal(2, res.steps)
      local turn = res.messages[2]
      assert.are.equal("thinking", turn.thinking_blocks[1].type)
      assert.are.equal("sig-test", turn.thinking_blocks[1].signature)
      -- The second request's assistant turn opens with that block, unchanged.
      local sent = server:stats().last_body.messages[2].content
      assert.are.same(po.json.decode(po.json.encode(turn.thinking_blocks[1])), sent[1])
      assert.are.equal("tool_use", sent[2].type)
    end
  end)

  it("ollama think, streamed to on_reasoning", function()
    local thought = {}
    local res = assert(provider("ollama"):complete({ prompt = "why", reasoning = { effort = "high" }, stream = true },
      { on_reasoning = function(t) thought[#thought + 1] = t end }))
    assert.are.equal("thinking about: why", res.reasoning)
    assert.are.equal(res.reasoning, table.concat(thought))
    assert.are.equal("echo: why", res.text)
  end)

  it("openai reasoning_effort, its tokens counted in usage", function()
    local res = assert(provider("openai"):complete({ prompt = "why", reasoning = { effort = "medium" } }))
    assert.are.equal("medium", server:stats().last_body.reasoning_effort)
    assert.are.equal(32, res.usage.reasoning)
    assert.is_true(res.usage.output >= 32)
  end)
end)

describe("po.llm.embed through the real adapters", function()
  for _, kind in ipairs { "openai", "ollama" } do
    it(kind .. ": one vector per text, in order, equal texts equal vectors", function()
      local out = assert(po.llm.embed(provider(kind), { "the parser", "a lexer", "the parser" }))
      assert.are.equal(3, #out.vectors)
      assert.are.same(out.vectors[1], out.vectors[3])
      assert.are_not.same(out.vectors[1], out.vectors[2])
      assert.are.equal(kind == "openai" and 1536 or 384, #out.vectors[1])
      assert.is_true(out.usage.input > 0)
    end)
  end

  it("openai: dimensions reach the server", function()
    local p = po.llm.provider("openai", { base_url = server.url .. "/v1", api_key = "sk-test",
      model = "text-embedding-3-small" })
    local out = assert(po.llm.embed(p, { "x y z" }, { dimensions = 64 }))
    assert.are.equal(64, #out.vectors[1])
    assert.are.equal(64, server:stats().last_body.dimensions)
    -- or the provider's own option
    p = po.llm.provider("openai", { base_url = server.url .. "/v1", api_key = "sk-test",
      model = "text-embedding-3-small", dimensions = 32 })
    out = assert(po.llm.embed(p, { "x y z" }))
    assert.are.equal(32, #out.vectors[1])
  end)

  it("anthropic has no embeddings: EUNSUPPORTED", function()
    local out, err, code = po.llm.embed(provider("anthropic"), { "x" })
    assert.is_nil(out)
    assert.are.equal("EUNSUPPORTED", code)
    assert.matches("anthropic", err)
  end)
end)

describe("Azure OpenAI through a provider", function()
  local function azure(extra)
    local opts = { base_url = server.url, api_key = "az-key", deployment = "gpt-4o prod" }
    for k, v in pairs(extra or {}) do
      opts[k] = v
    end
    return po.llm.provider("azure", opts)
  end

  it("sends to the deployment's path with the api-version, the key in api-key, no model in the body", function()
    server:reset()
    local res = assert(azure():complete { prompt = "hi there", stream = true })
    assert.are.equal("echo: hi there", res.text)
    local stats = server:stats()
    assert.are.equal(1, stats.by_path["/openai/deployments/gpt-4o%20prod/chat/completions?api-version=2024-10-21"])
    assert.are.equal("az-key", stats.last_headers["api-key"])
    assert.is_nil(stats.last_headers["authorization"])
    assert.is_nil(stats.last_body.model)
    -- another api_version, and embeddings on the same deployment
    assert(azure({ api_version = "2025-01-01-preview" }):complete { prompt = "x" })
    assert.are.equal(1, server:stats().by_path["/openai/deployments/gpt-4o%20prod/chat/completions?api-version=2025-01-01-preview"])
    local out = assert(po.llm.embed(azure(), { "a b c" }))
    assert.are.equal(1536, #out.vectors[1])
    assert.are.equal(1, server:stats().by_path["/openai/deployments/gpt-4o%20prod/embeddings?api-version=2024-10-21"])
  end)

  it("without a deployment option the model names the deployment; without either, an error naming it", function()
    server:reset()
    local p = po.llm.provider("azure", { base_url = server.url, api_key = "az-key", model = "my-dep" })
    assert(p:complete { prompt = "x" })
    assert.are.equal(1, server:stats().by_path["/openai/deployments/my-dep/chat/completions?api-version=2024-10-21"])
    local url, err, code = require("poengine.llm.azure").request({ base_url = server.url, options = {} },
      { messages = { { role = "user", content = "x" } } }, nil)
    assert.is_nil(url)
    assert.are.equal("EINVAL", code)
    assert.matches("deployment", err)
  end)
end)

describe("extra: what is vendor-specific, verbatim", function()
  it("an Anthropic system prompt marked for caching, and Ollama options merged into the adapter's own", function()
    local blocks = { { type = "text", text = "long rules", cache_control = { type = "ephemeral" } } }
    assert(provider("anthropic"):complete { system = "long rules", prompt = "x", extra = { system = blocks } })
    assert.are.same(blocks, server:stats().last_body.system)
    assert(provider("ollama"):complete { prompt = "x", temperature = 0.5, extra = { options = { num_ctx = 8192 } } })
    assert.are.same({ temperature = 0.5, num_ctx = 8192 }, server:stats().last_body.options)
    assert(provider("openai"):complete { prompt = "x", extra = { logit_bias = { ["50256"] = -100 } } })
    assert.are.same({ ["50256"] = -100 }, server:stats().last_body.logit_bias)
  end)
end)
