-- Replies the adapters and the provider must refuse or take as they come,
-- beyond the documented exchanges: embeddings replies of the wrong shape
-- from the test server (fault=replay with tests/fixtures/streams/openai_embed_*),
-- a chat reply that is not an object, a stream request answered in one
-- piece with its reasoning, a URL libcurl cannot take; the Ollama and
-- OpenAI adapters' own edges, called directly as the wire specs do.
local po = require "poengine"
local llm_server = require "tests.tools.llm_server"
local ollama = require "poengine.llm.ollama"
local openai = require "poengine.llm.openai"
local provider_mod = require "poengine.llm.provider"

local server = llm_server.for_spec(setup, teardown, before_each)
local KEY = "sk-test-0123456789abcdefghij"

local function openai_provider(extra)
  local opts = { base_url = server.url .. "/v1", api_key = KEY }
  for k, v in pairs(extra or {}) do
    opts[k] = v
  end
  return po.llm.provider("openai", opts)
end

-- An embeddings call whose reply is the fixture's bytes: { nil, message, code }.
local function embed_model(file)
  return "text-embedding-3-small#fault=replay;file=" .. file
end

local function embed_replayed(file, texts)
  local p = openai_provider { model = embed_model(file) }
  return { po.llm.embed(p, texts or { "a b" }) }
end

describe("po.llm.embed refuses a reply of the wrong shape with EPROTO", function()
  it("a reply that is not an object", function()
    local got = embed_replayed("openai_reply_number.json")
    assert.are.same({ nil, "EPROTO" }, { got[1], got[3] })
    assert.matches(": bad reply: the reply is number, not an object$", got[2])
  end)

  it("data that is not a list (the adapter's complaint, with the model)", function()
    local got = embed_replayed("openai_embed_data_string.json")
    assert.are.same({ nil, "openai " .. embed_model("openai_embed_data_string.json") .. ": bad reply: data is string, not a list",
      "EPROTO" }, { got[1], got[2], got[3] })
  end)

  it("fewer vectors than texts", function()
    local got = embed_replayed("openai_embed_one_vector.json", { "one", "two" })
    assert.are.same({ nil, "openai " .. embed_model("openai_embed_one_vector.json") .. ": the reply holds 1 vectors for 2 texts", "EPROTO" },
      { got[1], got[2], got[3] })
  end)

  it("an empty vector, or one holding a string", function()
    local got = embed_replayed("openai_embed_empty_vector.json")
    assert.are.same({ nil, "openai " .. embed_model("openai_embed_empty_vector.json") .. ": vector 1 is not a list of numbers", "EPROTO" },
      { got[1], got[2], got[3] })
    got = embed_replayed("openai_embed_string_number.json")
    assert.are.same({ nil, "EPROTO" }, { got[1], got[3] })
    assert.matches("data%[1%]%.embedding%[2%] is string, not a number", got[2])
  end)
end)

