-- The OpenAI and Azure OpenAI adapters against the exchanges the vendors
-- document (tests/fixtures/wire/openai, .../azure): for each, the wire body
-- built from the matching normalized request, and the documented reply
-- (plain, or a stream fed in pieces) read back into the normalized parts;
-- in two layers: the adapter's functions, then a real provider (or, for
-- what the provider does not call yet, po.http) against the test server
-- replaying the fixture byte for byte.
local po = require "poengine"
local openai = require "poengine.llm.openai"
local azure = require "poengine.llm.azure"
local stream_feed = require("tests.tools.wire").feed
local llm_server = require "tests.tools.llm_server"

local WIRE = (os.getenv("POENGINE_SOURCE_DIR") or ".") .. "/tests/fixtures/wire/"
local KEY = "sk-live-SECRET-0123456789"

local function read(path)
  local f = assert(io.open(WIRE .. path, "rb"))
  local text = f:read("*a")
  f:close()
  return text
end

local function decoded(path)
  return assert(po.json.decode(read(path)))
end

-- The body as the server receives it: encoded, then decoded.
local function wire(body)
  return assert(po.json.decode(po.json.encode(body)))
end

-- A documented stream through the adapter in pieces of `piece` bytes:
-- parts (or nil, message, code), then the text and reasoning pieces.
local function replay(adapter, bytes, piece)
  local parts, msg, code, _, tokens, thoughts = stream_feed(adapter, bytes, piece)
  return parts, msg, code, tokens, thoughts
end

local function usage(input, output, cached, reasoning)
  return { input = input, output = output, cached_read = cached, cache_write = 0, reasoning = reasoning }
end

local PIECES = { 1, 7, 64, 1e9 }

-- Each documented exchange: the normalized request that corresponds to the
-- documented one, the model, and the parts the documented reply reads as.
local TOOL = {
  name = "get_current_weather",
  description = "Get the current weather in a given location",
  parameters = {
    type = "object",
    properties = {
      location = { type = "string", description = "The city and state, e.g. San Francisco, CA" },
      unit = { type = "string", enum = { "celsius", "fahrenheit" } },
    },
    required = { "location" },
  },
}
local STREAM_TOOL = {
  name = "get_weather",
  description = "Get current temperature for a given location.",
  parameters = {
    type = "object",
    properties = { location = { type = "string", description = "City and country e.g. Bogotá, Colombia" } },
    required = { "location" },
    additionalProperties = false,
  },
  strict = true,
}
local function hello(stream)
  return { messages = { { role = "developer", content = "You are a helpful assistant." },
    { role = "user", content = "Hello!" } }, stream = stream }
end
local SCHEMA_REQ = decoded("openai/chat_json_schema.request.json").response_format.json_schema
local IMAGE_URL = "https://upload.wikimedia.org/wikipedia/commons/thumb/d/dd/"
  .. "Gfp-wisconsin-madison-the-nature-boardwalk.jpg/2560px-Gfp-wisconsin-madison-the-nature-boardwalk.jpg"

