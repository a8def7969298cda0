-- Cassettes: record, replay and auto around a router or a provider; JSON
-- Lines on disk with no secret in them; ECASSETTE for a request not held.
local po = require "poengine"
local llm_server = require "tests.tools.llm_server"

local server = llm_server.for_spec(setup, teardown, before_each)
local path
local KEY = "sk-cassette-SECRET-77"

before_each(function()
  path = os.tmpname()
end)

after_each(function()
  os.remove(path)
end)

local function read(p)
  local f = assert(io.open(p, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

local function live_router()
  return po.llm.router {
    deployments = { { provider = "anthropic", base_url = server.url, model = "m", api_key = KEY } },
  }
end

describe("po.llm.cassette", function()
  it("records normalized pairs as JSON Lines, without the key, and replays them offline", function()
    local rec = assert(po.llm.cassette { path = path, mode = "record", wrap = live_router() })
    local a = assert(rec:complete { prompt = "first", system = "S" })
    assert(rec:complete { messages = { { role = "user", content = "second" } } })
    rec:close()
    local text = read(path)
    assert.not_matches("SECRET", text)
    local lines = {}
    for line in text:gmatch("[^\n]+") do
      lines[#lines + 1] = assert(po.json.decode(line))
    end
    assert.are.equal(2, #lines)
    assert.are.same({ { role = "user", content = "first" } }, lines[1].request.messages)
    assert.are.equal("S", lines[1].request.system)
    assert.are.equal("echo: first", lines[1].response.text)
    assert.is_nil(lines[1].response.raw)

    server:reset()
    local play = assert(po.llm.cassette { path = path, mode = "replay" })
    local tokens = {}
    local b = assert(play:complete({ prompt = "first", system = "S", stream = true },
      { on_token = function(t) tokens[#tokens + 1] = t end }))
    assert.are.equal(a.text, b.text)
    assert.are.same(a.usage, b.usage)
    assert.is_true(b.replayed)
    assert.are.same({ "echo: first" }, tokens)
    assert.are.equal(0, server:stats().requests)
  end)

  it("replays a recorded stream to on_token chunk by chunk, as it was streamed", function()
    local rec = assert(po.llm.cassette { path = path, mode = "record", wrap = live_router() })
    local live, replayed = {}, {}
    local res = assert(rec:complete({ prompt = "a b c" }, { on_token = function(t) live[#live + 1] = t end }))
    assert.is_nil(res.chunks)
    rec:close()
    local cas = assert(po.llm.cassette { path = path, mode = "replay", replay_pace = 0.01 })
    local again = assert(cas:complete({ prompt = "a b c" }, { on_token = function(t) replayed[#replayed + 1] = t end }))
    assert.is_true(again.replayed)
    assert.is_nil(again.chunks)
    assert.are.same({ "echo: ", "a ", "b ", "c" }, live)
    assert.are.same(live, replayed)
    assert.are.equal(1, server:stats().requests)
  end)

  it("fails with ECASSETTE on a request it does not hold, in replay mode", function()
    local rec = assert(po.llm.cassette { path = path, mode = "record", wrap = live_router() })
    assert(rec:complete { prompt = "held" })
    rec:close()
    local play = assert(po.llm.cassette { path = path, mode = "replay" })
    local res, err, code = play:complete { prompt = "not held" }
    assert.is_nil(res)
    assert.are.equal("ECASSETTE", code)
    assert.matches("holds no answer", err)
    assert.are.same({ replayed = 0, recorded = 0, missing = 1 }, play:stats())
  end)

  it("replays what it holds and records the rest in auto mode", function()
    local cas = assert(po.llm.cassette { path = path, mode = "auto", wrap = live_router() })
    assert(cas:complete { prompt = "one" })
    assert(cas:complete { prompt = "one" })
    assert(cas:complete { prompt = "two" })
    assert.are.equal(2, server:stats().requests)
    assert.are.same({ replayed = 1, recorded = 2, missing = 0 }, cas:stats())
    cas:close()
    local again = assert(po.llm.cassette { path = path, mode = "auto", wrap = live_router() })
    assert(again:complete { prompt = "two" })
    assert.are.equal(2, server:stats().requests)
    again:close()
  end)

  it("replays identical requests in the order they were recorded", function()
    local n = 0
    local p = po.llm.provider("lua", { model = "counter", fn = function() n = n + 1 return "answer " .. n end })
    local rec = assert(po.llm.cassette { path = path, mode = "record", wrap = p })
    for _ = 1, 2 do
      assert(rec:complete { prompt = "same" })
    end
    rec:close()
    local play = assert(po.llm.cassette { path = path, mode = "replay" })
    assert.are.equal("answer 1", play:complete({ prompt = "same" }).text)
    assert.are.equal("answer 2", play:complete({ prompt = "same" }).text)
    assert.are.equal("answer 2", play:complete({ prompt = "same" }).text) -- the last one repeats
  end)

  it("scrubs a key that a server echoes into a response", function()
    local p = po.llm.provider("lua", { model = "leaky", fn = function() return "your key is sk-echoed-SECRET-1" end })
    local rec = assert(po.llm.cassette { path = path, mode = "record", wrap = p })
    assert(rec:complete { prompt = "x" })
    rec:close()
    assert.not_matches("SECRET", read(path))
  end)

  it("keeps words that contain sk- so that their prompts replay, and scrubs real-looking keys", function()
    local p = po.llm.provider("lua", { model = "m", fn = function(req)
      return req.messages[1].content .. "; a key: sk-ant-api03-AbC_123-xyz and sk-0123456789abcdefABCDEF"
    end })
    local rec = assert(po.llm.cassette { path = path, mode = "record", wrap = p })
    local prompt = "finish task-1 on disk-2 before desk-30"
    assert(rec:complete { prompt = prompt })
    rec:close()
    local text = read(path)
    assert.not_matches("AbC_123", text)
    assert.not_matches("0123456789abcdef", text)
    local play = assert(po.llm.cassette { path = path, mode = "replay" })
    local res = assert(play:complete { prompt = prompt })
    assert.are.equal(prompt .. "; a key: sk-[redacted] and sk-[redacted]", res.text)
  end)

  it("scrubs the values of credential headers, found by their names", function()
    local p = po.llm.provider("lua", { model = "m", headers = { ["X-Custom-Token"] = "hdr-SECRET-value" },
      fn = function() return "echoing hdr-SECRET-value" end })
    local rec = assert(po.llm.cassette { path = path, mode = "record", wrap = p })
    assert(rec:complete { prompt = "x" })
    rec:close()
    assert.not_matches("SECRET", read(path))
  end)

  it("raises on programmer errors and reports unreadable files", function()
    assert.has_error(function() po.llm.cassette { path = path, mode = "tape" } end,
      "po.llm.cassette: mode must be \"record\", \"replay\" or \"auto\", got \"tape\"")
    assert.has_error(function() po.llm.cassette { path = path, mode = "record" } end,
      "po.llm.cassette: mode \"record\" needs wrap = a router or a provider")
    assert.has_error(function() po.llm.cassette { mode = "replay" } end, "po.llm.cassette: path is required")
    local _, _, code = po.llm.cassette { path = path .. ".missing", mode = "replay" }
    assert.are.equal("ECASSETTE", code)
    local f = assert(io.open(path, "w"))
    f:write("not json\n")
    f:close()
    local _, err, code2 = po.llm.cassette { path = path, mode = "replay" }
    assert.are.equal("ECASSETTE", code2)
    assert.matches(":1: not a request/response pair", err)
  end)
end)
