-- Smaller parts of po.llm at their edges: Azure without an endpoint, a
-- cassette that cannot write or whose wrapped client fails, the async
-- forms of complete, prices and token estimates, HTTP dates early in the
-- year, a provider's secrets when it is not one.
local po = require "poengine"
local llm_server = require "tests.tools.llm_server"
local azure = require "poengine.llm.azure"
local util = require "poengine.llm.util"
local limits = require "poengine.llm.limits"
local prices = po.llm.prices

local server = llm_server.for_spec(setup, teardown, before_each)
local KEY = "sk-test-0123456789abcdefghij"

describe("an Azure provider without an endpoint", function()
  it("has no default base_url, and every call is EINVAL saying where to give one", function()
    assert.is_nil(azure.default_base_url())
    local want = "azure: the provider needs base_url (https://RESOURCE.openai.azure.com) or AZURE_OPENAI_ENDPOINT"
    local cfg = { api_key = KEY, options = { deployment = "gpt" } }
    assert.are.same({ nil, want, "EINVAL" }, { azure.request(cfg, { messages = {} }, "gpt") })
    assert.are.same({ nil, want, "EINVAL" }, { azure.embed_request(cfg, { "x" }, "gpt", {}) })
  end)
end)

describe("a cassette", function()
  it("that cannot write its file is ECASSETTE, naming the path", function()
    local path = "/nonexistent-dir-po/x.jsonl"
    local cas, msg, code = po.llm.cassette { path = path, mode = "record",
      wrap = po.llm.provider("lua", { model = "m", fn = function() return "x" end }) }
    assert.are.same({ nil, "ECASSETTE" }, { cas, code })
    assert.matches("^po%.llm%.cassette: cannot write /nonexistent%-dir%-po/x%.jsonl: ", msg)
  end)

  it("hands its wrapped client's failure over and records nothing; complete_async gives the same", function()
    local path = os.tmpname()
    local p = po.llm.provider("openai", { base_url = server.url .. "/v1", api_key = KEY,
      model = "m#fault=status;status=400" })
    local cas = assert(po.llm.cassette { path = path, mode = "record", wrap = p })
    local res, msg, code, info = cas:complete { prompt = "hi" }
    assert.are.same({ nil, "EINVALID", 400 }, { res, code, info.status })
    assert.is_string(msg)
    local fut = cas:complete_async { prompt = "hi" }
    local r2, _, c2 = fut:wait(30)
    assert.are.same({ nil, "EINVALID" }, { r2, c2 })
    cas:close()
    assert.are.equal("", require("tests.tools.proc").read(path))
    os.remove(path)
    assert.has_error(function() cas.complete({ prompt = "hi" }) end,
      "cassette:complete: called on a table (use cas:complete)")
  end)
end)

describe("provider:complete_async", function()
  it("is complete in a task", function()
    local p = po.llm.provider("lua", { model = "m", fn = function(req) return "echo " .. req.messages[1].content end })
    local res = assert(p:complete_async({ prompt = "hi" }):wait(30))
    assert.are.equal("echo hi", res.text)
  end)
end)

describe("prices and estimates", function()
  it("lookup takes a model name only; input that includes cached tokens is never counted below zero", function()
    assert.is_nil(prices.lookup(42))
    prices.set("edges-spec-model", { input = 1e6, output = 2e6, cached = 5e5 })
    -- 10 cached reads said to be inside 4 input tokens: the fresh input is 0, not -6
    local cost = prices.cost("edges-spec-model", { input = 4, cached_read = 10, output = 0 }, true)
    assert.are.equal(10 * 0.5, cost)
    prices.set("edges-spec-model", nil)
  end)

  it("a request's token estimate is its input's and its max_tokens", function()
    local req = { messages = { { role = "user", content = "one two three four" } }, max_tokens = 100 }
    assert.are.equal(limits.estimate_input(req) + 100, limits.estimate_tokens(req))
    req.max_tokens = nil
    assert.are.equal(limits.estimate_input(req), limits.estimate_tokens(req))
  end)
end)

describe("po.llm.util", function()
  it("reads HTTP dates in January and February (the calendar's year starts in March)", function()
    assert.are.equal(760524577, util.http_date("Sun, 06 Feb 1994 08:49:37 GMT"))
    assert.are.equal(946684800, util.http_date("Sat, 01 Jan 2000 00:00:00 GMT"))
    assert.are.equal(951782400, util.http_date("Tue, 29 Feb 2000 00:00:00 GMT"))
  end)

  it("a value that is not a provider holds no secrets", function()
    assert.are.same({}, util.secrets("sk-not-a-provider"))
  end)
end)
