-- The Anthropic adapter's edges that the documented exchanges do not show:
-- each malformed part of a request refused with EINVALID and the place it
-- is at, the shapes passed through as they are, and the reply and stream
-- blocks the documentation's examples lack (redacted thinking, a block
-- that opens with its text, a tool without input, a delta before its block).
local po = require "poengine"
local A = require "poengine.llm.anthropic"
local stream_feed = require("tests.tools.wire").feed

local CFG = { base_url = "https://api.anthropic.com", api_key = "sk-ant-test-0123456789" }

local function user(content)
  return { role = "user", content = content }
end

-- A.request's result, as { ok, message, code }.
local function refused(req)
  return { A.request(CFG, req, "m") }
end

local function body_of(req)
  local url, headers, body = A.request(CFG, req, "m")
  assert(url, headers)
  return po.json.decode(po.json.encode(body))
end

-- An SSE stream of the given events (each a table), the way the API frames it.
local function sse(events)
  local out = {}
  for _, e in ipairs(events) do
    out[#out + 1] = "event: " .. e.type .. "\ndata: " .. po.json.encode(e) .. "\n\n"
  end
  return table.concat(out)
end

local START = { type = "message_start", message = { usage = { input_tokens = 5, output_tokens = 1 } } }
local function finish(reason)
  return { type = "message_delta", delta = { stop_reason = reason or "end_turn" }, usage = { output_tokens = 9 } }
end
local STOP = { type = "message_stop" }

describe("the Anthropic adapter refuses a malformed request part with EINVALID, naming where it is", function()
  it("a content part that is not a table", function()
    assert.are.same({ nil, "anthropic: messages[1].content[1] must be a table, got string", "EINVALID" },
      refused { messages = { user { "hi" } } })
  end)

  it("an image with neither url nor data", function()
    assert.are.same({ nil, "anthropic: messages[1].content[1]: an image part needs a url or data", "EINVALID" },
      refused { messages = { user { { type = "image" } } } })
  end)

  it("a tool call that is not a table, or whose arguments are not an object", function()
    local m = { role = "assistant", tool_calls = { "get_weather" } }
    assert.are.same({ nil, "anthropic: messages[1].tool_calls[1] must be a table", "EINVALID" },
      refused { messages = { m } })
    m.tool_calls[1] = { id = "t1", name = "f", arguments = 42 }
    assert.are.same({ nil, "anthropic: messages[1].tool_calls[1]: the arguments must be a JSON object", "EINVALID" },
      refused { messages = { m } })
  end)

  it("a bad part in an assistant turn's content, a tool result's, a system message's", function()
    local bad = { 7 }
    local want = function(where)
      return { nil, "anthropic: " .. where .. ".content[1] must be a table, got number", "EINVALID" }
    end
    assert.are.same(want("messages[1]"),
      refused { messages = { { role = "assistant", content = bad, tool_calls = { { id = "t", name = "f" } } } } })
    assert.are.same(want("messages[1]"),
      refused { messages = { { role = "tool", tool_call_id = "t", content = bad } } })
    assert.are.same(want("system"), refused { messages = { { role = "system", content = bad }, user "hi" } })
    assert.are.same(want("system"), refused { system = bad, messages = { user "hi" } })
  end)

  it("a tool message without its tool_call_id", function()
    assert.are.same({ nil, "anthropic: messages[1]: a tool message needs its tool_call_id", "EINVALID" },
      refused { messages = { { role = "tool", content = "sunny" } } })
  end)

  it("a response_format of another type, or named as a tool is", function()
    local msgs = { user "hi" }
    assert.are.same({ nil, "anthropic: response_format must be { type = \"json\" } or { type = \"json_schema\", schema = }",
      "EINVALID" }, refused { messages = msgs, response_format = { type = "text" } })
    assert.are.same({ nil, "anthropic: response_format's name 'f' is also the name of a tool", "EINVALID" },
      refused { messages = msgs, tools = { { name = "f", parameters = { type = "object" } } },
        response_format = { type = "json", name = "f" } })
  end)

  it("reasoning with neither budget_tokens nor a known effort", function()
    assert.are.same({ nil, "anthropic: reasoning needs budget_tokens or an effort of low, medium or high, got extreme",
      "EINVALID" }, refused { messages = { user "hi" }, reasoning = { effort = "extreme" } })
  end)
end)

describe("the Anthropic adapter passes shapes it does not own through", function()
  it("a document part, a tool already in Anthropic's shape, a tool_choice of Anthropic's", function()
    local doc = { type = "document", source = { type = "text", media_type = "text/plain", data = "x" } }
    local server_tool = { type = "web_search_20250305", name = "web_search", max_uses = 2 }
    local body = body_of { messages = { user { doc } }, tools = { server_tool }, tool_choice = { type = "any" } }
    assert.are.same({ doc }, body.messages[1].content)
    assert.are.same({ server_tool }, body.tools)
    assert.are.same({ type = "any" }, body.tool_choice)
  end)

  it("an OpenAI-shaped tool as a flat one; a single stop string as a list", function()
    local body = body_of { messages = { user "hi" }, stop = "END",
      tools = { { type = "function", ["function"] = { name = "f", description = "d", parameters = { type = "object",
        properties = { x = { type = "string" } } } } } } }
    assert.are.same({ "END" }, body.stop_sequences)
    assert.are.same({ { name = "f", description = "d", input_schema = { type = "object",
      properties = { x = { type = "string" } } } } }, body.tools)
  end)

  it("an assistant turn's content parts before its tool calls; a call without arguments gets {}", function()
    local body = body_of { messages = { { role = "assistant", content = { { type = "text", text = "let me look" } },
      tool_calls = { { id = "t1", name = "f" } } } } }
    assert.are.same({ { type = "text", text = "let me look" }, { type = "tool_use", id = "t1", name = "f", input = {} } },
      body.messages[1].content)
    -- {} as an object, as the API wants for input, not as an empty list
    local wire_text = po.json.encode(select(3, A.request(CFG, { messages = { { role = "assistant",
      tool_calls = { { id = "t1", name = "f" } } } } }, "m")))
    assert.truthy(wire_text:find('"input":{}', 1, true))
  end)

  it("a json_schema format whose top level is an object becomes the forced tool's schema", function()
    local schema = { type = "object", properties = { n = { type = "integer" } } }
    local body = body_of { messages = { user "hi" }, response_format = { type = "json_schema", schema = schema } }
    assert.are.same({ { name = "response", description = "Give the answer, as this tool's input.",
      input_schema = schema } }, body.tools)
    assert.are.same({ type = "tool", name = "response" }, body.tool_choice)
  end)
end)

describe("the Anthropic adapter reads reply blocks the documented examples lack", function()
  it("a thinking block without its signature (or thinking) is EPROTO, naming the field", function()
    local reply = { content = { { type = "thinking", thinking = "hmm", signature = 5 } }, stop_reason = "end_turn" }
    assert.are.same({ nil, "bad reply: content[1].signature is number, not a string", "EPROTO" }, { A.parse(reply) })
    reply.content[1] = { type = "thinking", thinking = false, signature = "s" }
    assert.are.same({ nil, "bad reply: content[1].thinking is boolean, not a string", "EPROTO" }, { A.parse(reply) })
  end)

  it("a redacted_thinking block is kept, to send back, and adds no reasoning", function()
    local parts = assert(A.parse { content = { { type = "redacted_thinking", data = "opaque" },
      { type = "text", text = "42" } }, stop_reason = "end_turn", usage = { input_tokens = 3, output_tokens = 4 } })
    assert.are.same({ { type = "redacted_thinking", data = "opaque" } }, parts.thinking_blocks)
    assert.are.same({ "42", "stop" }, { parts.text, parts.finish_reason })
    assert.is_nil(parts.reasoning)
  end)
end)

describe("the Anthropic adapter's stream, beyond the documented examples", function()
  it("two thinking blocks joined by a blank line; a block that opens with its text; redacted thinking kept", function()
    local bytes = sse {
      START,
      { type = "content_block_start", index = 0, content_block = { type = "thinking", thinking = "" } },
      { type = "content_block_delta", index = 0, delta = { type = "thinking_delta", thinking = "first" } },
      { type = "content_block_delta", index = 0, delta = { type = "signature_delta", signature = "s1" } },
      { type = "content_block_start", index = 1, content_block = { type = "redacted_thinking", data = "opaque" } },
      { type = "content_block_start", index = 2, content_block = { type = "thinking", thinking = "second" } },
      { type = "content_block_delta", index = 2, delta = { type = "signature_delta", signature = "s2" } },
      { type = "content_block_start", index = 3, content_block = { type = "text", text = "Hel" } },
      { type = "content_block_delta", index = 3, delta = { type = "text_delta", text = "lo" } },
      finish(), STOP,
    }
    for _, piece in ipairs { 1, 13, #bytes } do
      local parts, _, _, _, tokens, thoughts = stream_feed(A, bytes, piece)
      assert.are.same({ "Hel", "lo" }, tokens)
      assert.are.same({ "first", "\n\n", "second" }, thoughts)
      assert.are.same({ "Hello", "first\n\nsecond", "stop" }, { parts.text, parts.reasoning, parts.finish_reason })
      assert.are.same({ { type = "thinking", thinking = "first", signature = "s1" },
        { type = "redacted_thinking", data = "opaque" },
        { type = "thinking", thinking = "second", signature = "s2" } }, parts.thinking_blocks)
    end
  end)

  it("a tool without parameters streams no input: its arguments are {}", function()
    local parts = assert(stream_feed(A, sse {
      START,
      { type = "content_block_start", index = 0, content_block = { type = "tool_use", id = "t1", name = "now", input = {} } },
      finish "tool_use", STOP,
    }))
    assert.are.same({ { id = "t1", name = "now", arguments_json = "{}" } }, parts.tool_calls)
    assert.are.equal("tool_calls", parts.finish_reason)
  end)

  it("an input_json_delta before its content_block_start is EPROTO", function()
    local parts, msg, code = stream_feed(A, sse {
      START,
      { type = "content_block_delta", index = 4, delta = { type = "input_json_delta", partial_json = "{" } },
    })
    assert.are.same({ nil, "a input_json_delta for content block 4 before its content_block_start", "EPROTO" },
      { parts, msg, code })
  end)

  it("a streamed tool_use block without its id is EPROTO at the end", function()
    local parts, msg, code = stream_feed(A, sse {
      START,
      { type = "content_block_start", index = 0, content_block = { type = "tool_use", name = "now", input = {} } },
      finish "tool_use", STOP,
    })
    assert.are.same({ nil, "bad reply: content[2].id is nil, not a string", "EPROTO" }, { parts, msg, code })
  end)
end)