local CASES = {
  chat_basic = {
    model = "VAR_chat_model_id",
    req = hello(false),
    parts = { text = "Hello! How can I assist you today?", finish_reason = "stop", usage = usage(19, 10, 0, 0) },
  },
  chat_stream = {
    model = "VAR_chat_model_id",
    req = hello(true),
    parts = { text = "Hello", finish_reason = "stop", usage = usage(19, 10, 0, 0) },
    tokens = { "Hello" },
  },
  chat_image = {
    model = "gpt-5.4",
    req = { messages = { { role = "user", content = { { type = "text", text = "What is in this image?" },
      { type = "image", url = IMAGE_URL } } } }, max_tokens = 300 },
    parts = {
      text = "The image shows a wooden boardwalk path running through a lush green field or meadow. The sky is bright "
        .. "blue with some scattered clouds, giving the scene a serene and peaceful atmosphere. Trees and shrubs are "
        .. "visible in the background.",
      finish_reason = "stop",
      usage = usage(1117, 46, 0, 0),
    },
  },
  chat_tools = {
    model = "gpt-5.4",
    req = { messages = { { role = "user", content = "What is the weather like in Boston today?" } }, tools = { TOOL },
      tool_choice = "auto" },
    parts = {
      text = "",
      finish_reason = "tool_calls",
      tool_calls = { { id = "call_abc123", name = "get_current_weather",
        arguments_json = '{\n"location": "Boston, MA"\n}' } },
      usage = usage(82, 17, nil, 0),
    },
  },
  chat_tool_result = {
    model = "gpt-5.4",
    req = { messages = {
      { role = "user", content = "What is the weather like in Boston today?" },
      { role = "assistant", tool_calls = { { id = "call_abc123", name = "get_current_weather",
        arguments_json = '{\n"location": "Boston, MA"\n}' } } },
      { role = "tool", tool_call_id = "call_abc123",
        content = '{"temperature": "22", "unit": "celsius", "description": "Sunny"}' },
    }, tools = { TOOL }, tool_choice = "auto" },
    parts = { text = "It is sunny in Boston today, at 22 °C.", finish_reason = "stop", usage = usage(121, 14, nil, nil) },
  },
  chat_tools_stream = {
    model = "gpt-4.1",
    req = { messages = { { role = "user", content = "What's the weather like in Paris today?" } },
      tools = { STREAM_TOOL }, stream = true },
    parts = {
      text = "",
      finish_reason = "tool_calls",
      tool_calls = { { id = "call_DdmO9pD3xa9XTPNJ32zg2hcA", name = "get_weather",
        arguments_json = '{"location":"Paris, France"}' } },
      usage = usage(64, 16, nil, nil),
    },
    tokens = {},
  },
  chat_json_schema = {
    model = "gpt-4o-2024-08-06",
    req = { system = "You are a helpful math tutor. Guide the user through the solution step by step.",
      messages = { { role = "user", content = "how can I solve 8x + 7 = -23" } },
      response_format = { type = "json_schema", name = "math_reasoning", schema = SCHEMA_REQ.schema, strict = true } },
    parts = {
      text = decoded("openai/chat_json_schema.response.json").choices[1].message.content,
      finish_reason = "stop",
      usage = usage(97, 123, nil, nil),
    },
  },
  chat_reasoning = {
    model = "o4-mini",
    req = { messages = { { role = "user", content = 'Write a bash script that takes a matrix represented as a string '
      .. 'with format "[1,2],[3,4],[5,6]" and prints the transpose in the same format.' } },
      reasoning = { effort = "medium" } },
    parts = { text = "Here is a bash script that transposes the matrix...", finish_reason = "stop",
      usage = usage(43, 1335, 0, 1024) },
  },
  deepseek_reasoning_stream = {
    model = "deepseek-reasoner",
    req = { messages = { { role = "user", content = "9.11 and 9.8, which is greater?" } }, stream = true },
    parts = { text = "9.8 is greater.", reasoning = "Compare 9.11 with 9.80: 80 > 11.", finish_reason = "stop",
      usage = usage(13, 40, 0, 30) },
    tokens = { "9.8 ", "is greater." },
    thoughts = { "Compare ", "9.11 with 9.80: ", "80 > 11." },
  },
}

