-- The normalized request (poengine.llm.request, util.normalize): every
-- field checked with an error naming it, OpenAI's shapes converted to the
-- flat form the adapters see, the caller's tables left as they were.
local po = require "poengine"
local util = require "poengine.llm.util"

local function norm(req)
  return util.normalize("spec", req)
end

-- The message of the error normalize raises for req.
local function raised(req)
  local ok, err = pcall(norm, req)
  assert.is_false(ok, "normalize accepted the request")
  return (err:gsub("^[^:]*:%d+: ", ""))
end

local function msgs(...)
  return { messages = { ... } }
end

describe("request: the common fields", function()
  it("turns a prompt into one user message and a system message into system", function()
    local r = norm { messages = { { role = "system", content = "be brief" }, { role = "user", content = "hi" },
      { role = "system", content = { { type = "text", text = "and kind" } } } }, stop = "END", top_p = 0.9, seed = 3 }
    assert.are.same({ { role = "user", content = "hi" } }, r.messages)
    assert.are.equal("be brief\n\nand kind", r.system)
    assert.are.same({ "END" }, r.stop)
    assert.are.equal(0.9, r.top_p)
    assert.are.equal(3, r.seed)
    assert.are.same({ { role = "user", content = "x" } }, norm({ prompt = "x" }).messages)
  end)

  it("names the function and the field of each mistake", function()
    assert.matches("^spec: unknown request field 'topp'", raised { prompt = "x", topp = 1 })
    assert.matches("^spec: request%.top_p must be a number, got string", raised { prompt = "x", top_p = "1" })
    assert.matches("^spec: request%.stop%[2%] must be a string, got number", raised { prompt = "x", stop = { "a", 2 } })
    assert.matches("^spec: request%.extra must be a table", raised { prompt = "x", extra = "y" })
    assert.matches("^spec: request%.messages%[1%]%.role must be", raised(msgs { role = "robot", content = "x" }))
    assert.matches("^spec: unknown field 'request%.messages%[1%]%.nme'", raised(msgs { role = "user", content = "x",
      nme = "a" }))
    assert.matches("^spec: request%.messages%[1%]%.content is required", raised(msgs { role = "user" }))
  end)

  it("raises at the caller of provider:complete", function()
    local p = po.llm.provider("openai", { base_url = "http://127.0.0.1:9/v1", model = "m", api_key = "k" })
    local ok, err = pcall(function() local r = p:complete { prompt = "x", top_k = 3 } return r end)
    assert.is_false(ok)
    assert.matches("llm_request_spec%.lua:%d+: provider:complete: unknown request field 'top_k'", err)
  end)

  it("passes extra through as it is", function()
    local extra = { logit_bias = { ["50256"] = -100 }, options = { num_ctx = 8192 } }
    assert.are.equal(extra, norm({ prompt = "x", extra = extra }).extra)
  end)
end)

describe("request: tools and tool_choice", function()
  local schema = { type = "object", properties = { city = { type = "string" } }, required = { "city" } }

  it("keeps the flat form and converts OpenAI's", function()
    local r = norm { prompt = "x", tools = {
      { name = "weather", description = "the weather", parameters = schema },
      { type = "function", ["function"] = { name = "time", description = "the time", parameters = schema,
        strict = true } },
      { name = "cached", cache_control = { type = "ephemeral" } },
    } }
    assert.are.same({
      { name = "weather", description = "the weather", parameters = schema },
      { name = "time", description = "the time", parameters = schema },
      { name = "cached", cache_control = { type = "ephemeral" } },
    }, r.tools)
  end)

  it("names a tool's wrong field", function()
    assert.matches("^spec: request%.tools%[1%]%.name must be a string, got nil", raised { prompt = "x", tools = {
      { description = "no name" } } })
    assert.matches("^spec: unknown field 'request%.tools%[1%]%.input_schema'", raised { prompt = "x", tools = {
      { name = "f", input_schema = schema } } })
    assert.matches("^spec: request%.tools%[1%]%.type must be \"function\"", raised { prompt = "x", tools = {
      { type = "web_search", ["function"] = { name = "f" } } } })
    assert.matches("^spec: request%.tools%[2%]%.function%.parameters must be a table", raised { prompt = "x",
      tools = { { name = "a" }, { type = "function", ["function"] = { name = "f", parameters = "{}" } } } })
    assert.matches("^spec: request%.tools must be a list", raised { prompt = "x", tools = { f = { name = "f" } } })
  end)

  it("takes tool_choice as a word, { name = }, or OpenAI's shape", function()
    for _, w in ipairs { "auto", "none", "required" } do
      assert.are.equal(w, norm({ prompt = "x", tool_choice = w }).tool_choice)
    end
    assert.are.same({ name = "f" }, norm({ prompt = "x", tool_choice = { name = "f" } }).tool_choice)
    assert.are.same({ name = "f" }, norm({ prompt = "x", tool_choice = { type = "function",
      ["function"] = { name = "f" } } }).tool_choice)
    assert.matches("^spec: request%.tool_choice must be \"auto\"", raised { prompt = "x", tool_choice = "any" })
    assert.matches("^spec: request%.tool_choice%.name must be a string", raised { prompt = "x",
      tool_choice = { name = 1 } })
    assert.matches("^spec: request%.tool_choice must be a table", raised { prompt = "x", tool_choice = true })
  end)
end)

