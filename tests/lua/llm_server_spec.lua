-- The test server's default answers (tests/tools/llm_server.py) on the
-- wire, in each vendor's shape: tool calls (streamed in fragments), tool
-- results, JSON formats, reasoning, embeddings. The adapters' specs rely
-- on these shapes, so they are pinned here, below any adapter.
local po = require "poengine"
local llm_server = require "tests.tools.llm_server"

local server = llm_server.for_spec(setup, teardown)

local function post(path, body)
  local res = assert(assert(po.http.request { method = "POST", url = server.url .. path, body = po.json.encode(body),
    headers = { ["Content-Type"] = "application/json" } }):wait(10))
  return res.status, res.body
end

local function json(path, body)
  local status, text = post(path, body)
  assert.are.equal(200, status, text)
  return po.json.decode(text)
end

-- The decoded data of every SSE event (OpenAI's [DONE] left out).
local function sse(path, body)
  local status, text = post(path, body)
  assert.are.equal(200, status, text)
  local events = {}
  local p = require("poengine.llm.sse").new(function(ev)
    if ev.data ~= "[DONE]" then
      events[#events + 1] = po.json.decode(ev.data)
    end
  end)
  assert(p:feed(text))
  p:finish()
  return events
end

local function ndjson(body)
  local status, text = post("/api/chat", body)
  assert.are.equal(200, status, text)
  local lines = {}
  for line in text:gmatch("[^\n]+") do
    lines[#lines + 1] = po.json.decode(line)
  end
  return lines
end

local ADD = { type = "object", properties = { a = { type = "integer" }, b = { type = "integer" } } }
local OAI_TOOLS = { { type = "function", ["function"] = { name = "add", parameters = ADD } } }
local ANT_TOOLS = { { name = "add", input_schema = ADD } }
local ASK = 'please call add with {"a": 1, "b": 2} now'
local ARGS = { a = 1, b = 2 }

local function user(text)
  return { { role = "user", content = text } }
end

describe("the test server's tool calls", function()
  it("OpenAI: message.tool_calls, and streamed, the arguments in fragments after the id and name", function()
    local r = json("/v1/chat/completions", { model = "m", tools = OAI_TOOLS, messages = user(ASK) })
    local choice = r.choices[1]
    assert.are.equal("tool_calls", choice.finish_reason)
    assert.are.equal(po.json.null, choice.message.content)
    local tc = choice.message.tool_calls[1]
    assert.are.equal("call_1", tc.id)
    assert.are.equal("function", tc.type)
    assert.are.equal("add", tc["function"].name)
    assert.are.same(ARGS, po.json.decode(tc["function"].arguments))

    local events = sse("/v1/chat/completions", { model = "m", tools = OAI_TOOLS, messages = user(ASK), stream = true })
    local args, fragments, first, finish = "", 0, nil, nil
    for _, ev in ipairs(events) do
      local d = ev.choices[1] and ev.choices[1].delta or {}
      for _, t in ipairs(d.tool_calls or {}) do
        first = first or t
        assert.are.equal(0, t.index)
        if t["function"].arguments ~= "" then
          fragments = fragments + 1
        end
        args = args .. t["function"].arguments
      end
      finish = ev.choices[1] and ev.choices[1].finish_reason ~= po.json.null and ev.choices[1].finish_reason or finish
    end
    assert.are.equal("call_1", first.id)
    assert.are.equal("add", first["function"].name)
    assert.is_true(fragments > 1)
    assert.are.same(ARGS, po.json.decode(args))
    assert.are.equal("tool_calls", finish)
  end)

  it("Anthropic: tool_use blocks, and streamed, input_json_deltas", function()
    local r = json("/v1/messages", { model = "m", max_tokens = 50, tools = ANT_TOOLS, messages = user(ASK) })
    assert.are.equal("tool_use", r.stop_reason)
    assert.are.same({ { type = "tool_use", id = "toolu_1", name = "add", input = ARGS } }, r.content)

    local events = sse("/v1/messages", { model = "m", max_tokens = 50, tools = ANT_TOOLS, messages = user(ASK),
      stream = true })
    local partial, deltas, start, stop_reason = "", 0, nil, nil
    for _, ev in ipairs(events) do
      if ev.type == "content_block_start" then
        start = ev.content_block
      elseif ev.type == "content_block_delta" then
        assert.are.equal("input_json_delta", ev.delta.type)
        partial, deltas = partial .. ev.delta.partial_json, deltas + 1
      elseif ev.type == "message_delta" then
        stop_reason = ev.delta.stop_reason
      end
    end
    assert.are.equal("tool_use", start.type)
    assert.are.equal("toolu_1", start.id)
    assert.is_true(deltas > 1)
    assert.are.same(ARGS, po.json.decode(partial))
    assert.are.equal("tool_use", stop_reason)
  end)

  it("Ollama: message.tool_calls with arguments as an object, streamed in one chunk", function()
    local r = json("/api/chat", { model = "m", stream = false, tools = OAI_TOOLS, messages = user(ASK) })
    assert.are.same({ { ["function"] = { name = "add", arguments = ARGS } } }, r.message.tool_calls)
    local lines = ndjson { model = "m", tools = OAI_TOOLS, messages = user(ASK) }
    assert.are.same({ { ["function"] = { name = "add", arguments = ARGS } } }, lines[#lines - 1].message.tool_calls)
    assert.is_true(lines[#lines].done)
  end)

  it("answers a conversation that ends in tool results with their contents", function()
    local oai = json("/v1/chat/completions", { model = "m", tools = OAI_TOOLS, messages = {
      { role = "user", content = ASK },
      { role = "assistant", tool_calls = { { id = "call_1", type = "function", ["function"] = { name = "add", arguments = "{}" } } } },
      { role = "tool", tool_call_id = "call_1", content = "3" },
      { role = "tool", tool_call_id = "call_2", content = "4" },
    } })
    assert.are.equal("tool result: 3 | 4", oai.choices[1].message.content)
    assert.are.equal("stop", oai.choices[1].finish_reason)
    local ant = json("/v1/messages", { model = "m", max_tokens = 9, tools = ANT_TOOLS, messages = {
      { role = "user", content = ASK },
      { role = "assistant", content = { { type = "tool_use", id = "toolu_1", name = "add", input = ARGS } } },
      { role = "user", content = { { type = "tool_result", tool_use_id = "toolu_1", content = "3" } } },
    } })
    assert.are.same({ { type = "text", text = "tool result: 3" } }, ant.content)
    local oll = json("/api/chat", { model = "m", stream = false, tools = OAI_TOOLS, messages = {
      { role = "user", content = ASK },
      { role = "assistant", content = "", tool_calls = { { ["function"] = { name = "add", arguments = ARGS } } } },
      { role = "tool", content = "3", tool_name = "add" },
    } })
    assert.are.equal("tool result: 3", oll.message.content)
  end)

  it("calls no undeclared tool, none with tool_choice none, and a forced one with schema-made arguments", function()
    local r = json("/v1/chat/completions", { model = "m", tools = OAI_TOOLS, messages = user('call sub with {"a": 1}') })
    assert.are.equal('echo: call sub with {"a": 1}', r.choices[1].message.content)
    r = json("/v1/chat/completions", { model = "m", tools = OAI_TOOLS, tool_choice = "none", messages = user(ASK) })
    assert.are.equal("echo: " .. ASK, r.choices[1].message.content)
    r = json("/v1/chat/completions", { model = "m", tools = OAI_TOOLS, messages = user("two words"),
      tool_choice = { type = "function", ["function"] = { name = "add" } } })
    -- integers: the echo's word count ("echo: two words")
    assert.are.same({ a = 3, b = 3 }, po.json.decode(r.choices[1].message.tool_calls[1]["function"].arguments))
    r = json("/v1/messages", { model = "m", max_tokens = 9, tools = ANT_TOOLS, messages = user("two words"),
      tool_choice = { type = "tool", name = "add" } })
    assert.are.same({ a = 3, b = 3 }, r.content[1].input)
  end)
end)

describe("the test server's JSON answers", function()
  local SCHEMA = { type = "object", properties = { title = { type = "string" }, n = { type = "number" },
    ok = { type = "boolean" }, tags = { type = "array", items = { type = "string", enum = { "x", "y" } } } } }

  it("OpenAI response_format json_object and json_schema", function()
    local r = json("/v1/chat/completions", { model = "m", messages = user("hi"), response_format = { type = "json_object" } })
    assert.are.same({ answer = "echo: hi" }, po.json.decode(r.choices[1].message.content))
    r = json("/v1/chat/completions", { model = "m", messages = user("hi"),
      response_format = { type = "json_schema", json_schema = { name = "r", schema = SCHEMA } } })
    assert.are.same({ title = "echo: hi", n = 2, ok = true, tags = { "x" } }, po.json.decode(r.choices[1].message.content))
  end)

  it("Ollama format json and a schema, and text= verbatim even then", function()
    local r = json("/api/chat", { model = "m", stream = false, messages = user("hi"), format = "json" })
    assert.are.same({ answer = "echo: hi" }, po.json.decode(r.message.content))
    r = json("/api/chat", { model = "m", stream = false, messages = user("hi"), format = SCHEMA })
    assert.are.same({ title = "echo: hi", n = 2, ok = true, tags = { "x" } }, po.json.decode(r.message.content))
    r = json("/api/chat", { model = "m#text=not json", stream = false, messages = user("hi"), format = "json" })
    assert.are.equal("not json", r.message.content)
  end)
end)

describe("the test server's reasoning", function()
  it("OpenAI reasoning_effort: reasoning tokens, counted in completion_tokens", function()
    local r = json("/v1/chat/completions", { model = "m", messages = user("hi"), reasoning_effort = "high" })
    assert.are.equal(64, r.usage.completion_tokens_details.reasoning_tokens)
    assert.are.equal(2 + 64, r.usage.completion_tokens)
  end)

  it("Anthropic thinking: a thinking block first, streamed as thinking_deltas and a signature_delta", function()
    local req = { model = "m", max_tokens = 2048, messages = user("hi"), thinking = { type = "enabled", budget_tokens = 1024 } }
    local r = json("/v1/messages", req)
    assert.are.same({ type = "thinking", thinking = "thinking about: hi", signature = "sig-test" }, r.content[1])
    assert.are.same({ type = "text", text = "echo: hi" }, r.content[2])
    assert.are.equal(5, r.usage.output_tokens)
    req.stream = true
    local thinking, text, signature, kinds = "", "", nil, {}
    for _, ev in ipairs(sse("/v1/messages", req)) do
      if ev.type == "content_block_start" then
        kinds[#kinds + 1] = ev.content_block.type
      elseif ev.type == "content_block_delta" then
        if ev.delta.type == "thinking_delta" then
          thinking = thinking .. ev.delta.thinking
        elseif ev.delta.type == "signature_delta" then
          signature = ev.delta.signature
        else
          text = text .. ev.delta.text
        end
      end
    end
    assert.are.same({ "thinking", "text" }, kinds)
    assert.are.equal("thinking about: hi", thinking)
    assert.are.equal("sig-test", signature)
    assert.are.equal("echo: hi", text)
  end)

  it("Ollama think: message.thinking, streamed before the answer", function()
    local r = json("/api/chat", { model = "m", stream = false, messages = user("hi"), think = true })
    assert.are.equal("thinking about: hi", r.message.thinking)
    assert.are.equal("echo: hi", r.message.content)
    local thinking, content = "", ""
    for _, l in ipairs(ndjson { model = "m", messages = user("hi"), think = true }) do
      assert.is_true(l.message.thinking == nil or content == "") -- thinking comes first
      thinking = thinking .. (l.message.thinking or "")
      content = content .. l.message.content
    end
    assert.are.equal("thinking about: hi", thinking)
    assert.are.equal("echo: hi", content)
  end)
end)

describe("the test server's embeddings", function()
  it("OpenAI: data in order with usage, dimensions honoured, base64 on request", function()
    local r = json("/v1/embeddings", { model = "text-embedding-3-small", input = { "a b c", "a b c", "d" }, dimensions = 8 })
    assert.are.equal("list", r.object)
    assert.are.same({ prompt_tokens = 7, total_tokens = 7 }, r.usage)
    assert.are.equal(3, #r.data)
    assert.are.equal(2, r.data[3].index)
    assert.are.equal(8, #r.data[1].embedding)
    assert.are.same(r.data[1].embedding, r.data[2].embedding)
    assert.are.equal(1536, #json("/v1/embeddings", { model = "text-embedding-3-small", input = "x" }).data[1].embedding)
    local b = json("/v1/embeddings", { model = "e", input = "a b c", dimensions = 8, encoding_format = "base64" })
    assert.is_string(b.data[1].embedding)
    assert.are.equal(44, #b.data[1].embedding) -- 8 float32s: 32 bytes, 44 base64 characters
    assert.are.equal(400, (post("/v1/embeddings", { model = "e", input = { "" } })))
  end)

  it("Ollama: embeddings in order, 384 dimensions unless asked, prompt_eval_count", function()
    local r = json("/api/embed", { model = "all-minilm", input = { "why is the sky blue", "x" } })
    assert.are.equal(2, #r.embeddings)
    assert.are.equal(384, #r.embeddings[1])
    assert.are.equal(6, r.prompt_eval_count)
    local one = json("/api/embed", { model = "all-minilm", input = "why is the  SKY blue", dimensions = 384 })
    assert.are.same(r.embeddings[1], one.embeddings[1]) -- case and spacing do not count
  end)
end)
