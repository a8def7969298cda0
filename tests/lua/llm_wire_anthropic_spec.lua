-- The Anthropic adapter against Anthropic's own documented exchanges
-- (tests/fixtures/wire/anthropic, each naming the page it comes from), in
-- both directions and two layers: the adapter itself (the body it builds
-- from a normalized request; the parts it makes of a documented reply,
-- whole or streamed in pieces), and a real provider against the test
-- server replaying the documented bytes (fault=wire).
local po = require "poengine"
local A = require "poengine.llm.anthropic"
local stream_feed = require("tests.tools.wire").feed
local llm_server = require "tests.tools.llm_server"

local DIR = (os.getenv("POENGINE_SOURCE_DIR") or ".") .. "/tests/fixtures/wire/anthropic/"
local CFG = { base_url = "https://api.anthropic.com", api_key = "sk-ant-test-0123456789" }

local function fixture(name, ext)
  local f = assert(io.open(DIR .. name .. "." .. ext, "rb"))
  local text = f:read("*a")
  f:close()
  return text
end

local function doc(name, ext)
  return assert(po.json.decode(fixture(name, ext or "request.json")))
end

-- The body as it goes on the wire, read back: what the server would see.
local function wire(body)
  return po.json.decode(po.json.encode(body))
end

-- The body the adapter builds for a normalized request, with the documented
-- request's model (a name the docs change from page to page).
local function build(name, req)
  local url, headers, body = A.request(CFG, req, doc(name).model)
  assert(url, headers)
  return wire(body), url, headers
end

-- The documented reply of a fixture, parsed.
local function parse(name, req)
  return A.parse(doc(name, "response.json"), req)
end

-- The documented stream of a fixture, fed to the SSE parser in pieces of
-- `size` bytes, through the adapter. Returns parts (or nil, message, code,
-- info), the text given to emit and the reasoning given to emit_reasoning.
local function stream(name, req, size)
  local parts, msg, code, info, emitted, thought = stream_feed(A, fixture(name, "response.sse"), size, req)
  if not parts then
    return nil, msg, code, info, table.concat(emitted)
  end
  return parts, table.concat(emitted), table.concat(thought)
end

-- The streamed parts must not depend on where the stream is cut.
local function stream_all_cuts(name, req)
  local parts, emitted, thought = stream(name, req)
  for _, size in ipairs { 1, 7, 64 } do
    local p2, e2, t2 = stream(name, req, size)
    p2.raw, parts.raw = nil, nil
    assert.are.same({ parts, emitted, thought }, { p2, e2, t2 })
  end
  return parts, emitted, thought
end

local WEATHER = {
  name = "get_weather",
  description = "Get the current weather in a given location",
  parameters = {
    type = "object",
    properties = {
      location = { type = "string", description = "The city and state, e.g. San Francisco, CA" },
      unit = { type = "string", enum = { "celsius", "fahrenheit" },
        description = "The unit of temperature, either \"celsius\" or \"fahrenheit\"" },
    },
    required = { "location" },
  },
}

local SF = "What is the weather like in San Francisco?"

