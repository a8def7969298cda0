-- What the provider does around any adapter: the creation options handed
-- to it, a field it refuses (EUNSUPPORTED), request.extra merged into the
-- wire body, tool calls given both arguments forms, reasoning kept apart
-- and streamed to on_reasoning, the asked-for JSON decoded (or EPROTO),
-- reasoning tokens priced as output, the adapter's error codes, the /v1
-- hint on a 404. The adapter here is the spec's own, registered the way a
-- script adds one (po.llm.adapters), speaking OpenAI's format to the test
-- server with a twist its tests control; the lua kind covers the rest.
local po = require "poengine"
local llm_server = require "tests.tools.llm_server"

local server
local spec = require "tests.tools.spec_adapter"
local seen = spec.seen -- what the adapter was given, per call

local KEY = "sk-response-SECRET-31415"

local function provider(opts)
  opts = opts or {}
  opts.base_url = opts.base_url or server.url .. "/v1"
  opts.api_key = KEY
  return po.llm.provider("spec", opts)
end

setup(function()
  server = llm_server.start()
  po.llm.adapters.spec = spec
  po.llm.prices.set("spec-priced", { input = 1, output = 2 })
end)

teardown(function()
  po.llm.adapters.spec = nil
  po.llm.prices.set("spec-priced", nil)
  server:stop()
end)

before_each(function()
  server:reset()
  seen.cfg = nil
end)

describe("provider: the request on its way to the adapter", function()
  it("hands the adapter its creation options, without the key", function()
    assert(provider({ deployment = "gpt4", api_version = "2024-10-21", dimensions = 256, timeout = 9 })
      :complete { model = "m", prompt = "hi" })
    local o = seen.cfg.options
    assert.are.same({ "gpt4", "2024-10-21", 256, 9 }, { o.deployment, o.api_version, o.dimensions, o.timeout })
    assert.is_nil(o.api_key)
    assert.are.equal(KEY, seen.cfg.api_key)
    assert.are.equal(server.url .. "/v1", seen.cfg.base_url)
  end)

  it("returns the adapter's EUNSUPPORTED as the call's error, sending nothing", function()
    local res, err, code = provider():complete { model = "m", prompt = "hi", seed = 7 }
    assert.is_nil(res)
    assert.are.equal("EUNSUPPORTED", code)
    assert.are.equal("spec m: spec: seed is not supported", err)
    assert.are.equal(0, server:stats().requests)
  end)

  it("merges request.extra into the wire body: objects key by key, lists and scalars replaced", function()
    assert(provider():complete { model = "m", prompt = "hi", stop = { "a" }, extra = {
      logit_bias = { ["50256"] = -100 }, stream_options = { x = 1 }, stop = { "b", "c" }, temperature = 0.5,
      messages = nil } })
    local body = server:stats().last_body
    assert.are.same({ ["50256"] = -100 }, body.logit_bias)
    assert.are.same({ "b", "c" }, body.stop)
    assert.are.equal(0.5, body.temperature)
    assert.are.same({ { role = "user", content = "hi" } }, body.messages)
    -- Merged into the adapter's own object, not replacing it:
    server:reset()
    assert(provider():complete({ model = "m", prompt = "hi", stream = true, extra = { stream_options = { x = 1 } } },
      { on_token = function() end }))
    assert.are.same({ include_usage = true, x = 1 }, server:stats().last_body.stream_options)
  end)
end)