describe("request: response_format and reasoning", function()
  local schema = { type = "object", properties = { n = { type = "integer" } } }

  it("takes the flat forms and converts OpenAI's", function()
    assert.are.same({ type = "json" }, norm({ prompt = "x", response_format = { type = "json" } }).response_format)
    assert.are.same({ type = "json" },
      norm({ prompt = "x", response_format = { type = "json_object" } }).response_format)
    assert.is_nil(norm({ prompt = "x", response_format = { type = "text" } }).response_format)
    assert.are.same({ type = "json_schema", schema = schema, name = "response" },
      norm({ prompt = "x", response_format = { type = "json_schema", schema = schema } }).response_format)
    assert.are.same({ type = "json_schema", schema = schema, name = "count", strict = true },
      norm({ prompt = "x", response_format = { type = "json_schema", json_schema = { name = "count",
        schema = schema, strict = true } } }).response_format)
  end)

  it("names a format's wrong field", function()
    assert.matches("^spec: request%.response_format%.type must be \"json\" or \"json_schema\", got xml",
      raised { prompt = "x", response_format = { type = "xml" } })
    assert.matches("^spec: request%.response_format%.schema must be a table, got nil",
      raised { prompt = "x", response_format = { type = "json_schema" } })
    assert.matches("^spec: request%.response_format%.json_schema%.schema must be a table",
      raised { prompt = "x", response_format = { type = "json_schema", json_schema = { name = "a" } } })
    assert.matches("^spec: unknown field 'request%.response_format%.schema'",
      raised { prompt = "x", response_format = { type = "json", schema = schema } })
  end)

  it("takes effort, budget_tokens or both, and names a wrong one", function()
    assert.are.same({ effort = "high" }, norm({ prompt = "x", reasoning = { effort = "high" } }).reasoning)
    assert.are.same({ effort = "low", budget_tokens = 2048 },
      norm({ prompt = "x", reasoning = { effort = "low", budget_tokens = 2048 } }).reasoning)
    assert.matches("^spec: request%.reasoning%.effort must be \"low\", \"medium\" or \"high\", got max",
      raised { prompt = "x", reasoning = { effort = "max" } })
    assert.matches("^spec: request%.reasoning%.budget_tokens must be a whole number",
      raised { prompt = "x", reasoning = { budget_tokens = 10.5 } })
    assert.matches("^spec: request%.reasoning needs effort or budget_tokens", raised { prompt = "x", reasoning = {} })
  end)
end)

describe("request: content parts", function()
  it("keeps text and image parts, cache_control included, and splits a data: URL", function()
    local r = norm(msgs { role = "user", content = {
      { type = "text", text = "what is this?", cache_control = { type = "ephemeral" } },
      { type = "image", url = "https://example.com/cat.png" },
      { type = "image", data = "iVBORw0KGgo=", media_type = "image/png" },
      { type = "image_url", image_url = { url = "data:image/jpeg;base64,/9j/4AAQ" } },
    } })
    assert.are.same({
      { type = "text", text = "what is this?", cache_control = { type = "ephemeral" } },
      { type = "image", url = "https://example.com/cat.png" },
      { type = "image", data = "iVBORw0KGgo=", media_type = "image/png" },
      { type = "image", data = "/9j/4AAQ", media_type = "image/jpeg" },
    }, r.messages[1].content)
  end)

  it("names a part's wrong field", function()
    local function part(p)
      return raised(msgs { role = "user", content = { { type = "text", text = "a" }, p } })
    end
    assert.matches("^spec: request%.messages%[1%]%.content%[2%]%.type must be \"text\" or \"image\", got audio",
      part { type = "audio" })
    assert.matches("^spec: request%.messages%[1%]%.content%[2%]%.media_type must be a string, got nil",
      part { type = "image", data = "AAAA" })
    assert.matches("^spec: request%.messages%[1%]%.content%[2%]: give url or data, not both",
      part { type = "image", data = "AAAA", media_type = "image/png", url = "https://x" })
    assert.matches("^spec: unknown field 'request%.messages%[1%]%.content%[2%]%.detail'",
      part { type = "image", url = "https://x", detail = "low" })
    assert.matches("^spec: request%.messages%[1%]%.content%[2%]%.text must be a string", part { type = "text" })
    assert.matches("^spec: a system message may hold text only", raised(msgs { role = "system", content = {
      { type = "image", url = "https://x" } } }))
  end)
end)