-- The normalized request each documented request corresponds to.
local REQUESTS = {
  message = { messages = { { role = "user", content = "Hello, world" } }, max_tokens = 1024 },
  stream = { messages = { { role = "user", content = "Hello" } }, max_tokens = 256, stream = true },
  stream_error = { messages = { { role = "user", content = "Hello" } }, max_tokens = 256, stream = true },
  tool_use = { messages = { { role = "user", content = SF } }, max_tokens = 1024, tools = { WEATHER } },
  tool_use_stream = {
    messages = { { role = "user", content = SF } }, max_tokens = 1024, stream = true, tool_choice = "required",
    tools = { { name = WEATHER.name, description = WEATHER.description, parameters = { type = "object",
      properties = { location = WEATHER.parameters.properties.location }, required = { "location" } } } },
  },
  tool_result = {
    max_tokens = 1024,
    tools = { WEATHER },
    messages = {
      { role = "user", content = SF },
      { role = "assistant",
        content = "<thinking>I need to use get_weather, and the user wants SF, which is likely San Francisco, CA.</thinking>",
        tool_calls = { { id = "toolu_01A09q90qw90lq917835lq9", name = "get_weather",
          arguments = { location = "San Francisco, CA", unit = "celsius" } } } },
      { role = "tool", tool_call_id = "toolu_01A09q90qw90lq917835lq9", content = "15 degrees" },
    },
  },
  thinking = {
    messages = { { role = "user", content = "Are there an infinite number of prime numbers such that n mod 4 == 3?" } },
    max_tokens = 16000, reasoning = { budget_tokens = 10000 },
  },
  thinking_stream = { messages = { { role = "user", content = "What is 27 * 453?" } }, max_tokens = 20000,
    stream = true, reasoning = { budget_tokens = 16000 } },
  prompt_caching = {
    max_tokens = 1024,
    system = {
      { type = "text", text = "You are an AI assistant tasked with analyzing literary works. Your goal is to provide "
        .. "insightful commentary on themes, characters, and writing style.\n" },
      { type = "text", text = "<the entire contents of Pride and Prejudice>", cache_control = { type = "ephemeral" } },
    },
    messages = { { role = "user", content = "Analyze the major themes in Pride and Prejudice." } },
  },
  image_url = { max_tokens = 1024, messages = { { role = "user", content = {
    { type = "image", url = "https://upload.wikimedia.org/wikipedia/commons/a/a7/Camponotus_flavomarginatus_ant.jpg" },
    { type = "text", text = "What is in the above image?" } } } } },
  image_base64 = { max_tokens = 1024, messages = { { role = "user", content = {
    { type = "image", media_type = "image/jpeg",
      data = "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAgGBgcGBQgHBwcJCQgKDBQNDAsLDBkSEw8U" },
    { type = "text", text = "What is in the above image?" } } } } },
}

describe("the Anthropic adapter builds each documented request", function()
  for name, req in pairs(REQUESTS) do
    it(name, function()
      local body, url, headers = build(name, req)
      assert.are.same(doc(name), body)
      assert.are.equal("https://api.anthropic.com/v1/messages", url)
      assert.are.equal("2023-06-01", headers["anthropic-version"])
      assert.are.equal(CFG.api_key, headers["x-api-key"])
    end)
  end

  it("refuses seed, which Anthropic has no equivalent of", function()
    local req = { messages = { { role = "user", content = "hi" } }, seed = 7 }
    assert.are.same({ nil, "anthropic: seed is not supported", "EUNSUPPORTED" }, { A.request(CFG, req, "m") })
  end)

  it("maps top_p, stop and temperature; every tool_choice", function()
    local body = wire(select(3, A.request(CFG, { messages = { { role = "user", content = "hi" } }, top_p = 0.9,
      temperature = 0.2, stop = { "END" } }, "m")))
    assert.are.same({ 0.9, 0.2, { "END" } }, { body.top_p, body.temperature, body.stop_sequences })
    local want = { auto = { type = "auto" }, none = { type = "none" }, required = { type = "any" } }
    for choice, wire_choice in pairs(want) do
      local _, _, b = A.request(CFG, { messages = {}, tools = { WEATHER }, tool_choice = choice }, "m")
      assert.are.same(wire_choice, b.tool_choice)
    end
    local _, _, b = A.request(CFG, { messages = {}, tools = { WEATHER }, tool_choice = { name = "get_weather" } }, "m")
    assert.are.same({ type = "tool", name = "get_weather" }, b.tool_choice)
    assert.are.equal("EINVALID", select(3, A.request(CFG, { messages = {}, tool_choice = "sometimes" }, "m")))
  end)

  it("asks an image given as data for its media type", function()
    local req = { messages = { { role = "user", content = { { type = "image", data = "AAAA" } } } } }
    local ok, msg, code = A.request(CFG, req, "m")
    assert.are.same({ nil, "EINVALID" }, { ok, code })
    assert.matches("media_type", msg)
  end)

  it("gives reasoning.effort alone a thinking budget, and leaves room for the answer", function()
    local req = { messages = { { role = "user", content = "hi" } }, reasoning = { effort = "high" } }
    local body = select(3, A.request(CFG, req, "m"))
    assert.are.same({ type = "enabled", budget_tokens = 16384 }, body.thinking)
    assert.are.equal(16384 + A.default_max_tokens, body.max_tokens)
    req.max_tokens = 16384
    local ok, msg, code = A.request(CFG, req, "m")
    assert.are.same({ nil, "EINVALID" }, { ok, code })
    assert.matches("max_tokens %(16384%) must be greater than the thinking budget %(16384%)", msg)
  end)
end)

