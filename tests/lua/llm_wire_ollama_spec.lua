-- The Ollama adapter against Ollama's documented wire examples
-- (tests/fixtures/wire/ollama, each with the page it came from), both ways:
-- the body it builds equals the documented request, and the documented
-- replies (plain, and streamed in small pieces) come back normalized. Two
-- layers: the adapter alone, and a real provider against the test server
-- replaying the fixture byte for byte (fault=wire). Then what Ollama lacks
-- (EUNSUPPORTED), its errors, OLLAMA_HOST and embeddings.
local po = require "poengine"
local ollama = require "poengine.llm.ollama"
local stream_feed = require("tests.tools.wire").feed
local llm_server = require "tests.tools.llm_server"
local proc = require "tests.tools.proc"
local util_copy = require("poengine.llm.util").copy

local DIR = (os.getenv("POENGINE_SOURCE_DIR") or ".") .. "/tests/fixtures/wire/ollama/"
local CFG = { base_url = "http://ollama.test:11434" }

local function load(file)
  return assert(po.json.decode(proc.read(DIR .. file)))
end

-- The documented request, with Ollama's default made explicit where the
-- page leaves stream out (it streams unless told not to).
local function documented(name)
  local doc = load(name .. ".request.json")
  if doc.messages and doc.stream == nil then
    doc.stream = true
  end
  return doc
end

-- A body as the server receives it: nil fields gone, arrays as arrays.
local function wire(body)
  return po.json.decode(po.json.encode(body))
end

-- The adapter's body for a normalized request (messages, system, stream …).
local function build(req, model)
  local url, headers, body = ollama.request(CFG, req, model)
  assert(url, headers)
  assert.are.equal(CFG.base_url .. "/api/chat", url)
  assert.are.equal("application/json", headers["Content-Type"])
  return wire(body)
end

local function user(text)
  return { role = "user", content = text }
end

-- The tools of the documented examples, in the normalized (flat) form.
local GET_WEATHER = {
  name = "get_weather",
  description = "Get the weather in a given city",
  parameters = {
    type = "object",
    properties = { city = { type = "string", description = "The city to get the weather for" } },
    required = { "city" },
  },
}
local GET_CURRENT_WEATHER = {
  name = "get_current_weather",
  description = "Get the current weather for a location",
  parameters = {
    type = "object",
    properties = {
      location = { type = "string", description = "The location to get the weather for, e.g. San Francisco, CA" },
      format = { type = "string", description = "The format to return the weather in, e.g. 'celsius' or 'fahrenheit'",
        enum = { "celsius", "fahrenheit" } },
    },
    required = { "location", "format" },
  },
}

-- The documented image: its base64 is data to carry, not to retype.
local IMAGE = load("chat_images.request.json").messages[1].images[1]