describe("request: tool turns", function()
  it("gives each assistant tool call both arguments and arguments_json, from either", function()
    local r = norm(msgs(
      { role = "user", content = "weather in Paris and Rome?" },
      { role = "assistant", tool_calls = {
        { id = "call_1", name = "weather", arguments = { city = "Paris" } },
        { id = "call_2", type = "function", ["function"] = { name = "weather", arguments = "{\"city\":\"Rome\"}" } },
        { id = "call_3", name = "now" },
      } },
      { role = "tool", tool_call_id = "call_1", content = "sunny" },
      { role = "tool", tool_call_id = "call_2", content = { { type = "text", text = "rain" } } }))
    local calls = r.messages[2].tool_calls
    assert.is_nil(r.messages[2].content)
    assert.are.same({ id = "call_1", name = "weather", arguments = { city = "Paris" },
      arguments_json = "{\"city\":\"Paris\"}" }, calls[1])
    assert.are.same({ id = "call_2", name = "weather", arguments = { city = "Rome" },
      arguments_json = "{\"city\":\"Rome\"}" }, calls[2])
    assert.are.same({ id = "call_3", name = "now", arguments = {}, arguments_json = "{}" }, calls[3])
    assert.are.same({ role = "tool", tool_call_id = "call_1", content = "sunny" }, r.messages[3])
    assert.are.same({ { type = "text", text = "rain" } }, r.messages[4].content)
  end)

  it("leaves the caller's tables as they were", function()
    local call = { id = "c", type = "function", ["function"] = { name = "f", arguments = "{}" } }
    local req = msgs({ role = "user", content = "x" }, { role = "assistant", tool_calls = { call } })
    norm(req)
    assert.are.same({ id = "c", type = "function", ["function"] = { name = "f", arguments = "{}" } }, call)
  end)

  it("names a tool turn's wrong field", function()
    local function turn(m)
      return raised(msgs({ role = "user", content = "x" }, m))
    end
    assert.matches("^spec: request%.messages%[2%]%.tool_calls%[1%]%.id must be a string, got nil",
      turn { role = "assistant", tool_calls = { { name = "f" } } })
    assert.matches("^spec: request%.messages%[2%]%.tool_calls%[1%]%.arguments_json is not a JSON object",
      turn { role = "assistant", tool_calls = { { id = "c", name = "f", arguments_json = "{\"a\":" } } })
    assert.matches("^spec: request%.messages%[2%]%.tool_call_id must be a string, got nil",
      turn { role = "tool", content = "x" })
    assert.matches("^spec: unknown field 'request%.messages%[2%]%.tool_calls'",
      turn { role = "user", content = "x", tool_calls = {} })
    assert.matches("^spec: request%.messages%[2%]%.content is required", turn { role = "assistant" })
  end)
end)

describe("request: the input estimate budgets reserve", function()
  it("counts text parts, tool calls' arguments, tools and the response schema", function()
    local limits = require "poengine.llm.limits"
    local r = norm { messages = {
      { role = "user", content = { { type = "text", text = string.rep("a", 40) }, { type = "image", url = "https://x" } } },
      { role = "assistant", tool_calls = { { id = "c", name = "f", arguments = {} } } },
    }, tools = { { name = "t" } } }
    -- 40 bytes of text, "f" and "{}", and [{"name":"t"}]: 57 bytes.
    assert.are.equal(math.floor(57 / 4) + 1, limits.estimate_input(r))
    r.response_format = { type = "json_schema", schema = { type = "object" } } -- {"type":"object"}: 17 more
    assert.are.equal(math.floor(74 / 4) + 1, limits.estimate_input(r))
  end)
end)