describe("po.llm.embed, other outcomes", function()
  it("estimates the input tokens of a reply without usage, and says so", function()
    local p = openai_provider { model = "text-embedding-3-small#usage=none" }
    local res = assert(po.llm.embed(p, { "one two three" }))
    assert.is_true(res.usage.estimated)
    assert.is_true(res.usage.input > 0)
    assert.are.equal(1536, #res.vectors[1])
  end)

  it("a provider without embeddings is EUNSUPPORTED; a URL libcurl refuses is its code, before any transfer", function()
    local a = po.llm.provider("anthropic", { base_url = server.url, api_key = KEY, model = "claude" })
    local r1, m1, c1 = po.llm.embed(a, "x")
    assert.are.same({ nil, "anthropic: anthropic has no embeddings endpoint", "EUNSUPPORTED" }, { r1, m1, c1 })
    local bad = po.llm.provider("openai", { base_url = "gopher://127.0.0.1:1/v1", api_key = KEY, model = "m" })
    local r2, m2, c2 = po.llm.embed(bad, "x")
    assert.are.same({ nil, "POST gopher://127.0.0.1:1/v1/embeddings: Protocol \"gopher\" not supported or disabled in "
      .. "libcurl", "EINVAL" }, { r2, m2, c2 })
    local r3, _, c3 = bad:complete { prompt = "hi" }
    assert.are.same({ nil, "EINVAL" }, { r3, c3 })
  end)
end)

describe("the provider's reading of a chat reply", function()
  it("a reply that is JSON but not an object is EPROTO, with its status", function()
    local p = openai_provider { model = "m#fault=replay;file=openai_reply_number.json" }
    local res, msg, code, info = p:complete { prompt = "hi" }
    assert.are.same({ nil, "EPROTO", 200 }, { res, code, info.status })
    assert.matches("^openai m#fault=replay;file=openai_reply_number%.json: bad reply: the reply is number, not an object$", msg)
  end)

  it("a stream request answered in one piece hands its reasoning and text over whole", function()
    local p = po.llm.provider("anthropic", { base_url = server.url, api_key = KEY,
      model = "claude#fault=wire;wire=anthropic/thinking" })
    local tokens, thoughts = {}, {}
    local res = assert(p:complete({ prompt = "hi", stream = true },
      { on_token = function(t) tokens[#tokens + 1] = t end, on_reasoning = function(t) thoughts[#thoughts + 1] = t end }))
    assert.are.same({ res.text }, tokens)
    assert.are.same({ res.reasoning }, thoughts)
    assert.is_true(#res.reasoning > 0 and #res.text > 0)
  end)

  it("a base_url without a scheme is taken as http://", function()
    local p = po.llm.provider("openai", { base_url = server.url:gsub("^http://", "") .. "/v1", api_key = KEY,
      model = "m" })
    local res = assert(p:complete { prompt = "hello there" })
    assert.is_string(res.text)
    assert.are.equal(1, server:stats().requests)
  end)

  it("lists adapters a script added after the built-in ones, by name, and lua last", function()
    local adapters = provider_mod.adapters
    adapters.zz_second = setmetatable({}, { __index = adapters.openai })
    adapters.zz_first = setmetatable({}, { __index = adapters.openai })
    local kinds = provider_mod.kinds()
    adapters.zz_second, adapters.zz_first = nil, nil
    assert.are.same({ "zz_first", "zz_second", "lua" }, { kinds[#kinds - 2], kinds[#kinds - 1], kinds[#kinds] })
    assert.are.equal("openai", kinds[1])
  end)
end)

describe("the Ollama adapter's edges", function()
  local CFG = { base_url = "http://127.0.0.1:11434" }

  it("refuses a tool call whose arguments_json is not an object, and a json_schema format without a schema", function()
    local req = { messages = { { role = "assistant", tool_calls = { { id = "1", name = "f", arguments_json = "\"text\"" } } } } }
    local ok, msg, code = ollama.request(CFG, req, "m")
    assert.are.same({ nil, "ollama: messages[1].tool_calls[1].arguments_json is not a JSON object", "EINVALID" },
      { ok, msg, code })
    ok, msg, code = ollama.request(CFG, { messages = { { role = "user", content = "hi" } },
      response_format = { type = "json_schema" } }, "m")
    assert.are.same({ nil, "ollama: response_format.schema must be a table (a JSON schema)", "EINVALID" },
      { ok, msg, code })
  end)

  it("reads tool calls with text, null or no arguments; refuses a nameless one or an id of another type", function()
    local function reply(calls)
      return { model = "m", message = { role = "assistant", content = "", thinking = "", tool_calls = calls },
        done = true, done_reason = "stop", prompt_eval_count = 3, eval_count = 4 }
    end
    local parts = assert(ollama.parse(reply {
      { ["function"] = { name = "a", arguments = "{\"x\":1}" } },
      { ["function"] = { name = "b", arguments = po.json.null } },
    }))
    assert.are.same({ { name = "a", arguments_json = "{\"x\":1}" }, { name = "b", arguments = {}, arguments_json = "{}" } },
      parts.tool_calls)
    assert.is_nil(parts.reasoning) -- an empty thinking is none
    parts = assert(ollama.parse(reply {}))
    assert.is_nil(parts.tool_calls) -- an empty list is none
    assert.are.same({ nil, "bad reply: message.tool_calls[1].function.name is number, not a string", "EPROTO" },
      { ollama.parse(reply { { ["function"] = { name = 5 } } }) })
    assert.are.same({ nil, "bad reply: message.tool_calls[1].id is number, not a string", "EPROTO" },
      { ollama.parse(reply { { id = 5, ["function"] = { name = "a" } } }) })
  end)

  it("refuses an embeddings reply whose prompt_eval_count is not a number", function()
    assert.are.same({ nil, "bad reply: prompt_eval_count is string, not a number", "EPROTO" },
      { ollama.embed_parse { embeddings = { { 0.5, 0.25 } }, prompt_eval_count = "2" } })
  end)
end)

describe("the OpenAI adapter's edges", function()
  local CFG = { base_url = "https://api.openai.com/v1", api_key = KEY }

  it("refuses an image part with neither url nor data; passes a response_format it does not know through", function()
    local ok, msg, code = openai.request(CFG, { messages = { { role = "user", content = { { type = "image" } } } } }, "m")
    assert.are.same({ nil, "openai: messages[1].content[1]: an image needs a url or data", "EINVAL" }, { ok, msg, code })
    local rf = { type = "text" }
    local _, _, body = openai.request(CFG, { messages = { { role = "user", content = "hi" } }, response_format = rf }, "m")
    assert.are.equal(rf, body.response_format)
  end)

  it("refuses tool calls whose id or arguments are of another type", function()
    local function reply(call)
      return { choices = { { index = 0, finish_reason = "tool_calls",
        message = { role = "assistant", content = po.json.null, tool_calls = { call } } } } }
    end
    assert.are.same({ nil, "bad reply: choices[1].message.tool_calls[1].id is number, not a string", "EPROTO" },
      { openai.parse(reply { id = 5, type = "function", ["function"] = { name = "f", arguments = "{}" } }) })
    assert.are.same({ nil, "bad reply: choices[1].message.tool_calls[1].function.arguments is boolean, not a string",
      "EPROTO" }, { openai.parse(reply { id = "c", type = "function", ["function"] = { name = "f", arguments = true } }) })
  end)

  it("reads a numeric error code as text, as some compatible servers send it", function()
    assert.are.same({ "slow down", "429" }, { openai.error_message { error = { message = "slow down", code = 429 } } })
  end)
end)
