--- Newline-delimited JSON (Ollama's streaming format), parsed incrementally:
--- chunks may split a line anywhere; each complete non-empty line is handed
--- over as text (the caller decodes it, so a bad line is its decision).
---
---   local p = require("poengine.llm.ndjson").new(function(line) ... end, { max_line = 8 * 2^20 })
---   local ok, err, code = p:feed(chunk) ... p:finish()
---
--- Parsing is linear in the input however it is cut; a line longer than
--- max_line (max_event is a synonym: a line is an event) stops the parser
--- with `nil, message, "ETOOBIG"`.
local lines = require "poengine.llm.lines"

local M = {}

local find, sub = string.find, string.sub
local min = math.min

--- The default limit, in bytes.
M.MAX_LINE = 8 * 1024 * 1024

local Parser = {}
Parser.__index = Parser

local function emit(on_line, line)
  if sub(line, -1) == "\r" then
    line = sub(line, 1, -2)
  end
  if find(line, "%S") then
    on_line(line)
  end
end

---@param on_line fun(line: string)
---@param opts? { max_line?: integer, max_event?: integer }
function M.new(on_line, opts)
  local max_event, max_line, option = lines.limits("ndjson.new", opts, M.MAX_LINE)
  local self = setmetatable({ on_line = on_line }, Parser)
  self.reader = lines.reader("an NDJSON", min(max_event, max_line), option, false, function(line)
    emit(on_line, line)
  end)
  return self
end

--- Parses a chunk. Returns true, or nil, message, "ETOOBIG" once a line
--- passes the limit (the rest of the stream is then not parsed).
---@param chunk string
function Parser:feed(chunk)
  return self.reader:feed(chunk)
end

--- Ends the stream: a last line without its newline is handed over too.
--- Returns true, or false, message, "ETOOBIG" if a limit had stopped it.
function Parser:finish()
  local _, rest, code = self.reader:finish()
  if code then
    return false, rest, code
  end
  emit(self.on_line, rest)
  return true
end

return M
