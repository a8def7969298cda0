-- Randomized tests of everything that reads a server's or a model's bytes:
-- the SSE and NDJSON parsers, each provider's stream and reply decoders,
-- and the diff parser. Inputs are valid streams, the same cut at random
-- places (empty chunks included), mutated (bytes flipped, cut, repeated,
-- values of the wrong type put anywhere in the JSON) and random bytes.
-- Properties: nothing raises; a stream cut anywhere gives what the uncut
-- stream gives; a failure is nil, message, code.
--
-- Each property runs for POENGINE_FUZZ_SECONDS (default 1) from the seed
-- POENGINE_FUZZ_SEED (default: from the clock); a failure names the seed
-- and the case, and the same seed replays the same cases.
local po = require "poengine"
local sse = require "poengine.llm.sse"
local ndjson = require "poengine.llm.ndjson"
local provider = require "poengine.llm.provider"
local diff = require "poengine.optimizer.diff"

local SEED = tonumber(os.getenv("POENGINE_FUZZ_SEED")) or (os.time() % 1000000)
local SECONDS = tonumber(os.getenv("POENGINE_FUZZ_SECONDS")) or 1
local floor, char, concat = math.floor, string.char, table.concat

-- Park–Miller: products stay below 2^53, so doubles keep it exact.
local function prng(seed)
  local s = seed % 2147483646 + 1
  return function(n)
    s = s * 16807 % 2147483647
    return floor(s / 2147483647 * n) + 1
  end
end

-- Runs body(rand) on case after case until the time is up.
local function fuzz(name, body)
  it(name, function()
    local t0, case = po.now(), 0
    repeat
      case = case + 1
      local ok, err = pcall(body, prng(SEED * 7919 + case))
      if not ok then
        error(("POENGINE_FUZZ_SEED=%d, case %d: %s"):format(SEED, case, tostring(err)), 0)
      end
    until po.now() - t0 > SECONDS
  end)
end

local function show(s)
  s = s:sub(1, 300):gsub("[%c\128-\255]", function(c) return ("\\%d"):format(c:byte()) end)
  return s
end

---------------------------------------------------------------------------
-- Inputs

local PIECES = { "data: ", "data:", "event: ", "id: ", ": c", "\r", "\n", "\r\n", "\n\n", " ", "{", "}", "[", "]",
  "\"", ",", ":", "0", "null", "\239\187\191", "x" }