describe("the Anthropic adapter reads each documented reply", function()
  it("message: text, stop reason and usage with cache reads and writes", function()
    assert.are.same({ text = "Hi! My name is Claude.", finish_reason = "stop",
      usage = { input = 2095, output = 503, cached_read = 2051, cache_write = 2051, reasoning = 0 } }, parse("message"))
  end)

  it("stream: the same, from message_start, text deltas and message_delta, pings skipped", function()
    local parts, emitted = stream_all_cuts("stream")
    assert.are.same({ "Hello!", "Hello!", "stop", { input = 25, output = 15, reasoning = 0 } },
      { parts.text, emitted, parts.finish_reason, parts.usage })
    assert.is_nil(parts.tool_calls)
  end)

  it("tool_use: tool_use blocks as tool calls, with the input as arguments", function()
    local parts = parse("tool_use")
    assert.are.same({
      text = "<thinking>I need to call the get_weather function, and the user wants SF, which is likely San "
        .. "Francisco, CA.</thinking>",
      finish_reason = "tool_calls",
      tool_calls = { { id = "toolu_01A09q90qw90lq917835lq9", name = "get_weather",
        arguments = { location = "San Francisco, CA", unit = "celsius" } } },
    }, parts)
  end)

  it("tool_use_stream: input_json_delta fragments assembled per content block", function()
    local parts, emitted = stream_all_cuts("tool_use_stream")
    assert.are.equal("Okay, let's check the weather for San Francisco, CA:", parts.text)
    assert.are.equal(parts.text, emitted)
    assert.are.same({ { id = "toolu_01T1x1fJ34qAmk2tNTrN7Up6", name = "get_weather",
      arguments_json = "{\"location\": \"San Francisco, CA\", \"unit\": \"fahrenheit\"}" } }, parts.tool_calls)
    assert.are.same({ location = "San Francisco, CA", unit = "fahrenheit" },
      po.json.decode(parts.tool_calls[1].arguments_json))
    assert.are.same({ "tool_calls", { input = 472, output = 89, reasoning = 0 } }, { parts.finish_reason, parts.usage })
  end)

  it("tool_result: the final answer after the tool's result", function()
    local parts = parse("tool_result")
    assert.are.same({ "The current weather in San Francisco is 15 degrees Celsius (59 degrees Fahrenheit). It's a "
      .. "cool day in the city by the bay!", "stop" }, { parts.text, parts.finish_reason })
  end)

  it("thinking: thinking blocks kept apart from the text, with their signature", function()
    local parts = parse("thinking")
    local signature = "WaUjzkypQ2mUEVM36O2TxuC06KN8xyfbJwyem2dw3URve/op91XWHOEBLLqIOMfFG/UvLEczmEsUjavL...."
    assert.are.same({
      text = "Based on my analysis...",
      reasoning = "Let me analyze this step by step...",
      thinking_blocks = { { type = "thinking", thinking = "Let me analyze this step by step...", signature = signature } },
    }, parts)
  end)

  it("thinking_stream: thinking_delta to emit_reasoning, text_delta to emit, signature_delta kept", function()
    local parts, emitted, thought = stream_all_cuts("thinking_stream")
    local reasoning = "Let me solve this step by step:\n\n1. First break down 27 * 453\n2. 453 = 400 + 50 + 3"
      .. "\n3. 27 * 400 = 10,800\n4. 27 * 50 = 1,350\n5. 27 * 3 = 81\n6. 10,800 + 1,350 + 81 = 12,231"
    assert.are.same({ "27 * 453 = 12,231", "27 * 453 = 12,231", reasoning, reasoning, "stop" },
      { parts.text, emitted, parts.reasoning, thought, parts.finish_reason })
    assert.are.same({ { type = "thinking", thinking = reasoning,
      signature = "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds..." } }, parts.thinking_blocks)
  end)

  it("stream_error: an error event part-way ends the call with its message and mapped code", function()
    local parts, msg, code, info, emitted = stream("stream_error", nil, 7)
    assert.are.same({ nil, "Overloaded", "EOVERLOADED", 529, "overloaded_error", "Hello" },
      { parts, msg, code, info.status, info.error_type, emitted })
  end)
end)

