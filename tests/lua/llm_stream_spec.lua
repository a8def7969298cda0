-- The pieces under the providers: the SSE and NDJSON parsers (fed chunks
-- split at every position), Retry-After, secret scrubbing, request
-- normalization and the price table.
local sse = require "poengine.llm.sse"
local ndjson = require "poengine.llm.ndjson"
local util = require "poengine.llm.util"
local prices = require "poengine.llm.prices"

local function parse_sse(chunks)
  local events = {}
  local p = sse.new(function(ev) events[#events + 1] = ev end)
  for _, c in ipairs(chunks) do
    p:feed(c)
  end
  return events, p:finish()
end

-- Every way of cutting text in two, and byte by byte.
local function splits(text)
  local out = { { text }, {} }
  for i = 1, #text do
    out[2][i] = text:sub(i, i)
  end
  for i = 1, #text - 1 do
    out[#out + 1] = { text:sub(1, i), text:sub(i + 1) }
  end
  return out
end

describe("the SSE parser", function()
  local stream = "event: message_start\ndata: {\"a\":1}\n\n"
    .. ": a comment\r\n"
    .. "data: line one\r\ndata: line two\r\n\r\n"
    .. "event: ping\rdata: {}\r\r"
    .. "id: 7\ndata:no-space\n\n"
    .. "event: nothing\n\n" -- no data: not dispatched
    .. "data: [DONE]\n\n"
  local want = {
    { event = "message_start", data = "{\"a\":1}" },
    { event = "message", data = "line one\nline two" },
    { event = "ping", data = "{}" },
    { event = "message", data = "no-space", id = "7" },
    { event = "message", data = "[DONE]", id = "7" }, -- the last event id stays, as the format says
  }

  it("gives the same events however the stream is cut", function()
    for _, chunks in ipairs(splits(stream)) do
      local events, clean = parse_sse(chunks)
      assert.are.same(want, events)
      assert.is_true(clean)
    end
  end)

  it("drops an event cut off before its blank line and says so", function()
    local events, clean = parse_sse { "data: whole\n\ndata: partial" }
    assert.are.same({ { event = "message", data = "whole" } }, events)
    assert.is_false(clean)
  end)
end)

describe("the NDJSON parser", function()
  it("gives every line however the stream is cut, the last one without its newline too", function()
    local text = '{"a":1}\n\n{"b":"x y"}\r\n{"c":3}'
    for _, chunks in ipairs(splits(text)) do
      local lines = {}
      local p = ndjson.new(function(l) lines[#lines + 1] = l end)
      for _, c in ipairs(chunks) do
        p:feed(c)
      end
      p:finish()
      assert.are.same({ '{"a":1}', '{"b":"x y"}', '{"c":3}' }, lines)
    end
  end)
end)

-- Bytes allocated while fn runs, the collector stopped: a parser that
-- rebuilds its buffer on every chunk allocates the square of a long line.
local function allocated(fn)
  collectgarbage("collect")
  collectgarbage("stop")
  local before = collectgarbage("count")
  fn()
  local kb = collectgarbage("count") - before
  collectgarbage("restart")
  return kb * 1024
end

local function fixture(name)
  local f = assert(io.open((os.getenv("POENGINE_SOURCE_DIR") or ".") .. "/tests/fixtures/streams/" .. name, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

describe("the SSE parser, at its edges", function()
  it("drops a byte-order mark that opens the stream, even one split across chunks", function()
    local text = fixture("openai_bom.sse")
    assert.are.equal("\239\187\191", text:sub(1, 3))
    local want = parse_sse { text:sub(4) }
    assert.are.equal(3, #want)
    for _, chunks in ipairs(splits(text)) do
      assert.are.same(want, (parse_sse(chunks)))
    end
    -- Only at the start: a later one is data.
    assert.are.same({ { event = "message", data = "\239\187\191x" } }, (parse_sse { "data: \239\187\191x\n\n" }))
  end)

  it("gives the same events when empty chunks come between any two bytes", function()
    local text = "data: a\r\ndata: b\r\n\r\ndata: c\r\rdata: d\n\n"
    local want = parse_sse { text }
    assert.are.same({ { event = "message", data = "a\nb" }, { event = "message", data = "c" },
      { event = "message", data = "d" } }, want)
    local chunks = { "" }
    for i = 1, #text do
      chunks[#chunks + 1] = text:sub(i, i)
      chunks[#chunks + 1] = ""
    end
    assert.are.same(want, (parse_sse(chunks)))
  end)

  it("stops with ETOOBIG on a line longer than max_line or an event longer than max_event", function()
    local events = {}
    local p = sse.new(function(ev) events[#events + 1] = ev end, { max_line = 10 })
    assert.is_true(p:feed("data: 1234\n\n"))
    local ok, err, code = p:feed("data: 12345")
    assert.is_nil(ok)
    assert.are.same({ "ETOOBIG", "an SSE line is longer than max_line (10 bytes)" }, { code, err })
    assert.are.same({ nil, err, code }, { p:feed("\n\n") }) -- stopped for good
    assert.are.same({ false, err, code }, { p:finish() })
    assert.are.equal(1, #events)

    p = sse.new(function(ev) events[#events + 1] = ev end, { max_event = 12 })
    assert.is_true(p:feed("data: 12345\ndata: 12345\n"))
    local _, err2, code2 = p:feed("data: 1\n\n")
    assert.are.same({ "ETOOBIG", "an SSE event is longer than max_event (12 bytes)" }, { code2, err2 })
    assert.are.equal(1, #events)
  end)

  it("parses a long line in time linear in its length however it is cut", function()
    local piece = ("x"):rep(16 * 1024)
    local n = 128 -- 2 MiB in 16 KiB chunks
    local got
    local bytes = allocated(function()
      local p = sse.new(function(ev) got = ev end)
      p:feed("data: ")
      for _ = 1, n do
        assert(p:feed(piece))
      end
      p:feed("\n\n")
    end)
    assert.are.equal(#piece * n, #got.data)
    -- Rebuilding the buffer on each chunk would allocate n²/2 pieces (130 MiB).
    assert.is_true(bytes < 8 * #piece * n, "allocated " .. bytes .. " bytes")
  end)

  it("raises on options it does not know", function()
    assert.has_error(function() sse.new(print, { max_size = 1 }) end, "sse.new: unknown option 'max_size'")
    assert.has_error(function() sse.new(print, { max_event = 0 }) end,
      "sse.new: max_event must be a positive number of bytes, got 0")
  end)
end)

describe("the NDJSON parser, at its edges", function()
  it("stops with ETOOBIG on a line longer than max_line", function()
    local lines = {}
    local p = ndjson.new(function(l) lines[#lines + 1] = l end, { max_line = 8 })
    assert.is_true(p:feed("{\"a\":1}\n{\"a\":"))
    local ok, err, code = p:feed("123}\n")
    assert.is_nil(ok)
    assert.are.same({ "ETOOBIG", "an NDJSON line is longer than max_line (8 bytes)" }, { code, err })
    assert.are.same({ false, err, code }, { p:finish() })
    assert.are.same({ '{"a":1}' }, lines)
  end)

  it("parses a long line in time linear in its length however it is cut", function()
    local piece = ("x"):rep(16 * 1024)
    local n = 128
    local got
    local bytes = allocated(function()
      local p = ndjson.new(function(l) got = l end)
      for _ = 1, n do
        assert(p:feed(piece))
      end
      p:feed("\n")
    end)
    assert.are.equal(#piece * n, #got)
    assert.is_true(bytes < 8 * #piece * n, "allocated " .. bytes .. " bytes")
  end)
end)

describe("Retry-After", function()
  it("reads delta-seconds and HTTP dates", function()
    assert.are.equal(2, util.retry_after("2"))
    assert.are.equal(1.5, util.retry_after(" 1.5 "))
    assert.are.equal(784111777, util.http_date("Sun, 06 Nov 1994 08:49:37 GMT"))
    assert.are.equal(30, util.retry_after("Sun, 06 Nov 1994 08:50:07 GMT", 784111777))
    assert.are.equal(0, util.retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784111999)) -- in the past
    assert.is_nil(util.retry_after("soon"))
    assert.is_nil(util.retry_after(nil))
  end)
end)

describe("util.scrub", function()
  it("removes the given key and anything shaped like a vendor key", function()
    local s = util.scrub("bad key my-own-key-123 and sk-proj-abc_DEF-123 and sk-abc***xyz", "my-own-key-123")
    assert.are.equal("bad key [redacted] and sk-[redacted] and sk-[redacted]", s)
    assert.are.equal("Bearer sk-[redacted]. Also sk-[redacted], sk-[redacted]",
      util.scrub("Bearer sk-0123456789abcdefXYZ. Also sk-ant-api03-Zx_9, sk-proj-q"))
  end)

  it("leaves words that merely contain sk- as they are", function()
    local text = "run task-1 on disk-2, then desk-3000, risk-averse-2024, sk-learn and sk-something-long"
    assert.are.equal(text, util.scrub(text))
    assert.are.equal(text, util.scrub(text, { "abc", nil }))
  end)

  it("lists a provider's key and its credential headers, by name", function()
    local p = { key = function() return "the-key" end,
      extra_headers = { ["X-Api-Key"] = "hdr-secret", Authorization = "Bearer tok-secret", ["HTTP-Referer"] = "site" } }
    local s = util.secrets(p)
    table.sort(s)
    assert.are.same({ "Bearer tok-secret", "hdr-secret", "the-key", "tok-secret" }, s)
    assert.are.equal("site [redacted] [redacted] [redacted]", util.scrub("site the-key hdr-secret tok-secret", s))
  end)
end)

describe("util.normalize", function()
  it("turns a prompt into a user message and a system message into system", function()
    local r = util.normalize("f", { prompt = "hi", system = "be brief", stop = "END" })
    assert.are.same({ { role = "user", content = "hi" } }, r.messages)
    assert.are.equal("be brief", r.system)
    assert.are.same({ "END" }, r.stop)
    local r2 = util.normalize("f", { messages = { { role = "system", content = "S" }, { role = "user", content = "U" } } })
    assert.are.equal("S", r2.system)
    assert.are.same({ { role = "user", content = "U" } }, r2.messages)
  end)

  it("raises on unknown fields, wrong types and missing messages, naming the function", function()
    assert.has_error(function() util.normalize("r:complete", { prompt = "x", temprature = 1 }) end,
      "r:complete: unknown request field 'temprature'")
    assert.has_error(function() util.normalize("r:complete", { prompt = 1 }) end,
      "r:complete: request.prompt must be a string, got number")
    assert.has_error(function() util.normalize("r:complete", {}) end,
      "r:complete: request.messages or request.prompt is required")
  end)
end)

describe("prices", function()
  it("costs a call per million tokens, cached reads at their own rate", function()
    prices.set("test-model", { input = 2, output = 10, cached = 1, cache_write = 3 })
    local usage = { input = 1000, output = 500, cached_read = 200, cache_write = 100 }
    -- OpenAI: input counts the cached tokens; Anthropic: it does not.
    assert.are.near((800 * 2 + 200 * 1 + 100 * 3 + 500 * 10) / 1e6, prices.cost("test-model", usage, true), 1e-12)
    assert.are.near((1000 * 2 + 200 * 1 + 100 * 3 + 500 * 10) / 1e6, prices.cost("test-model", usage, false), 1e-12)
    prices.set("test-model", nil)
  end)

  it("finds a dated model by its longest known prefix, and knows what it does not know", function()
    assert.are.equal(prices.models["gpt-4o-mini"], prices.lookup("gpt-4o-mini-2024-07-18"))
    local cost, known = prices.cost("no-such-model", { input = 10, output = 10 })
    assert.are.equal(0, cost)
    assert.is_false(known)
    assert.has_error(function() prices.set("m", { input = 1 }) end,
      "po.llm.prices.set: price must be a table with numbers input and output")
  end)
end)
