--- Server-Sent Events, parsed incrementally (the WHATWG event-stream
--- format that OpenAI and Anthropic stream with). Feed it chunks split
--- anywhere — inside a line, between "\r" and "\n", empty ones — and it calls
--- back once per complete event.
---
---   local p = require("poengine.llm.sse").new(function(ev) ... end, { max_event = 8 * 2^20 })
---   local ok, err, code = p:feed(chunk) ... p:finish()
---
--- Each event is `{ event = "message" | name, data = text, id = text|nil }`:
--- data lines are joined with "\n"; comment lines (":") and events without
--- data are skipped, and a byte-order mark opening the stream is dropped, as
--- the format says.
---
--- Parsing is linear in the input: a partial line is kept as a list of
--- pieces and joined once its end arrives, and each chunk is searched only
--- once. A line longer than max_line, or an event whose data outgrows
--- max_event, stops the parser with `nil, message, "ETOOBIG"`.
local lines = require "poengine.llm.lines"

local M = {}

local find, sub = string.find, string.sub
local concat = table.concat

--- The default limits, in bytes.
M.MAX_EVENT = 8 * 1024 * 1024

local Parser = {}
Parser.__index = Parser

---@param on_event fun(ev: { event: string, data: string, id?: string })
---@param opts? { max_line?: integer, max_event?: integer }
function M.new(on_event, opts)
  local max_event, max_line, option = lines.limits("sse.new", opts, M.MAX_EVENT)
  local self = setmetatable({ on_event = on_event, data = {}, size = 0, event = nil, id = nil,
    max_event = max_event }, Parser)
  self.reader = lines.reader("an SSE", max_line, option, true, function(line)
    return self:_line(line)
  end)
  return self
end

function Parser:_dispatch()
  local data = self.data
  if #data > 0 then
    local ev = { event = self.event or "message", data = #data == 1 and data[1] or concat(data, "\n"), id = self.id }
    self.data, self.size, self.event = {}, 0, nil
    self.on_event(ev)
  else
    self.event = nil
  end
end

function Parser:_line(line)
  if line == "" then
    return self:_dispatch()
  end
  if sub(line, 1, 1) == ":" then
    return
  end
  local colon = find(line, ":", 1, true)
  local field, value
  if colon then
    field = sub(line, 1, colon - 1)
    -- One copy of the value, however long: a space after the colon is skipped.
    value = sub(line, sub(line, colon + 1, colon + 1) == " " and colon + 2 or colon + 1)
  else
    field, value = line, ""
  end
  if field == "data" then
    self.size = self.size + #value + 1
    if self.size > self.max_event then
      return "an SSE event is longer than max_event (" .. self.max_event .. " bytes)"
    end
    self.data[#self.data + 1] = value
  elseif field == "event" then
    self.event = value
  elseif field == "id" then
    self.id = value
  end
end

--- Parses a chunk; calls on_event for every event it completes. Returns
--- true, or nil, message, "ETOOBIG" once a limit is passed (and from then
--- on: the rest of the stream is not parsed).
---@param chunk string
---@return true|nil ok
---@return string? message
---@return string? code
function Parser:feed(chunk)
  return self.reader:feed(chunk)
end

--- Ends the stream. An event cut off before its blank line is dropped, as
--- the format says; returns true if the stream ended on an event boundary
--- (false, message, code if the parser had stopped on a limit).
function Parser:finish()
  local clean, err, code = self.reader:finish()
  clean = clean and #self.data == 0
  self.data, self.size = {}, 0
  if code then
    return false, err, code
  end
  return clean
end

return M