describe("the Anthropic adapter maps the documented error bodies", function()
  local CODES = { error_overloaded = "EOVERLOADED", error_rate_limit = "ERATELIMIT", error_invalid_request = "EINVALID",
    error_authentication = "EAUTH", error_permission = "EAUTH", error_prompt_too_long = "ECONTEXT" }
  for name, want in pairs(CODES) do
    it(name .. " -> " .. want, function()
      local body = doc(name, "response.json")
      local message, kind = A.error_message(body)
      assert.are.same({ body.error.message, body.error.type }, { message, kind })
      assert.are.equal(want, A.error_code(doc(name, "meta.json").status, body, message))
      assert.are.equal(want == "ECONTEXT", A.is_context_error(400, body, message))
    end)
  end

  it("leaves server errors to the status (EHTTP), and knows credit errors are not retried", function()
    assert.is_nil(A.error_code(500, { type = "error", error = { type = "api_error", message = "Internal" } }))
    assert.are.equal("EQUOTA", A.error_code(400, { error = { type = "invalid_request_error",
      message = "Your credit balance is too low to access the Anthropic API." } }))
  end)
end)

describe("Anthropic tool turns", function()
  it("a two-step conversation: the documented tool_use reply becomes the documented follow-up", function()
    local first = parse("tool_use")
    local req = {
      max_tokens = 1024, tools = { WEATHER },
      messages = { { role = "user", content = SF },
        { role = "assistant", content = first.text, tool_calls = first.tool_calls },
        { role = "tool", tool_call_id = first.tool_calls[1].id, content = "15 degrees" } },
    }
    local want = doc("tool_result")
    -- The page words the assistant's preamble differently in its two examples.
    want.messages[2].content[1].text = first.text
    assert.are.same(want, build("tool_result", req))
  end)

  it("tool calls given as JSON text or in OpenAI's wire shape; consecutive results share one user turn", function()
    local req = { messages = {
      { role = "assistant", tool_calls = {
        { id = "a", name = "f", arguments_json = "{\"x\":1}" },
        { id = "b", type = "function", ["function"] = { name = "g", arguments = "{}" } } } },
      { role = "tool", tool_call_id = "a", content = "one" },
      { role = "tool", tool_call_id = "b", content = "two" },
      { role = "user", content = "and now?" } } }
    local body = wire(select(3, A.request(CFG, req, "m")))
    assert.are.same({
      { role = "assistant", content = { { type = "tool_use", id = "a", name = "f", input = { x = 1 } },
        { type = "tool_use", id = "b", name = "g", input = {} } } },
      { role = "user", content = { { type = "tool_result", tool_use_id = "a", content = "one" },
        { type = "tool_result", tool_use_id = "b", content = "two" } } },
      { role = "user", content = "and now?" },
    }, body.messages)
    req.messages[1].tool_calls[1].arguments_json = "{x"
    assert.are.equal("EINVALID", select(3, A.request(CFG, req, "m")))
  end)

  it("passes the previous turn's thinking blocks back first, unchanged", function()
    local first = parse("thinking")
    local req = { messages = { { role = "user", content = "q" },
      { role = "assistant", content = first.text, thinking_blocks = first.thinking_blocks,
        tool_calls = { { id = "t", name = "f", arguments = { a = 1 } } } },
      { role = "tool", tool_call_id = "t", content = "r" } } }
    local body = wire(select(3, A.request(CFG, req, "m")))
    assert.are.same({ first.thinking_blocks[1], { type = "text", text = "Based on my analysis..." },
      { type = "tool_use", id = "t", name = "f", input = { a = 1 } } }, body.messages[2].content)
  end)

  it("moves system messages into system, as text blocks when any carries a cache_control", function()
    local req = { system = "be brief", messages = { { role = "system", content = {
      { type = "text", text = "cached", cache_control = { type = "ephemeral" } } } }, { role = "user", content = "hi" } } }
    local body = wire(select(3, A.request(CFG, req, "m")))
    assert.are.same({ { type = "text", text = "be brief" },
      { type = "text", text = "cached", cache_control = { type = "ephemeral" } } }, body.system)
    assert.are.same({ { role = "user", content = "hi" } }, body.messages)
  end)
end)

