--- Server-Sent Events, parsed incrementally (the WHATWG event-stream
--- format that OpenAI and Anthropic stream with). Feed it chunks split
--- anywhere — inside a line, between "\r" and "\n" — and it calls back once
--- per complete event.
---
---   local p = require("poengine.llm.sse").new(function(ev) ... end)
---   p:feed(chunk) ... p:finish()
---
--- Each event is `{ event = "message" | name, data = text, id = text|nil }`:
--- data lines are joined with "\n"; comment lines (":") and events without
--- data are skipped, as the format says.
local M = {}

local find, sub = string.find, string.sub
local concat = table.concat

local Parser = {}
Parser.__index = Parser

---@param on_event fun(ev: { event: string, data: string, id?: string })
function M.new(on_event)
  return setmetatable({ on_event = on_event, buf = "", data = {}, event = nil, id = nil, cr = false }, Parser)
end

function Parser:_dispatch()
  local data = self.data
  if #data > 0 then
    local ev = { event = self.event or "message", data = concat(data, "\n"), id = self.id }
    self.data = {}
    self.event = nil
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
    value = sub(line, colon + 1)
    if sub(value, 1, 1) == " " then
      value = sub(value, 2)
    end
  else
    field, value = line, ""
  end
  if field == "data" then
    self.data[#self.data + 1] = value
  elseif field == "event" then
    self.event = value
  elseif field == "id" then
    self.id = value
  end
end

--- Parses a chunk; calls on_event for every event it completes.
---@param chunk string
function Parser:feed(chunk)
  local buf = self.buf .. chunk
  local pos = 1
  if self.cr and sub(buf, 1, 1) == "\n" then
    pos = 2 -- the "\n" of a "\r\n" split across chunks
  end
  self.cr = false
  while true do
    local s = find(buf, "[\r\n]", pos)
    if not s then
      break
    end
    local line = sub(buf, pos, s - 1)
    if sub(buf, s, s) == "\r" then
      if s == #buf then
        self.cr = true
        pos = s + 1
      elseif sub(buf, s + 1, s + 1) == "\n" then
        pos = s + 2
      else
        pos = s + 1
      end
    else
      pos = s + 1
    end
    self:_line(line)
  end
  self.buf = sub(buf, pos)
end

--- Ends the stream. An event cut off before its blank line is dropped, as
--- the format says; returns true if the stream ended on an event boundary.
function Parser:finish()
  local clean = self.buf == "" and #self.data == 0
  self.buf, self.data = "", {}
  return clean
end

return M