local function random_bytes(rand, n)
  local out = {}
  for i = 1, n do
    out[i] = rand(3) == 1 and char(rand(256) - 1) or PIECES[rand(#PIECES)]
  end
  return concat(out)
end

-- The text cut at random places, with empty chunks here and there.
local function cut(rand, text)
  local chunks, pos = {}, 1
  while pos <= #text do
    if rand(8) == 1 then
      chunks[#chunks + 1] = ""
    end
    local len = rand(4) == 1 and rand(#text) or rand(6)
    chunks[#chunks + 1] = text:sub(pos, pos + len - 1)
    pos = pos + len
  end
  return chunks
end

-- Byte-level damage: flips, cuts, repeats, insertions, a truncated end.
local function damage(rand, text)
  for _ = 1, rand(3) do
    local n = #text
    local at = rand(n + 1)
    local r = rand(5)
    if r == 1 and n > 0 then
      text = text:sub(1, at - 1) .. char(rand(256) - 1) .. text:sub(at + 1)
    elseif r == 2 then
      text = text:sub(1, at - 1) .. text:sub(at + rand(20))
    elseif r == 3 then
      local len = rand(40)
      text = text:sub(1, at + len) .. text:sub(at, at + len) .. text:sub(at + len + 1)
    elseif r == 4 then
      text = text:sub(1, at - 1) .. random_bytes(rand, rand(4)) .. text:sub(at)
    else
      text = text:sub(1, at)
    end
  end
  return text
end

local HUGE = "@HUGE@" -- becomes a 400-digit number once encoded

local function random_value(rand)
  local pool = { 123, -1, 0.5, 1e300, "", "text", true, false, po.json.null, HUGE,
    po.json.object {}, po.json.array {}, po.json.array { 5 }, { x = 1 } }
  return pool[rand(#pool)]
end

-- A value of a random type put at a random place in a decoded tree.
local function mutate_tree(rand, root)
  local slots = {}
  local function walk(t)
    for k, v in pairs(t) do
      slots[#slots + 1] = { t, k }
      if type(v) == "table" then
        walk(v)
      end
    end
  end
  walk(root)
  if #slots == 0 or rand(10) == 1 then
    return random_value(rand)
  end
  for _ = 1, rand(2) do
    local slot = slots[rand(#slots)]
    slot[1][slot[2]] = random_value(rand)
  end
  return root
end

local function encode(v)
  return (po.json.encode(v):gsub('"' .. HUGE .. '"', ("9"):rep(400)))
end

---------------------------------------------------------------------------
-- Valid streams of each format, as lists of decoded events

local function words(rand)
  local out = {}
  for i = 1, rand(4) do
    out[i] = ({ "echo", "task-1", "x y", "\"q\"", "\r\n", "é" })[rand(6)]
  end
  return out
end

local EVENTS = {}

function EVENTS.openai(rand)
  local evs = { { choices = { { index = 0, delta = { role = "assistant", content = "" } } } } }
  for _, w in ipairs(words(rand)) do
    evs[#evs + 1] = { choices = { { index = 0, delta = { content = w } } } }
  end
  if rand(2) == 1 then
    evs[#evs + 1] = { choices = { { index = 0, delta = { tool_calls = { { index = 0, id = "c1",
      ["function"] = { name = "f", arguments = "{\"a\":" } } } } } } }
    evs[#evs + 1] = { choices = { { index = 0, delta = { tool_calls = { { index = 0,
      ["function"] = { arguments = "1}" } } } } } } }
  end
  evs[#evs + 1] = { choices = { { index = 0, delta = {}, finish_reason = "stop" } } }
  evs[#evs + 1] = { choices = {}, usage = { prompt_tokens = 3, completion_tokens = 2,
    prompt_tokens_details = { cached_tokens = 1 } } }
  return evs
end

function EVENTS.anthropic(rand)
  local evs = { { type = "message_start", message = { usage = { input_tokens = 3, output_tokens = 1 } } },
    { type = "content_block_start", index = 0, content_block = { type = "text", text = "" } } }
  for _, w in ipairs(words(rand)) do
    evs[#evs + 1] = { type = "content_block_delta", index = 0, delta = { type = "text_delta", text = w } }
  end
  evs[#evs + 1] = { type = "content_block_stop", index = 0 }
  evs[#evs + 1] = { type = "message_delta", delta = { stop_reason = "end_turn" }, usage = { output_tokens = 2 } }
  evs[#evs + 1] = { type = "message_stop" }
  return evs
end

function EVENTS.ollama(rand)
  local evs = {}
  for _, w in ipairs(words(rand)) do
    evs[#evs + 1] = { message = { role = "assistant", content = w }, done = false }
  end
  evs[#evs + 1] = { message = { role = "assistant", content = "" }, done = true, done_reason = "stop",
    prompt_eval_count = 3, eval_count = 2 }
  return evs
end

-- The wire text of a list of events (each already JSON text).
local function wire(kind, rand, texts)
  local out = {}
  local eol = ({ "\n", "\r\n", "\r" })[rand(3)]
  for i, t in ipairs(texts) do
    if kind == "ollama" then
      out[i] = t .. "\n"
    else
      out[i] = (kind == "anthropic" and ("event: x" .. eol) or "") .. "data: " .. t .. eol .. eol
    end
  end
  if kind == "openai" then
    out[#out + 1] = "data: [DONE]" .. eol .. eol
  end
  return (rand(6) == 1 and "\239\187\191" or "") .. concat(out)
end

-- A stream of kind: valid, with a mutated event, or damaged bytes.
local function stream_text(kind, rand)
  local evs = EVENTS[kind](rand)
  local texts = {}
  local mutate = rand(3) == 1 and rand(#evs) or nil
  for i, ev in ipairs(evs) do
    texts[i] = i == mutate and encode(mutate_tree(rand, ev)) or encode(ev)
  end
  local text = wire(kind, rand, texts)
  if rand(3) == 1 then
    text = damage(rand, text)
  end
  return text
end

---------------------------------------------------------------------------
-- Runners: everything a parse gives, to compare

local function run_parser(new, chunks, opts)
  local got = {}
  local p = new(function(ev) got[#got + 1] = ev end, opts)
  local code
  for _, c in ipairs(chunks) do
    local ok, err, ecode = p:feed(c)
    if not ok then
      assert(type(err) == "string" and ecode == "ETOOBIG", "feed failed without a message and ETOOBIG")
      code = ecode
      break
    end
  end
  local clean, err, fcode = p:finish()
  assert(fcode == code, "finish and feed disagree on the error")
  assert(not fcode or type(err) == "string")
  return { events = got, clean = clean, code = code }
end

local STREAM_CODES = { EPROTO = true, EJSON = true, EHTTP = true, ETOOBIG = true }

-- What the provider would make of a stream: the response's text, finish
-- reason, tool calls and usage, or the error code.
local function run_stream(kind, chunks, opts)
  local adapter = provider.adapters[kind]
  local st = adapter.stream_start()
  local failed, emitted = nil, {}
  local function on_event(ev)
    if failed then
      return
    end
    local msg, code = adapter.stream_event(st, ev, function(t)
      assert(type(t) == "string", "emitted a " .. type(t))
      emitted[#emitted + 1] = t
    end)
    if msg ~= nil then
      assert(type(msg) == "string" and STREAM_CODES[code], "stream_event returned " .. tostring(msg) .. ", "
        .. tostring(code))
      failed = code
    end
  end
  local parser = (kind == "ollama" and ndjson or sse).new(on_event, opts)
  for _, c in ipairs(chunks) do
    local ok, _, code = parser:feed(c)
    if not ok then
      failed = failed or code
      break
    end
  end
  if failed then
    return { code = failed }
  end
  local _, _, pcode = parser:finish()
  if pcode then
    return { code = pcode }
  end
  local parts, msg, code = adapter.stream_finish(st)
  if not parts then
    assert(type(msg) == "string" and code == "EPROTO", "stream_finish returned " .. tostring(code))
    return { code = code }
  end
  local bad, bcode = provider.check_parts(parts)
  if bad then
    assert(type(bad) == "string" and bcode == "EPROTO")
    return { code = bcode }
  end
  assert(parts.text == nil or type(parts.text) == "string")
  return { text = parts.text, emitted = concat(emitted), finish_reason = parts.finish_reason,
    tool_calls = parts.tool_calls, usage = parts.usage }
end

---------------------------------------------------------------------------

describe("the SSE and NDJSON parsers, fuzzed", function()
  for _, parser in ipairs { { "SSE", sse.new }, { "NDJSON", ndjson.new } } do
    fuzz(parser[1] .. ": any bytes, cut anywhere, parse as they do uncut", function(rand)
      local text
      if rand(2) == 1 then
        text = random_bytes(rand, rand(200))
      else
        text = stream_text(parser[1] == "SSE" and "openai" or "ollama", rand)
      end
      local opts = rand(3) == 1 and { max_event = rand(200), max_line = rand(3) == 1 and rand(100) or nil } or nil
      local whole = run_parser(parser[2], { text }, opts)
      local chunks = cut(rand, text)
      assert.are.same(whole, run_parser(parser[2], chunks, opts), "input: " .. show(text))
    end)
  end
end)

describe("the provider decoders, fuzzed", function()
  for _, kind in ipairs { "openai", "anthropic", "ollama" } do
    fuzz(kind .. " streams: valid, mutated or damaged, cut anywhere: a response or an error code, the same either way",
      function(rand)
        local text = stream_text(kind, rand)
        local opts = rand(5) == 1 and { max_event = rand(400) } or nil
        local whole = run_stream(kind, { text }, opts)
        assert.are.same(whole, run_stream(kind, cut(rand, text), opts), "input: " .. show(text))
        if whole.text then
          assert.are.equal(whole.text, whole.emitted)
        end
      end)

    fuzz(kind .. " replies: a value of the wrong type anywhere gives a response or EPROTO", function(rand)
      local evs = EVENTS[kind](rand)
      local reply
      if kind == "openai" then
        reply = { choices = { { message = { role = "assistant", content = "hi", tool_calls = { { id = "c" } } },
          finish_reason = "stop" } }, usage = { prompt_tokens = 1, completion_tokens = 1 } }
      elseif kind == "anthropic" then
        reply = { content = { { type = "text", text = "hi" }, { type = "tool_use", id = "t", name = "f", input = {} } },
          stop_reason = "end_turn", usage = { input_tokens = 1, output_tokens = 1 } }
      else
        reply = evs[#evs]
      end
      local text = encode(mutate_tree(rand, reply))
      if rand(4) == 1 then
        text = damage(rand, text)
      end
      local decoded = po.json.decode(text)
      if type(decoded) ~= "table" then
        return -- the provider's own EJSON / EPROTO, before any adapter
      end
      local parts, msg, code = provider.adapters[kind].parse(decoded)
      if not parts then
        assert(type(msg) == "string" and (code == nil or code == "EPROTO"), "input: " .. show(text))
        return
      end
      local bad, bcode = provider.check_parts(parts)
      assert(bad == nil or (type(bad) == "string" and bcode == "EPROTO"), "input: " .. show(text))
    end)
  end
end)

describe("the diff parser, fuzzed", function()
  local LINES = { "a", "b", "local x = 1", "", "end", "@@ -1 +1 @@", "--- a/f", "+++ b/f", "-a", "+b", " a", "\\ No newline" }

  local function random_text(rand)
    local out = {}
    for i = 1, rand(12) - 1 do
      out[i] = LINES[rand(#LINES)]
    end
    return concat(out, "\n") .. (rand(2) == 1 and "\n" or "")
  end

  fuzz("a damaged or random diff parses to patches or nil, message; patches apply or fail cleanly", function(rand)
    local a, b = random_text(rand), random_text(rand)
    local text
    local r = rand(3)
    if r == 1 then
      text = damage(rand, diff.unified("f", a, b, rand(4) - 1))
    elseif r == 2 then
      local ls = diff.split_lines(diff.unified("f", a, b))
      for _ = 1, rand(3) do
        local i = rand(#ls + 1)
        table.insert(ls, i, LINES[rand(#LINES)])
      end
      text = concat(ls, "\n")
    else
      text = "--- a/f\n+++ b/f\n" .. random_text(rand)
    end
    local patches, err, code = diff.parse(text, rand(8) == 1 and { max_bytes = rand(100) } or nil)
    if not patches then
      assert(type(err) == "string" and (code == nil or code == "ETOOBIG"), "input: " .. show(text))
      return
    end
    for _, p in ipairs(patches) do
      local out, aerr = diff.apply(rand(4) == 1 and nil or a, p)
      assert(out == false or type(out) == "string" or (out == nil and type(aerr) == "string"), "input: " .. show(text))
    end
  end)
end)