describe("Anthropic structured output", function()
  local SCHEMA = { type = "object", properties = { location = { type = "string" } }, required = { "location" } }

  it("asks for a format through a forced tool whose input schema is the format's schema", function()
    local req = { messages = { { role = "user", content = "hi" } }, tools = { WEATHER },
      response_format = { type = "json_schema", name = "answer", schema = SCHEMA } }
    local body = wire(select(3, A.request(CFG, req, "m")))
    assert.are.same({ name = "answer", description = "Give the answer, as this tool's input.", input_schema = SCHEMA },
      body.tools[2])
    assert.are.same({ type = "tool", name = "answer" }, body.tool_choice)
    body = wire(select(3, A.request(CFG, { messages = {}, response_format = { type = "json" } }, "m")))
    assert.are.same({ { name = "response", description = "Give the answer, as this tool's input.",
      input_schema = { type = "object" } } }, body.tools)
  end)

  it("refuses what cannot go with a forced tool", function()
    local rf = { type = "json" }
    for _, req in ipairs { { messages = {}, response_format = rf, tool_choice = "auto" },
      { messages = {}, response_format = rf, reasoning = { effort = "low" } },
      { messages = {}, response_format = { type = "json_schema", schema = { type = "array" } } } } do
      assert.are.equal("EUNSUPPORTED", select(3, A.request(CFG, req, "m")))
    end
  end)

  it("returns the format tool's input as the text, not as a tool call", function()
    local req = { response_format = { type = "json", name = "get_weather" } }
    local parts = parse("tool_use", req)
    assert.are.same({ location = "San Francisco, CA", unit = "celsius" }, po.json.decode(parts.text))
    assert.are.same({ nil, "stop" }, { parts.tool_calls, parts.finish_reason })
    local streamed, emitted = stream_all_cuts("tool_use_stream", req)
    assert.are.same({ "{\"location\": \"San Francisco, CA\", \"unit\": \"fahrenheit\"}", nil, "stop" },
      { streamed.text, streamed.tool_calls, streamed.finish_reason })
    assert.are.equal(streamed.text, emitted:sub(-#streamed.text))
    assert.is_table(parse("tool_use").tool_calls) -- without the request, a tool call stays one
  end)
end)

describe("the Anthropic provider against the documented bytes replayed", function()
  local server = llm_server.for_spec(setup, teardown)

  -- The provider's response (or nil, message, code, info) to the request
  -- of fixture `name`, answered with the bytes of fixture `reply`; the body
  -- the server got; the text given to on_token.
  local function replay(name, reply, chunk)
    local p = po.llm.provider("anthropic", { base_url = server.url, api_key = CFG.api_key,
      headers = { ["X-Test-Fault"] = "fault=wire;wire=anthropic/" .. (reply or name) .. ";chunk=" .. (chunk or 64) } })
    local req = po.json.decode(po.json.encode(REQUESTS[name]))
    req.model = doc(name).model
    local tokens = {}
    local res, err, code, info = p:complete(req, { normalized = true, on_token = function(t) tokens[#tokens + 1] = t end })
    return res, err, code, info, server:stats().last_body, table.concat(tokens)
  end

  -- The documented requests that have no documented reply get another's.
  local REPLY = { prompt_caching = "message", image_url = "message", image_base64 = "message" }

  for name in pairs(REQUESTS) do
    it(name .. ": the documented request reaches the server", function()
      local _, _, _, _, sent = replay(name, REPLY[name])
      assert.are.same(doc(name), sent)
    end)
  end

  it("message: text, finish reason and usage", function()
    local res = assert(replay("message"))
    assert.are.same({ "Hi! My name is Claude.", "stop", 2095, 503, 2051, 2051 }, { res.text, res.finish_reason,
      res.usage.input, res.usage.output, res.usage.cached_read, res.usage.cache_write })
  end)

  it("stream and thinking_stream: the text streamed and returned", function()
    for name, text in pairs { stream = "Hello!", thinking_stream = "27 * 453 = 12,231" } do
      local res, _, _, _, _, tokens = replay(name, nil, 5)
      assert.are.same({ text, text, "stop" }, { res.text, tokens, res.finish_reason })
    end
  end)

  -- The pieces a documented stream carries in its deltas' `field`
  -- (partial_json, thinking), joined: what the provider must assemble.
  local function joined(name, field)
    local out = {}
    for data in fixture(name, "response.sse"):gmatch("data: ([^\n]+)") do
      local ev = po.json.decode(data)
      if type(ev) == "table" and type(ev.delta) == "table" and type(ev.delta[field]) == "string" then
        out[#out + 1] = ev.delta[field]
      end
    end
    return table.concat(out)
  end

  it("tool_use and tool_use_stream: the tool calls' ids, names and decoded input", function()
    local inputs = {}
    for _, block in ipairs(doc("tool_use", "response.json").content) do
      if block.type == "tool_use" then
        inputs.tool_use = block.input
      end
    end
    inputs.tool_use_stream = po.json.decode(joined("tool_use_stream", "partial_json"))
    for name, id in pairs { tool_use = "toolu_01A09q90qw90lq917835lq9", tool_use_stream = "toolu_01T1x1fJ34qAmk2tNTrN7Up6" } do
      local res = assert(replay(name, nil, 9))
      assert.are.same({ "tool_calls", id, "get_weather" },
        { res.finish_reason, res.tool_calls[1].id, res.tool_calls[1].name })
      assert.are.equal("table", type(inputs[name]))
      assert.are.same(inputs[name], res.tool_calls[1].arguments)
      assert.are.same(inputs[name], po.json.decode(res.tool_calls[1].arguments_json))
    end
  end)

  it("thinking_stream: the thinking kept apart, given to on_reasoning as it streams", function()
    local p = po.llm.provider("anthropic", { base_url = server.url, api_key = CFG.api_key,
      headers = { ["X-Test-Fault"] = "fault=wire;wire=anthropic/thinking_stream;chunk=5" } })
    local req = po.json.decode(po.json.encode(REQUESTS.thinking_stream))
    req.model = doc("thinking_stream").model
    local thought = {}
    local res = assert(p:complete(req, { normalized = true, on_reasoning = function(t) thought[#thought + 1] = t end }))
    local want = joined("thinking_stream", "thinking")
    assert.is_true(#want > 0)
    assert.are.equal(want, res.reasoning)
    assert.are.equal(want, table.concat(thought))
    assert.is_nil(res.text:find(want, 1, true)) -- not in the answer
  end)

  it("stream_error: the error event ends the call with its message and code", function()
    local res, err, code, info = replay("stream_error", nil, 11)
    assert.is_nil(res)
    assert.matches("Overloaded$", err)
    assert.are.same({ "EOVERLOADED", 529 }, { code, info.status })
  end)

  it("the documented error bodies: the status, and the message in the error", function()
    for _, name in ipairs { "error_overloaded", "error_rate_limit", "error_invalid_request", "error_authentication",
      "error_permission", "error_prompt_too_long" } do
      local res, err, code, info = replay("message", name)
      assert.is_nil(res)
      assert.are.equal(doc(name, "meta.json").status, info.status)
      local want = { error_overloaded = "EOVERLOADED", error_rate_limit = "ERATELIMIT", error_invalid_request = "EINVALID",
        error_authentication = "EAUTH", error_permission = "EAUTH", error_prompt_too_long = "ECONTEXT" }
      assert.are.equal(want[name], code)
      assert.matches(doc(name, "response.json").error.message, err, 1, true)
    end
  end)
end)