local NAMES = {}
for name in pairs(CASES) do
  NAMES[#NAMES + 1] = name
end
table.sort(NAMES)

local function cfg()
  return { base_url = "https://api.openai.com/v1", api_key = KEY }
end

describe("openai adapter, documented exchanges", function()
  for _, name in ipairs(NAMES) do
    local case = CASES[name]
    describe(name, function()
      it("builds the documented request", function()
        local url, headers, body = openai.request(cfg(), case.req, case.model)
        assert.are.equal("https://api.openai.com/v1/chat/completions", url)
        assert.are.equal("Bearer " .. KEY, headers["Authorization"])
        assert.are.same(decoded("openai/" .. name .. ".request.json"), wire(body))
      end)

      it("reads the documented reply", function()
        local meta = decoded("openai/" .. name .. ".meta.json")
        assert.matches("^https://", meta.source)
        if meta.content_type == "text/event-stream" then
          local bytes = read("openai/" .. name .. ".response.sse")
          for _, piece in ipairs(PIECES) do
            local parts, msg, _, tokens, thoughts = replay(openai, bytes, piece)
            assert(parts, msg)
            parts.raw = nil
            assert.are.same(case.parts, parts)
            assert.are.same(case.tokens, tokens)
            assert.are.same(case.thoughts or {}, thoughts)
          end
        else
          local parts = assert(openai.parse(decoded("openai/" .. name .. ".response.json")))
          assert.are.same(case.parts, parts)
        end
      end)
    end)
  end

  it("reads a structured answer as the documented JSON", function()
    local parts = assert(openai.parse(decoded("openai/chat_json_schema.response.json")))
    local answer = assert(po.json.decode(parts.text))
    assert.are.equal("x = -15 / 4", answer.final_answer)
    assert.are.equal(5, #answer.steps)
  end)
end)

describe("openai adapter, the request surface", function()
  local function body_of(req, model)
    local _, _, body = assert(openai.request(cfg(), req, model or "m"))
    return wire(body)
  end
  local user = { role = "user", content = "hi" }

  it("maps the sampling fields, stop and seed", function()
    local b = body_of { messages = { user }, top_p = 0.9, temperature = 0.2, stop = { "END", "\n\n" }, seed = 7,
      max_tokens = 50 }
    assert.are.same({ model = "m", messages = { user }, top_p = 0.9, temperature = 0.2, stop = { "END", "\n\n" },
      seed = 7, max_tokens = 50 }, b)
  end)

  it("asks for usage in the last chunk of a stream", function()
    local b = body_of { messages = { user }, stream = true }
    assert.is_true(b.stream)
    assert.are.same({ include_usage = true }, b.stream_options)
  end)

  it("maps tool_choice: the words as they are, a name to a function choice", function()
    for _, word in ipairs { "auto", "none", "required" } do
      assert.are.equal(word, body_of({ messages = { user }, tools = { TOOL }, tool_choice = word }).tool_choice)
    end
    assert.are.same({ type = "function", ["function"] = { name = "get_current_weather" } },
      body_of({ messages = { user }, tools = { TOOL }, tool_choice = { name = "get_current_weather" } }).tool_choice)
  end)

  it("maps response_format json to json_object and a schema without a name to 'response'", function()
    assert.are.same({ type = "json_object" }, body_of({ messages = { user }, response_format = { type = "json" } })
      .response_format)
    local schema = { type = "object", properties = { n = { type = "integer" } } }
    assert.are.same({ type = "json_schema", json_schema = { name = "response", schema = schema } },
      body_of({ messages = { user }, response_format = { type = "json_schema", schema = schema } }).response_format)
  end)

  it("sends reasoning.effort as reasoning_effort, and max_tokens as max_completion_tokens then", function()
    local b = body_of { messages = { user }, reasoning = { effort = "high", budget_tokens = 2048 }, max_tokens = 900 }
    assert.are.equal("high", b.reasoning_effort)
    assert.are.equal(900, b.max_completion_tokens)
    assert.is_nil(b.max_tokens)
  end)

  it("sends image data as a data: URL and leaves out cache_control", function()
    local b = body_of { messages = { { role = "user", content = {
      { type = "text", text = "what is this?", cache_control = { type = "ephemeral" } },
      { type = "image", data = "iVBORw0KGgo=", media_type = "image/png" } } } } }
    assert.are.same({ { type = "text", text = "what is this?" },
      { type = "image_url", image_url = { url = "data:image/png;base64,iVBORw0KGgo=" } } }, b.messages[1].content)
  end)

  it("converts tool turns: arguments as a JSON string, results as role tool", function()
    local b = body_of { messages = {
      { role = "user", content = "What's the weather like in Paris today?" },
      { role = "assistant", tool_calls = { { id = "call_1", name = "get_weather", arguments = { location = "Paris, France" } } } },
      { role = "tool", tool_call_id = "call_1", content = "14" },
      { role = "assistant", content = "Let me check again.",
        tool_calls = { { id = "call_2", name = "get_weather", arguments_json = '{"location":"Lyon"}' } } },
    } }
    assert.are.same({ role = "assistant", content = po.json.null, tool_calls = { { id = "call_1", type = "function",
      ["function"] = { name = "get_weather", arguments = '{"location":"Paris, France"}' } } } }, b.messages[2])
    assert.are.same({ role = "tool", tool_call_id = "call_1", content = "14" }, b.messages[3])
    assert.are.equal("Let me check again.", b.messages[4].content)
    assert.are.equal('{"location":"Lyon"}', b.messages[4].tool_calls[1]["function"].arguments)
  end)

  it("refuses what OpenAI has no field for, naming it", function()
    local ok, msg, code = openai.request(cfg(), { messages = { user }, reasoning = { budget_tokens = 1024 } }, "m")
    assert.is_nil(ok)
    assert.are.equal("EUNSUPPORTED", code)
    assert.matches("^openai: reasoning.budget_tokens is not supported", msg)
    ok, msg, code = openai.request(cfg(), { messages = { { role = "user", content = {
      { type = "audio", data = "AAAA" } } } } }, "m")
    assert.is_nil(ok)
    assert.are.equal("EUNSUPPORTED", code)
    assert.matches("messages%[1%]%.content%[1%]%.type 'audio'", msg)
  end)

  it("says an image given as data needs its media_type", function()
    local ok, msg, code = openai.request(cfg(), { messages = { { role = "user", content = {
      { type = "image", data = "AAAA" } } } } }, "m")
    assert.is_nil(ok)
    assert.are.equal("EINVAL", code)
    assert.matches("media_type", msg)
  end)
end)

describe("openai adapter, replies of compatible servers", function()
  local function reply(message)
    return { choices = { { index = 0, message = message, finish_reason = "stop" } } }
  end

  it("keeps reasoning_content (DeepSeek, vLLM) or reasoning (OpenRouter) apart from the answer", function()
    local parts = assert(openai.parse(reply { role = "assistant", content = "9.8", reasoning_content = "80 > 11" }))
    assert.are.equal("9.8", parts.text)
    assert.are.equal("80 > 11", parts.reasoning)
    assert.are.equal("why", assert(openai.parse(reply { content = "x", reasoning = "why" })).reasoning)
    assert.is_nil(assert(openai.parse(reply { content = "x", reasoning = { effort = "low" } })).reasoning)
  end)

  it("gives arguments sent as an object as `arguments`, and refuses a tool call without a name", function()
    local parts = assert(openai.parse(reply { tool_calls = { { id = "c1", type = "function",
      ["function"] = { name = "f", arguments = { x = 1 } } } } }))
    assert.are.same({ { id = "c1", name = "f", arguments = { x = 1 } } }, parts.tool_calls)
    local ok, msg, code = openai.parse(reply { tool_calls = { { id = "c1", ["function"] = { arguments = "{}" } } } })
    assert.is_nil(ok)
    assert.are.equal("EPROTO", code)
    assert.matches("tool_calls%[1%]%.function%.name", msg)
  end)

  it("assembles parallel streamed tool calls by index", function()
    local function chunk(delta)
      return "data: " .. po.json.encode { choices = { { index = 0, delta = delta } } } .. "\n\n"
    end
    local bytes = chunk { tool_calls = { { index = 0, id = "a", ["function"] = { name = "f", arguments = "" } } } }
      .. chunk { tool_calls = { { index = 0, ["function"] = { arguments = '{"x":' } } } }
      .. chunk { tool_calls = { { index = 1, id = "b", ["function"] = { name = "g", arguments = "{}" } } } }
      .. chunk { tool_calls = { { index = 0, ["function"] = { arguments = "1}" } } } }
      .. "data: [DONE]\n\n"
    local parts = assert(replay(openai, bytes, 5))
    assert.are.same({ { id = "a", name = "f", arguments_json = '{"x":1}' }, { id = "b", name = "g", arguments_json = "{}" } },
      parts.tool_calls)
  end)
end)

describe("openai adapter, errors", function()
  local CODES = {
    error_context_length = { 400, "ECONTEXT" },
    error_insufficient_quota = { 429, "EQUOTA" },
    error_rate_limit = { 429, "ERATELIMIT" },
    error_invalid_key = { 401, "EAUTH" },
  }
  for name, want in pairs(CODES) do
    it("maps " .. name .. " to " .. want[2], function()
      local meta = decoded("openai/" .. name .. ".meta.json")
      assert.are.equal(want[1], meta.status)
      local body = decoded("openai/" .. name .. ".response.json")
      local message, kind = openai.error_message(body)
      assert.are.equal(body.error.message, message)
      assert.are.equal(body.error.code, kind)
      assert.are.equal(want[2], openai.error_code(meta.status, body, message))
      assert.are.equal(want[2] == "ECONTEXT", openai.is_context_error(meta.status, body, message))
    end)
  end

  it("maps by status when the body says little", function()
    assert.are.equal("ERATELIMIT", openai.error_code(429, { error = { message = "slow down" } }, "slow down"))
    assert.are.equal("EAUTH", openai.error_code(403, nil, "forbidden"))
    assert.are.equal("EINVALID", openai.error_code(400, { error = { type = "invalid_request_error" } }, "bad"))
    assert.are.equal("ECONTEXT", openai.error_code(400, "not json", "This model's maximum context length is 8192 tokens"))
    assert.is_nil(openai.error_code(500, { error = { type = "server_error" } }, "oops"))
  end)

  it("ends a stream at an error event, with its message and mapped code", function()
    local parts, msg, code, tokens = replay(openai, read("openai/error_in_stream.response.sse"), 5)
    assert.is_nil(parts)
    assert.are.equal("The server had an error while processing your request. Sorry about that!", msg)
    assert.are.equal("EHTTP", code) -- server_error: no more specific code
    assert.are.same({ "Hello" }, tokens)
    local err = 'data: {"error":{"message":"Rate limit reached","type":"requests","param":null,'
      .. '"code":"rate_limit_exceeded"}}\n\n'
    parts, msg, code = replay(openai, err, 3)
    assert.is_nil(parts)
    assert.are.equal("Rate limit reached", msg)
    assert.are.equal("ERATELIMIT", code)
  end)
end)

describe("openai adapter, embeddings", function()
  it("builds the documented request and reads the documented reply", function()
    local url, headers, body = openai.embed_request(cfg(), { "The food was delicious and the waiter..." },
      "text-embedding-ada-002", {})
    assert.are.equal("https://api.openai.com/v1/embeddings", url)
    assert.are.equal("Bearer " .. KEY, headers["Authorization"])
    assert.are.same(decoded("openai/embeddings.request.json"), wire(body))
    assert.are.same({ vectors = { { 0.0023064255, -0.009327292, -0.0028842222 } }, usage = { input = 8 } },
      openai.embed_parse(decoded("openai/embeddings.response.json")))
  end)

  it("sends dimensions, and puts the vectors in input order by index", function()
    local _, _, body = openai.embed_request(cfg(), { "a", "b" }, "text-embedding-3-small", { dimensions = 2 })
    assert.are.equal(2, body.dimensions)
    local out = assert(openai.embed_parse { data = { { index = 1, embedding = { 3, 4 } }, { index = 0, embedding = { 1, 2 } } },
      usage = { prompt_tokens = 2 } })
    assert.are.same({ { 1, 2 }, { 3, 4 } }, out.vectors)
  end)

  it("refuses a reply with a missing or repeated index, or base64 vectors", function()
    local _, msg, code = openai.embed_parse { data = { { index = 0, embedding = { 1 } }, { index = 0, embedding = { 2 } } } }
    assert.are.equal("EPROTO", code)
    assert.matches("data%[2%]%.index", msg)
    _, msg, code = openai.embed_parse { data = { { index = 0, embedding = "AAAA" } } }
    assert.are.equal("EPROTO", code)
    assert.matches("encoding_format float", msg)
  end)
end)

describe("azure adapter", function()
  local function azure_cfg(options)
    return { base_url = "https://my-res.openai.azure.com", api_key = KEY, options = options }
  end

  it("builds the documented request: deployment path, api-version, api-key header, no model", function()
    local url, headers, body = azure.request(azure_cfg { deployment = "gpt-4o prod" }, { system =
      "you are a helpful assistant that talks like a pirate", messages = { { role = "user",
      content = "can you tell me how to care for a parrot?" } } }, "gpt-4o")
    assert.are.equal("https://my-res.openai.azure.com/openai/deployments/gpt-4o%20prod/chat/completions"
      .. "?api-version=" .. azure.API_VERSION, url)
    assert.are.equal(KEY, headers["api-key"])
    assert.is_nil(headers["Authorization"])
    assert.are.same(decoded("azure/chat_basic.request.json"), wire(body))
  end)

  it("takes api_version from the options, the model as the deployment without one, and refuses with neither", function()
    local url = azure.request(azure_cfg { deployment = "d", api_version = "2025-01-01-preview" },
      { messages = { { role = "user", content = "hi" } } }, "m")
    assert.matches("/deployments/d/chat/completions%?api%-version=2025%-01%-01%-preview$", url)
    url = azure.request(azure_cfg {}, { messages = { { role = "user", content = "hi" } } }, "m")
    assert.matches("/deployments/m/chat/completions%?api%-version=", url)
    local ok, msg, code = azure.request(azure_cfg {}, { messages = { { role = "user", content = "hi" } } }, nil)
    assert.is_nil(ok)
    assert.are.equal("EINVAL", code)
    assert.matches("deployment", msg)
    ok, msg, code = azure.request(azure_cfg { deployment = "d" }, { messages = {}, reasoning = { budget_tokens = 1 } }, "m")
    assert.is_nil(ok)
    assert.are.equal("EUNSUPPORTED", code)
    assert.matches("^azure: reasoning.budget_tokens", msg)
  end)

  it("reads the documented reply", function()
    assert.are.same({ text = "Ahoy matey! So ye be wantin' to care for a fine squawkin' parrot, eh?",
      finish_reason = "stop", usage = usage(33, 557, nil, nil) }, azure.parse(decoded("azure/chat_basic.response.json")))
  end)

  it("builds and reads the documented embeddings exchange", function()
    local url, headers, body = azure.embed_request(azure_cfg { deployment = "ada" }, { "this is a test" },
      "text-embedding-ada-002", {})
    assert.are.equal("https://my-res.openai.azure.com/openai/deployments/ada/embeddings?api-version="
      .. azure.API_VERSION, url)
    assert.are.equal(KEY, headers["api-key"])
    assert.are.same(decoded("azure/embeddings.request.json"), wire(body))
    assert.are.same({ vectors = { { -0.012838087, -0.007421397, -0.017617522 } }, usage = { input = 4 } },
      azure.embed_parse(decoded("azure/embeddings.response.json")))
  end)
end)

-- The second layer: the same exchanges over HTTP, the test server replaying
-- each fixture's bytes in 7-byte pieces.
describe("openai wire fixtures through the test server", function()
  local server = llm_server.for_spec(setup, teardown, before_each)

  local function fault(vendor, name)
    return { ["X-Test-Fault"] = "fault=wire;wire=" .. vendor .. "/" .. name .. ";chunk=7" }
  end

  -- The normalized response of a real provider to a fixture's exchange,
  -- with the tokens it streamed; nil, message, code, info on failure.
  local function via_provider(name, req, model)
    local p = po.llm.provider("openai", { base_url = server.url .. "/v1", api_key = KEY, headers = fault("openai", name) })
    local call = {}
    for k, v in pairs(req) do
      call[k] = v
    end
    call.model = model
    local tokens = {}
    local res, msg, code, info = p:complete(call, { normalized = true,
      on_token = function(t) tokens[#tokens + 1] = t end })
    return res, msg, code, info, tokens
  end

  -- A wire request sent with po.http as built, for what the provider does
  -- not call yet (embeddings, Azure's options): the decoded reply.
  local function via_http(vendor, name, url, headers, body)
    for k, v in pairs(fault(vendor, name)) do
      headers[k] = v
    end
    url = url:gsub("^https://[^/]+", server.url)
    local res = assert(assert(po.http.request { method = "POST", url = url, headers = headers,
      body = po.json.encode(body) }):wait(10))
    assert.are.equal(200, res.status)
    return assert(po.json.decode(res.body))
  end

  for _, name in ipairs(NAMES) do
    local case = CASES[name]
    it(name .. ": sends the documented body and returns the documented reply", function()
      local res, msg, _, _, tokens = via_provider(name, case.req, case.model)
      assert(res, msg)
      assert.are.same(decoded("openai/" .. name .. ".request.json"), server:stats().last_body)
      assert.are.equal(case.parts.text, res.text)
      assert.are.equal(case.parts.finish_reason, res.finish_reason)
      local u = case.parts.usage
      assert.are.same({ input = u.input, output = u.output, cached_read = u.cached_read or 0, cache_write = 0,
        reasoning = u.reasoning or 0 }, res.usage)
      assert.are.same(case.tokens or {}, tokens)
      for i, tc in ipairs(case.parts.tool_calls or {}) do
        assert.are.equal(tc.id, res.tool_calls[i].id)
        assert.are.equal(tc.name, res.tool_calls[i].name)
        -- the arguments decoded, and their text as the server sent it
        local args = tc.arguments or po.json.decode(tc.arguments_json)
        assert.are.same(args, res.tool_calls[i].arguments)
        assert.are.same(args, po.json.decode(res.tool_calls[i].arguments_json))
      end
      assert.are.equal(#(case.parts.tool_calls or {}), #(res.tool_calls or {}))
      assert.are.equal(case.parts.reasoning, res.reasoning)
      if case.req.response_format then
        assert.are.same(po.json.decode(case.parts.text), res.json)
      else
        assert.is_nil(res.json)
      end
    end)
  end

  for _, name in ipairs { "error_context_length", "error_insufficient_quota", "error_rate_limit", "error_invalid_key" } do
    it(name .. ": fails with the documented status and message, no key in it", function()
      local res, msg, code, info = via_provider(name, hello(false), "gpt-4o")
      local body = decoded("openai/" .. name .. ".response.json")
      assert.is_nil(res)
      assert.are.equal(decoded("openai/" .. name .. ".meta.json").status, info.status)
      assert.matches(body.error.message:sub(1, 30), msg, 1, true)
      assert.not_matches("sk%-abc%*%*%*xyz", msg) -- a key, even masked, is scrubbed
      local want = { error_context_length = "ECONTEXT", error_insufficient_quota = "EQUOTA",
        error_rate_limit = "ERATELIMIT", error_invalid_key = "EAUTH" }
      assert.are.equal(want[name], code)
    end)
  end

  it("error_in_stream: ends the call with the error's message after the text before it", function()
    local res, msg, code, _, tokens = via_provider("error_in_stream", hello(true), "gpt-4o-mini")
    assert.is_nil(res)
    assert.matches("The server had an error while processing your request", msg, 1, true)
    assert.are.equal("EHTTP", code)
    assert.are.same({ "Hello" }, tokens)
  end)

  it("embeddings: the documented exchange over HTTP", function()
    local url, headers, body = openai.embed_request({ base_url = server.url .. "/v1", api_key = KEY },
      { "The food was delicious and the waiter..." }, "text-embedding-ada-002", {})
    local reply = via_http("openai", "embeddings", url, headers, body)
    local st = server:stats()
    assert.are.same(decoded("openai/embeddings.request.json"), st.last_body)
    assert.are.equal(1, st.by_path["/v1/embeddings"])
    assert.are.same({ 0.0023064255, -0.009327292, -0.0028842222 }, assert(openai.embed_parse(reply)).vectors[1])
  end)

  it("azure: the documented chat and embeddings exchanges over HTTP", function()
    local cfg = { base_url = "https://my-res.openai.azure.com", api_key = KEY, options = { deployment = "pirate" } }
    local url, headers, body = azure.request(cfg, { system = "you are a helpful assistant that talks like a pirate",
      messages = { { role = "user", content = "can you tell me how to care for a parrot?" } } }, "gpt-4o")
    local reply = via_http("azure", "chat_basic", url, headers, body)
    local st = server:stats()
    assert.are.equal(1, st.by_path["/openai/deployments/pirate/chat/completions?api-version=" .. azure.API_VERSION])
    assert.are.equal(KEY, st.last_headers["api-key"])
    assert.is_nil(st.last_headers["authorization"])
    assert.are.same(decoded("azure/chat_basic.request.json"), st.last_body)
    assert.are.equal("stop", assert(azure.parse(reply)).finish_reason)

    cfg.options.deployment = "ada"
    url, headers, body = azure.embed_request(cfg, { "this is a test" }, "text-embedding-ada-002", {})
    reply = via_http("azure", "embeddings", url, headers, body)
    assert.are.same(decoded("azure/embeddings.request.json"), server:stats().last_body)
    assert.are.equal(4, assert(azure.embed_parse(reply)).usage.input)
  end)
end)
