--- Newline-delimited JSON (Ollama's streaming format), parsed incrementally:
--- chunks may split a line anywhere; each complete non-empty line is handed
--- over as text (the caller decodes it, so a bad line is its decision).
---
---   local p = require("poengine.llm.ndjson").new(function(line) ... end)
---   p:feed(chunk) ... p:finish()
local M = {}

local find, sub = string.find, string.sub

local Parser = {}
Parser.__index = Parser

---@param on_line fun(line: string)
function M.new(on_line)
  return setmetatable({ on_line = on_line, buf = "" }, Parser)
end

local function emit(self, line)
  if sub(line, -1) == "\r" then
    line = sub(line, 1, -2)
  end
  if find(line, "%S") then
    self.on_line(line)
  end
end

---@param chunk string
function Parser:feed(chunk)
  local buf = self.buf .. chunk
  local pos = 1
  while true do
    local nl = find(buf, "\n", pos, true)
    if not nl then
      break
    end
    emit(self, sub(buf, pos, nl - 1))
    pos = nl + 1
  end
  self.buf = sub(buf, pos)
end

--- Ends the stream: a last line without its newline is handed over too.
function Parser:finish()
  local rest = self.buf
  self.buf = ""
  emit(self, rest)
  return true
end

return M