-- The normalized request each chat fixture's documented request stands
-- for (the model is the fixture's own: it is sent as given).
local REQUESTS = {
  chat = { messages = { user "why is the sky blue?" }, stream = false },
  chat_stream = { messages = { user "why is the sky blue?" }, stream = true },
  chat_history_stream = {
    messages = { user "why is the sky blue?", { role = "assistant", content = "due to rayleigh scattering." },
      user "how is that different than mie scattering?" },
    stream = true,
  },
  chat_tools_stream = { messages = { user "what is the weather in tokyo?" }, tools = { GET_WEATHER }, stream = true },
  chat_tools = { messages = { user "What is the weather today in Paris?" }, tools = { GET_CURRENT_WEATHER },
    stream = false },
  chat_format_schema = {
    messages = { user("Ollama is 22 years old and busy saving the world."
      .. " Return a JSON object with the age and availability.") },
    stream = false,
    temperature = 0,
    response_format = { type = "json_schema", name = "answer", strict = true, schema = {
      type = "object",
      properties = { age = { type = "integer" }, available = { type = "boolean" } },
      required = { "age", "available" },
    } },
  },
  chat_format_json = { messages = { user "Tell me about Canada in one line" }, stream = false,
    response_format = { type = "json" } },
  chat_images = {
    messages = { { role = "user", content = { { type = "text", text = "what is in this image?" },
      { type = "image", data = IMAGE, media_type = "image/png", cache_control = { type = "ephemeral" } } } } },
    stream = true,
  },
  chat_options = { messages = { user "Hello!" }, seed = 101, temperature = 0, stream = true },
  chat_think = { messages = { user "How many letter r are in strawberry?" }, reasoning = {}, stream = false },
  chat_think_stream = { messages = { user "How many letter r are in strawberry?" }, reasoning = {}, stream = true },
  chat_think_level = { messages = { user "What is 1+1?" }, reasoning = { effort = "low" }, stream = true },
  -- The normalized tool turns carry ids; Ollama's page shows none (see below).
  chat_tool_result = {
    messages = {
      user "what is the weather in Toronto?",
      { role = "assistant",
        tool_calls = { { id = "call_1", name = "get_weather", arguments = { city = "Toronto" } } } },
      { role = "tool", tool_call_id = "call_1", content = "11 degrees celsius" },
    },
    tools = { GET_WEATHER },
    stream = false,
  },
}

-- What each documented reply normalizes to.
local WANT = {
  chat = { text = "Hello! How are you today?", usage = { input = 26, output = 298 } },
  chat_stream = { text = "The", tokens = { "The" }, usage = { input = 26, output = 282 } },
  chat_history_stream = { text = "The", tokens = { "The" }, usage = { input = 61, output = 468 } },
  chat_tools_stream = { text = "", finish_reason = "tool_calls", usage = { input = 169, output = 15 },
    tool_calls = { { id = "call_1", name = "get_weather", arguments = { city = "Tokyo" } } } },
  chat_tools = { text = "", finish_reason = "tool_calls", usage = { input = 122, output = 33 },
    tool_calls = { { id = "call_1", name = "get_current_weather",
      arguments = { format = "celsius", location = "Paris, FR" } } } },
  chat_tool_result = { text = "The current temperature in Toronto is 11°C.", finish_reason = "stop",
    usage = { input = 94, output = 11 } },
  chat_format_schema = { text = "{\"age\": 22, \"available\": false}", finish_reason = "stop",
    usage = { input = 34, output = 12 } },
  chat_images = { text = " The image features a cute, little pig with an angry facial expression."
    .. " It's wearing a heart on"
    .. " its shirt and is waving in the air. This scene appears to be part of a drawing or sketching project.",
    usage = { input = 26, output = 83 } },
  chat_options = { text = "Hello! How are you today?", usage = { input = 26, output = 298 } },
  chat_think = { text = "There are 3 letter r in strawberry.", finish_reason = "stop",
    usage = { input = 11, output = 18 },
    reasoning = "Spell it: s-t-r-a-w-b-e-r-r-y. The r's are at positions 3, 8 and 9." },
  chat_think_stream = { text = "There are 3 letter r.", tokens = { "There are ", "3 letter r." },
    finish_reason = "stop",
    usage = { input = 11, output = 18 }, reasoning = "Spell it: s-t-r-a-w-b-e-r-r-y.",
    reasoning_pieces = { "Spell it", ": s-t-r-a-w-b-e-r-r-y." } },
}

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do
    keys[#keys + 1] = k
  end
  table.sort(keys)
  return keys
end

-- Checks parts (or a normalized response) against WANT[name]: every field,
-- and every tool call's id, name and arguments (decoded from
-- arguments_json as well, so both agree).
local function check(name, parts)
  local w = WANT[name]
  assert.are.equal(w.text, parts.text)
  assert.are.equal(w.finish_reason, parts.finish_reason)
  assert.are.equal(w.usage.input, parts.usage.input)
  assert.are.equal(w.usage.output, parts.usage.output)
  assert.are.equal(w.reasoning, parts.reasoning)
  if not w.tool_calls then
    assert.is_nil(parts.tool_calls)
    return
  end
  assert.are.equal(#w.tool_calls, #parts.tool_calls)
  for i, c in ipairs(w.tool_calls) do
    local got = parts.tool_calls[i]
    assert.is_nil(got.id) -- Ollama sends none; the provider numbers them (line 502)
    assert.are.equal(c.name, got.name)
    assert.are.same(c.arguments, got.arguments)
    assert.are.same(c.arguments, po.json.decode(got.arguments_json))
  end
end

-- The fixture's reply through the adapter's stream functions, fed in
-- pieces of `size` bytes: the parts, the tokens and the reasoning pieces.
local function stream_through(name, size)
  local parts, msg, code, _, tokens, thoughts = stream_feed(ollama, proc.read(DIR .. name .. ".response.ndjson"), size)
  if not parts then
    return nil, msg, code, tokens
  end
  return parts, tokens, thoughts
end

describe("the Ollama adapter builds the documented request", function()
  for _, name in ipairs(sorted_keys(REQUESTS)) do
    if name ~= "chat_tool_result" then
      it("for " .. name, function()
        local doc = documented(name)
        assert.are.same(doc, build(REQUESTS[name], doc.model))
      end)
    end
  end

  -- The one difference from the page: the ids of the call and of its
  -- result travel too (Ollama's Message and ToolCall carry id and
  -- tool_call_id, and its server now gives each call an id), so a reply to
  -- parallel calls of one tool says which call it answers.
  it("for chat_tool_result, with the call's id beside the documented tool_name", function()
    local doc = documented("chat_tool_result")
    doc.messages[2].tool_calls[1].id = "call_1"
    doc.messages[3].tool_call_id = "call_1"
    assert.are.same(doc, build(REQUESTS.chat_tool_result, doc.model))
    -- arguments given as the JSON text (as OpenAI-shaped turns hold them) go as the same object
    local req = util_copy(REQUESTS.chat_tool_result)
    req.messages[2].tool_calls[1] = { id = "call_1", name = "get_weather", arguments_json = "{\"city\": \"Toronto\"}" }
    assert.are.same(doc, build(req, doc.model))
  end)

  it("puts top_p, seed, stop, temperature and max_tokens in options, as the documented option names", function()
    local doc = documented("generate_options").options
    local body = build({ messages = { user "Why is the sky blue?" }, stream = false, temperature = 0.8, top_p = 0.9,
      seed = 42, stop = { "\n", "user:" }, max_tokens = 100 }, "llama3.2")
    assert.are.same({ seed = doc.seed, num_predict = doc.num_predict, top_p = doc.top_p, temperature = doc.temperature,
      stop = doc.stop }, body.options)
  end)

  it("sends the system prompt as the first message, and no options when none is set", function()
    local body = build({ system = "be brief", messages = { user "hi" }, stream = false }, "m")
    assert.are.same({ { role = "system", content = "be brief" }, { role = "user", content = "hi" } }, body.messages)
    assert.is_nil(body.options)
    assert.is_nil(body.think)
    assert.is_nil(body.format)
  end)

  it("takes an image given as a data: URL as its base64, and text parts joined", function()
    local body = build({ messages = { { role = "user", content = { { type = "text", text = "one" },
      { type = "image", url = "data:image/png;base64," .. IMAGE }, { type = "text", text = "two" } } } } }, "m")
    assert.are.same({ { role = "user", content = "one\ntwo", images = { IMAGE } } }, body.messages)
  end)

  it("accepts tool_choice \"auto\", which is what Ollama does anyway", function()
    local req = util_copy(REQUESTS.chat_tools)
    req.tool_choice = "auto"
    local doc = documented("chat_tools")
    assert.are.same(doc, build(req, doc.model))
  end)

  it("sends embeddings requests to /api/embed with input as a list, and dimensions", function()
    for _, case in ipairs { { "embed", {} }, { "embed_multiple", {} }, { "embed_dimensions", { dimensions = 128 } } } do
      local doc = documented(case[1])
      local texts = type(doc.input) == "table" and doc.input or { doc.input }
      local url, headers, body = ollama.embed_request(CFG, texts, doc.model, case[2])
      assert.are.equal(CFG.base_url .. "/api/embed", url)
      assert.are.equal("application/json", headers["Content-Type"])
      -- Ollama takes "text or list of text"; one text goes as a list of one.
      doc.input = texts
      assert.are.same(doc, wire(body))
    end
  end)
end)

describe("the Ollama adapter normalizes the documented reply", function()
  for _, name in ipairs(sorted_keys(WANT)) do
    local ok, file = pcall(proc.read, DIR .. name .. ".response.json")
    if ok then
      it("of " .. name, function()
        check(name, assert(ollama.parse(assert(po.json.decode(file)))))
      end)
    else
      it("of " .. name .. ", streamed and cut anywhere", function()
        for _, size in ipairs { 1, 7, 64, 4096 } do
          local parts, tokens, thoughts = stream_through(name, size)
          check(name, parts)
          assert.are.same(WANT[name].tokens or {}, tokens)
          assert.are.same(WANT[name].reasoning_pieces or {}, thoughts)
        end
      end)
    end
  end

  it("numbers tool calls that come without an id across a stream, and keeps an id Ollama gives", function()
    local st = ollama.stream_start()
    local function none() error("no text was expected") end
    local call = '{"function":{"name":"f","arguments":{}}}'
    assert.is_nil(ollama.stream_event(st, '{"message":{"content":"","tool_calls":[' .. call .. ']},"done":false}',
      none))
    assert.is_nil(ollama.stream_event(st, '{"message":{"content":"","tool_calls":[{"id":"call_x7","function":'
      .. '{"name":"g","arguments":{"a":[1,2]}}},' .. call .. ']},"done":false}', none))
    assert.is_nil(ollama.stream_event(st, '{"message":{"content":""},"done":true,"done_reason":"stop",'
      .. '"prompt_eval_count":1,"eval_count":2}', none))
    local parts = assert(ollama.stream_finish(st))
    -- Ollama's own ids are kept; the others are left for the provider to
    -- number over the conversation (llm_tool_loop_spec).
    assert.are.same({ nil, "call_x7", nil },
      { parts.tool_calls[1].id, parts.tool_calls[2].id, parts.tool_calls[3].id })
    local calls = assert(require("poengine.llm.response").tool_calls(parts.tool_calls, 4))
    assert.are.same({ "call_5", "call_x7", "call_7" }, { calls[1].id, calls[2].id, calls[3].id })
    assert.are.equal("{}", parts.tool_calls[1].arguments_json)
    assert.are.same({ a = { 1, 2 } }, parts.tool_calls[2].arguments)
    assert.are.equal("tool_calls", parts.finish_reason)
  end)

  it("says length when Ollama stopped at num_predict", function()
    local parts = assert(ollama.parse { message = { content = "cut" }, done = true, done_reason = "length" })
    assert.are.equal("length", parts.finish_reason)
  end)

  it("returns EPROTO for a tool call or thinking of the wrong shape", function()
    for _, body in ipairs {
      { message = { content = "", tool_calls = { { name = "f" } } } },
      { message = { content = "", tool_calls = { { ["function"] = { name = "f", arguments = 3 } } } } },
      { message = { content = "", thinking = { "x" } } },
    } do
      local parts, err, code = ollama.parse(body)
      assert.is_nil(parts)
      assert.are.equal("EPROTO", code, err)
      assert.matches("bad reply: message%.", err)
    end
  end)
end)

describe("Ollama's errors", function()
  it("map to codes: a missing model is EINVALID, not retried; 429 is ERATELIMIT", function()
    local body = load("error_model_not_found.response.json")
    local msg = ollama.error_message(body)
    assert.are.equal("model 'llama3.2' not found", msg)
    assert.are.equal(404, load("error_model_not_found.meta.json").status)
    assert.are.equal("EINVALID", ollama.error_code(404, body, msg))
    assert.are.equal("ERATELIMIT", ollama.error_code(429, { error = "too many requests" }))
    assert.are.equal("EINVALID", ollama.error_code(400, { error = "invalid JSON" }))
    assert.are.equal("EAUTH", ollama.error_code(401, { error = "unauthorized" }))
    assert.are.equal("ECONTEXT", ollama.error_code(400, { error = "the input length exceeds the context length" }))
    assert.is_nil(ollama.error_code(500, { error = "the model failed to generate a response" }))
    assert.is_nil(ollama.error_code(502, { error = "bad gateway" }))
  end)

  it("end a stream at the documented error line, with its message", function()
    for _, size in ipairs { 1, 64 } do
      local parts, msg, code, tokens = stream_through("stream_error", size)
      assert.is_nil(parts)
      assert.are.equal("an error was encountered while running the model", msg)
      assert.are.equal("EHTTP", code)
      assert.are.same({}, tokens) -- the documented lines are /api/generate's: no message, no chat text
    end
  end)
end)

describe("what Ollama has no field for is EUNSUPPORTED, naming the field", function()
  local cases = {
    { "tool_choice \"none\"", { tool_choice = "none" } },
    { "tool_choice \"required\"", { tool_choice = "required" } },
    { "tool_choice { name = \"get_weather\" }", { tool_choice = { name = "get_weather" } } },
    { "reasoning.budget_tokens", { reasoning = { budget_tokens = 2048 } } },
    { "reasoning.budget_tokens", { reasoning = { effort = "high", budget_tokens = 2048 } } },
    { "messages[1].content[2]: an image url", { messages = { { role = "user", content = {
      { type = "text", text = "what is this?" }, { type = "image", url = "https://example.com/cat.png" } } } } } },
    { "messages[1].content[1]: a content part of type 'audio'", { messages = { { role = "user", content = {
      { type = "audio", data = "AAAA" } } } } } },
    { "response_format type 'xml'", { response_format = { type = "xml" } } },
  }
  for _, case in ipairs(cases) do
    it(case[1], function()
      local req = { messages = { user "hi" }, tools = { GET_WEATHER } }
      for k, v in pairs(case[2]) do
        req[k] = v
      end
      local url, msg, code = ollama.request(CFG, req, "m")
      assert.is_nil(url)
      assert.are.equal("EUNSUPPORTED", code)
      assert.is_truthy(msg:find("ollama: " .. case[1] .. " is not supported", 1, true), msg)
    end)
  end
end)

describe("OLLAMA_HOST", function()
  it("is read as Ollama's client reads it", function()
    local cases = {
      { "0.0.0.0", "http://0.0.0.0:11434" },
      { "gpu-box:8080", "http://gpu-box:8080" },
      { " gpu-box ", "http://gpu-box:11434" },
      { ":8080", "http://127.0.0.1:8080" },
      { "[::1]:9000", "http://[::1]:9000" },
      { "::1", "http://[::1]:11434" },
      { "gpu-box/ollama/", "http://gpu-box:11434/ollama" },
      { "https://ollama.example.com/", "https://ollama.example.com" },
      { "http://127.0.0.1:11434", "http://127.0.0.1:11434" },
      { "ollama.com", "https://ollama.com" },
    }
    for _, c in ipairs(cases) do
      assert.are.equal(c[2], ollama.normalize_base_url(c[1]), c[1])
    end
    assert.is_nil(ollama.normalize_base_url(""))
    assert.is_nil(ollama.normalize_base_url(nil))
    assert.are.equal("OLLAMA_HOST", ollama.base_url_env)
  end)

  it("gives the default base URL, and localhost:11434 without it", function()
    local script = proc.tempfile('print(require("poengine.llm.ollama").default_base_url())', ".lua")
    local status, out, err = proc.sh("env OLLAMA_HOST=gpu-box " .. proc.quote(proc.bin) .. " " .. proc.quote(script))
    assert.are.equal(0, status, err)
    assert.are.equal("http://gpu-box:11434\n", out)
    status, out, err = proc.sh("env -u OLLAMA_HOST " .. proc.quote(proc.bin) .. " " .. proc.quote(script))
    os.remove(script)
    assert.are.equal(0, status, err)
    assert.are.equal("http://localhost:11434\n", out)
  end)
end)

describe("the Ollama embeddings reply", function()
  it("gives the vectors in order and usage from prompt_eval_count", function()
    local one = assert(ollama.embed_parse(load("embed.response.json")))
    assert.are.equal(1, #one.vectors)
    assert.are.same({ 0.010071029, -0.0017594862, 0.05007221, 0.04692972, 0.054916814, 0.008599704, 0.105441414,
      -0.025878139, 0.12958129, 0.031952348 }, one.vectors[1])
    assert.are.equal(8, one.usage.input)
    local two = assert(ollama.embed_parse(load("embed_multiple.response.json")))
    assert.are.equal(2, #two.vectors)
    assert.are.equal(-0.0098027075, two.vectors[2][1])
    assert.are.equal(0.09072481, two.vectors[2][10])
    assert.is_nil(two.usage.input) -- the documented reply to several inputs has no count
  end)

  it("is EPROTO when it is not a list of lists of numbers", function()
    for _, body in ipairs { {}, { embeddings = "x" }, { embeddings = { 1 } }, { embeddings = { { "a" } } } } do
      local res, err, code = ollama.embed_parse(body)
      assert.is_nil(res)
      assert.are.equal("EPROTO", code, err)
    end
  end)
end)

-- Through a real provider and the test server, which replays the fixture.
describe("an Ollama provider against the documented replies", function()
  local server = llm_server.for_spec(setup, teardown, before_each)

  -- The fixture's exchange through p:complete: the response (or the error
  -- triple), the streamed tokens, and the body the server received.
  local function replay(name, req, wire_name)
    local p = po.llm.provider("ollama", { base_url = server.url,
      headers = { ["X-Test-Fault"] = "fault=wire;wire=ollama/" .. (wire_name or name) .. ";chunk=7" } })
    local tokens = {}
    local res, err, code, info = p:complete(req, { normalized = true,
      on_token = function(t) tokens[#tokens + 1] = t end })
    local stats = server:stats()
    assert.are.equal(1, stats.by_path["/api/chat"])
    return res, tokens, stats.last_body, err, code, info
  end

  -- Two documented requests stream but show a pretty-printed single object
  -- as the reply (application/json): the provider reads such a reply whole
  -- and gives its text to on_token once.
  local ONE_PIECE = { chat_images = true, chat_options = true }

  for _, name in ipairs(sorted_keys(WANT)) do
    it("of " .. name, function()
      local doc = documented(name)
      local req = util_copy(REQUESTS[name])
      req.model = doc.model
      local res, tokens, sent, err = replay(name, req)
      assert(res, err)
      assert.are.equal(WANT[name].text, res.text)
      assert.are.equal(WANT[name].reasoning, res.reasoning)
      assert.are.equal(WANT[name].finish_reason, res.finish_reason)
      assert.are.equal(WANT[name].usage.input, res.usage.input)
      assert.are.equal(WANT[name].usage.output, res.usage.output)
      if ONE_PIECE[name] then
        assert.is_true(req.stream)
        assert.are.same({ WANT[name].text }, tokens)
      else
        assert.are.same(req.stream and WANT[name].tokens or {}, tokens)
      end
      for i, c in ipairs(WANT[name].tool_calls or {}) do
        assert.are.equal(c.id, res.tool_calls[i].id)
        assert.are.equal(c.name, res.tool_calls[i].name)
        assert.are.same(c.arguments, res.tool_calls[i].arguments)
        assert.are.same(c.arguments, po.json.decode(res.tool_calls[i].arguments_json))
      end
      if name == "chat_tool_result" then
        doc.messages[2].tool_calls[1].id = "call_1"
        doc.messages[3].tool_call_id = "call_1"
      end
      assert.are.same(doc, sent)
    end)
  end

  it("runs two steps of tools: the call it gets back goes into the next request as Ollama documents", function()
    local first = assert(replay("chat_tools_stream", { model = "llama3.2", stream = true, tools = { GET_WEATHER },
      messages = { user "what is the weather in tokyo?" } }))
    local call = first.tool_calls[1]
    server:reset()
    local second, _, sent = replay("chat_tool_result", { model = "llama3.2", stream = false, tools = { GET_WEATHER },
      messages = { user "what is the weather in tokyo?",
        { role = "assistant", tool_calls = { { id = call.id, name = call.name, arguments = call.arguments } } },
        { role = "tool", tool_call_id = call.id, content = "18 degrees celsius" } } })
    assert(second)
    assert.are.same({ role = "assistant", content = "",
      tool_calls = { { id = "call_1", ["function"] = { name = "get_weather", arguments = { city = "Tokyo" } } } } },
      sent.messages[2])
    assert.are.same(
      { role = "tool", content = "18 degrees celsius", tool_name = "get_weather", tool_call_id = "call_1" },
      sent.messages[3])
    assert.are.equal("The current temperature in Toronto is 11°C.", second.text)
  end)

  it("fails on the documented missing-model 404 with Ollama's message", function()
    local res, _, _, err, code, info = replay("error_model_not_found", { model = "llama3.2", stream = false,
      messages = { user "hi" } })
    assert.is_nil(res)
    assert.matches("HTTP 404: model 'llama3.2' not found", err, 1, true)
    assert.are.equal(404, info.status)
    assert.is_string(code)
  end)

  it("ends a stream at the documented error line, with its message", function()
    local res, tokens, _, err, code = replay("stream_error",
      { model = "gemma4", stream = true, messages = { user "hi" } })
    assert.is_nil(res)
    assert.matches("an error was encountered while running the model", err, 1, true)
    assert.are.equal("EHTTP", code)
    assert.are.same({}, tokens)
  end)

  it("sends embeddings to /api/embed and reads the documented reply", function()
    for _, name in ipairs { "embed", "embed_multiple" } do
      server:reset()
      local doc = documented(name)
      local texts = type(doc.input) == "table" and doc.input or { doc.input }
      local url, headers, body = ollama.embed_request({ base_url = server.url }, texts, doc.model)
      headers["X-Test-Fault"] = "fault=wire;wire=ollama/" .. name
      local res = assert(assert(po.http.request { method = "POST", url = url, headers = headers,
        body = po.json.encode(body) }):wait(30))
      assert.are.equal(200, res.status)
      local stats = server:stats()
      assert.are.equal(1, stats.by_path["/api/embed"])
      assert.are.same(texts, stats.last_body.input)
      local out = assert(ollama.embed_parse(assert(po.json.decode(res.body))))
      assert.are.same(load(name .. ".response.json").embeddings, out.vectors)
    end
  end)
end)