describe("provider: the response", function()
  it("gives each tool call both its arguments table and their JSON text", function()
    local res = assert(provider():complete { model = 'm#text=tool:weather:{"city":"Paris"}', prompt = "hi" })
    assert.are.equal("tool_calls", res.finish_reason)
    assert.are.same({ { id = "call_weather", name = "weather", arguments = { city = "Paris" },
      arguments_json = '{"city":"Paris"}' } }, res.tool_calls)
  end)

  it("fails EPROTO naming the call when its arguments do not parse", function()
    local res, err, code = provider():complete { model = 'm#text=tool:weather:{"city":', prompt = "hi" }
    assert.is_nil(res)
    assert.are.equal("EPROTO", code)
    assert.matches("tool call 'weather' %(call_weather%): arguments are not a JSON object", err)
  end)

  it("streams reasoning to on_reasoning and keeps it apart from the answer", function()
    local tokens, thoughts = {}, {}
    local res = assert(provider():complete({ model = "m#text=think:a think:b answer", prompt = "hi", stream = true },
      { on_token = function(t) tokens[#tokens + 1] = t end,
        on_reasoning = function(t) thoughts[#thoughts + 1] = t end }))
    assert.are.same({ "a ", "b " }, thoughts)
    assert.are.equal("a b ", res.reasoning)
    assert.are.equal("answer", res.text)
    assert.are.same({ "answer" }, tokens)
  end)

  it("decodes the answer into json when a format was asked, or fails EPROTO", function()
    local res = assert(provider():complete { model = 'm#text={"n":3,"ok":true}', prompt = "hi",
      response_format = { type = "json_schema", schema = { type = "object" } } })
    assert.are.same({ n = 3, ok = true }, res.json)
    assert.is_nil(assert(provider():complete { model = 'm#text={"n":3}', prompt = "hi" }).json)
    local bad, err, code = provider():complete { model = "m#text=not json", prompt = "hi",
      response_format = { type = "json" } }
    assert.is_nil(bad)
    assert.are.equal("EPROTO", code)
    assert.matches("^spec m#text=not json: the reply is not JSON: .*; it begins: not json$", err)
  end)

  it("prices reasoning tokens as output when the adapter counts them apart, once when it does not", function()
    -- input: "hi" = 1 word; output: "echo: hi" = 2 words; 5 reasoning tokens.
    local res = assert(provider():complete { model = "spec-priced#reasoning=5", prompt = "hi" })
    assert.are.same({ 1, 7, 5 }, { res.usage.input, res.usage.output, res.usage.reasoning })
    assert.are.equal((1 * 1 + 7 * 2) / 1e6, res.cost)
    local p = po.llm.provider("openai", { base_url = server.url .. "/v1", api_key = KEY })
    res = assert(p:complete { model = "spec-priced#reasoning=5", prompt = "hi" })
    assert.are.same({ 1, 2, 5 }, { res.usage.input, res.usage.output, res.usage.reasoning })
    assert.are.equal((1 * 1 + 2 * 2) / 1e6, res.cost)
  end)

  it("does the same for a lua provider's answer", function()
    local p = po.llm.provider("lua", { fn = function(_, _, on_reasoning)
      on_reasoning("hmm")
      return { text = "[1]", reasoning = "hmm", tool_calls = { { id = "c1", name = "f", arguments = {} },
        { name = "g", arguments_json = '{"x":[1,2]}' } } }
    end })
    local thoughts = {}
    local res = assert(p:complete({ model = "m", prompt = "hi", response_format = { type = "json" } },
      { on_reasoning = function(t) thoughts[#thoughts + 1] = t end }))
    assert.are.same({ "hmm" }, thoughts)
    assert.are.equal("hmm", res.reasoning)
    assert.are.same({ 1 }, res.json)
    assert.are.same({ { id = "c1", name = "f", arguments = {}, arguments_json = "{}" },
      { id = "call_2", name = "g", arguments = { x = { 1, 2 } }, arguments_json = '{"x":[1,2]}' } }, res.tool_calls)
    local bad = po.llm.provider("lua", { fn = function() return { text = "", tool_calls = { { id = "c", name = "f",
      arguments_json = "[1]" } } } end })
    local _, err, code = bad:complete { model = "m", prompt = "hi" }
    assert.are.equal("EPROTO", code)
    assert.matches("tool call 'f' %(c%): arguments are not a JSON object", err)
  end)
end)

describe("provider: errors", function()
  it("takes the adapter's error code, EHTTP when it has none", function()
    for status, want in pairs { [402] = "EQUOTA", [401] = "EAUTH", [529] = "EOVERLOADED", [503] = "EHTTP" } do
      local _, err, code, info = provider():complete { model = "m#fault=status;status=" .. status, prompt = "hi" }
      assert.are.equal(want, code)
      assert.are.equal(status, info.status)
      assert.matches("HTTP " .. status, err)
      assert.not_matches("SECRET", err)
    end
  end)

  it("keeps is_context_error working for an adapter without error_code", function()
    local old = setmetatable({ error_code = false, is_context_error = function(status, body)
      return status == 400 and body.error.code == "context_length_exceeded"
    end }, { __index = po.llm.adapters.openai })
    po.llm.adapters.old = old
    local p = po.llm.provider("old", { base_url = server.url .. "/v1", api_key = KEY })
    local _, _, code, info = p:complete { model = "m#fault=context", prompt = "hi" }
    po.llm.adapters.old = nil
    assert.are.equal("ECONTEXT", code)
    assert.is_true(info.context_window)
  end)

  it("suggests the version segment on a 404 from a base URL without one", function()
    local _, err, code, info = provider({ base_url = server.url }):complete { model = "m", prompt = "hi" }
    assert.are.equal("EHTTP", code)
    assert.are.equal(404, info.status)
    assert.matches("%(did you mean " .. server.url:gsub("%p", "%%%0") .. "/v1%?%)$", err)
    local _, err2 = provider({ base_url = server.url .. "/v1/nothing" }):complete { model = "m", prompt = "hi" }
    assert.matches("HTTP 404", err2)
    assert.not_matches("did you mean", err2)
  end)
end)
