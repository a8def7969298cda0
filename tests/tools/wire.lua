--- Test helper for the wire specs: a documented stream's bytes fed through
--- the adapter's incremental parser (SSE or NDJSON, by the adapter's
--- stream_format) in pieces of `piece` bytes, as the provider feeds them.
---   local parts, msg, code, info, tokens, thoughts = wire.feed(adapter, bytes, piece, req)
--- parts is nil on the adapter's error (msg, code, info from stream_event
--- or stream_finish); tokens and thoughts are the lists of what went to
--- emit and emit_reasoning.
local M = {}

function M.feed(adapter, bytes, piece, req)
  local st = adapter.stream_start(req)
  local tokens, thoughts, failure = {}, {}, nil
  local kind = adapter.stream_format == "ndjson" and "poengine.llm.ndjson" or "poengine.llm.sse"
  local parser = require(kind).new(function(ev)
    if failure then
      return
    end
    local msg, code, info = adapter.stream_event(st, ev, function(t) tokens[#tokens + 1] = t end,
      function(t) thoughts[#thoughts + 1] = t end)
    if msg then
      failure = { msg, code, info }
    end
  end)
  piece = piece or #bytes
  for i = 1, #bytes, math.max(piece, 1) do
    assert(parser:feed(bytes:sub(i, i + piece - 1)))
  end
  local _, ferr, fcode = parser:finish()
  if fcode and not failure then
    failure = { ferr, fcode } -- the stream ended inside an event or a line
  end
  if failure then
    return nil, failure[1], failure[2], failure[3], tokens, thoughts
  end
  local parts, msg, code = adapter.stream_finish(st)
  return parts, msg, code, nil, tokens, thoughts
end

return M
