-- The LLM wire formats (issue 15 benchmarks):
--   1. Streaming parse throughput: a streamed reply of WORDS words (one
--      event each, as the test server sends it: OpenAI and Anthropic SSE,
--      Ollama NDJSON; OpenAI's with a tool call whose arguments come in
--      8-byte fragments) fed in 16 KiB pieces through the format's
--      incremental parser (poengine.llm.sse / ndjson) into the adapter's
--      stream_event, then stream_finish: time per MB beside a plain line
--      split of the same bytes in the same pieces (the floor any parser
--      pays to find the event boundaries).
--   2. Router overhead per call with tools and a JSON schema in the
--      request, the network excluded (a lua provider that answers at once),
--      beside calling the provider directly: no cache, and a cache miss
--      (the whole request canonicalized and hashed, looked up, stored).
local po = require "poengine"
local lib = require "tests.bench.lib"
local llm_server = require "tests.tools.llm_server"
local adapters = require("poengine.llm.provider").adapters

local WORDS = 20000
local PIECE = 16 * 1024

-- The streamed bytes, as the test server sends them.
local server = llm_server.start()
local words = {}
for i = 1, WORDS do
  words[i] = "w" .. (i % 997)
end
local prompt = table.concat(words, " ")
local TOOLS = { { type = "function", ["function"] = { name = "save", parameters = { type = "object",
  properties = { text = { type = "string" } } } } } }

local function fetch(path, body)
  local res = assert(assert(po.http.request { method = "POST", url = server.url .. path, body = po.json.encode(body),
    headers = { ["Content-Type"] = "application/json" } }):wait(120))
  assert(res.status == 200, res.body)
  return res.body
end

local messages = { { role = "user", content = prompt } }
local streams = {
  openai = fetch("/v1/chat/completions", { model = "m", stream = true, stream_options = { include_usage = true },
    messages = messages }),
  anthropic = fetch("/v1/messages", { model = "m", max_tokens = 100000, stream = true, messages = messages }),
  ollama = fetch("/api/chat", { model = "m", stream = true, messages = messages }),
  -- A tool call whose arguments (the prompt as a JSON string) stream in fragments.
  openai_tools = fetch("/v1/chat/completions", { model = "m", stream = true, tools = TOOLS,
    messages = { { role = "user", content = 'call save with {"text": "' .. prompt .. '"}' } } }),
}
server:stop()

local function pieces_of(body)
  local out = {}
  for i = 1, #body, PIECE do
    out[#out + 1] = body:sub(i, i + PIECE - 1)
  end
  return out
end

local function parse(kind, pieces)
  local a = adapters[kind]
  local st = a.stream_start()
  local emit = function() end
  local on_event = function(ev)
    local msg = a.stream_event(st, ev, emit)
    assert(not msg, msg)
  end
  local p = require(a.stream_format == "ndjson" and "poengine.llm.ndjson" or "poengine.llm.sse").new(on_event)
  for _, piece in ipairs(pieces) do
    assert(p:feed(piece))
  end
  p:finish()
  return assert(a.stream_finish(st))
end

-- Lines of the same pieces, each made a string (a line cut by a piece
-- boundary joined once), kept in a list as a parser's caller would get them.
local find, sub = string.find, string.sub
local function split(pieces)
  local lines, n, rest = {}, 0, nil
  for _, piece in ipairs(pieces) do
    local pos = 1
    while true do
      local nl = find(piece, "\n", pos, true)
      if not nl then
        break
      end
      local line = sub(piece, pos, nl - 1)
      if rest then
        line, rest = rest .. line, nil
      end
      n = n + 1
      lines[n] = line
      pos = nl + 1
    end
    if pos <= #piece then
      rest = (rest or "") .. sub(piece, pos)
    end
  end
  return lines
end

for _, case in ipairs {
  { "openai", "openai", "OpenAI SSE, text" },
  { "openai_tools", "openai", "OpenAI SSE, a tool call's argument fragments" },
  { "anthropic", "anthropic", "Anthropic SSE, text" },
  { "ollama", "ollama", "Ollama NDJSON, text" },
} do
  local body, kind = streams[case[1]], case[2]
  local pieces = pieces_of(body)
  local parts = parse(kind, pieces)
  assert(#parts.text > 0 or parts.tool_calls, "nothing parsed from " .. case[1])
  local mb = #body / 1e6
  local row = lib.compare {
    name = "llm wire",
    case = string.format("stream parse, %s (%.1f MB in 16 KiB pieces), time per MB", case[3], mb),
    subject = { label = "parser + " .. kind .. ".stream_event", fn = function() parse(kind, pieces) end },
    baseline = { label = "plain line split", fn = function() split(pieces) end },
    ops = mb,
    unit = "ms",
  }
  io.stderr:write(string.format("llm wire: %s: %.1f MB/s (line split %.1f MB/s)\n", case[1], 1e3 / row.subject,
    1e3 / row.baseline))
end

-- Router overhead with tools and a JSON schema in the request.
local provider = po.llm.provider("lua", {
  model = "bench",
  fn = function()
    return { text = '{"ok":true}', usage = { input = 200, output = 5 } }
  end,
})
local function tool(name)
  return { name = name, description = "the " .. name .. " tool", parameters = { type = "object", properties = {
    path = { type = "string", description = "a file" }, line = { type = "integer" },
    mode = { type = "string", enum = { "read", "write", "append" } } }, required = { "path" } } }
end
local SCHEMA = { type = "json_schema", schema = { type = "object", properties = {
  verdict = { type = "string", enum = { "accept", "reject" } }, score = { type = "number" },
  reasons = { type = "array", items = { type = "string" } } }, required = { "verdict", "score" } } }
local CALLS = 20000
local seq = 0
local function request()
  seq = seq + 1
  return { system = "You review patches.", messages = { { role = "user", content = "review patch " .. seq } },
    tools = { tool("read_file"), tool("write_file"), tool("search") }, response_format = SCHEMA, max_tokens = 256 }
end
local cache = assert(po.cache.open { namespace = "llm-wire-bench" })
cache:clear()
local budget = { usd = 1e9, tokens = 1e12 }
local plain = po.llm.router { deployments = { { provider = provider } }, budget = budget }
local cached = po.llm.router { deployments = { { provider = provider } }, budget = budget, cache = cache }
local function direct()
  for _ = 1, CALLS do
    assert(provider:complete(request()))
  end
end
for _, case in ipairs {
  { plain, "router overhead per call, tools + JSON schema, no cache", 3 },
  { cached, "router overhead per call, tools + JSON schema, cache miss (lookup + store)", 5 },
} do
  lib.compare {
    name = "llm wire",
    case = case[2],
    subject = { label = "router:complete", fn = function()
      for _ = 1, CALLS do
        assert(case[1]:complete(request()))
      end
    end },
    baseline = { label = "provider:complete", fn = direct },
    ops = CALLS,
    unit = "us",
    goal = { max_ratio = case[3] },
  }
end
cache:close()
