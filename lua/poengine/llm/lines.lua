--- The line splitter under the SSE and NDJSON parsers: chunks in, complete
--- lines out, in time linear in the input however it is cut.
---
--- A line still open is kept as a list of pieces and joined once, when its
--- end arrives; each chunk is searched for line ends only once. A line longer
--- than max_line stops the reader (`nil, message, "ETOOBIG"`), so a server
--- that never ends a line costs bounded memory. A UTF-8 byte-order mark
--- opening the stream is dropped, even when it arrives split.
local M = {}

local find, sub, byte = string.find, string.sub, string.byte
local concat = table.concat
local type, pairs, tostring, error = type, pairs, tostring, error

local BOM = "\239\187\191"
local CR, LF = 13, 10

--- Reads the limit options of a parser: returns max_event, max_line (which
--- defaults to max_event) and the name of the option that set max_line, for
--- messages. Raises on a programmer error, naming fname.
---@return integer max_event
---@return integer max_line
---@return string line_option
function M.limits(fname, opts, default)
  if opts == nil then
    return default, default, "max_event"
  end
  if type(opts) ~= "table" then
    error(fname .. ": options must be a table, got " .. type(opts), 3)
  end
  for k, v in pairs(opts) do
    if k ~= "max_event" and k ~= "max_line" then
      error(fname .. ": unknown option '" .. tostring(k) .. "'", 3)
    end
    if type(v) ~= "number" or v < 1 or v ~= v then
      error(fname .. ": " .. k .. " must be a positive number of bytes, got " .. tostring(v), 3)
    end
  end
  local max_event = opts.max_event or default
  return max_event, opts.max_line or max_event, opts.max_line and "max_line" or "max_event"
end

local Reader = {}
Reader.__index = Reader

--- A reader. label names the format in messages ("an SSE line is longer
--- than max_event"), option the limit's option name. cr_ends_line: "\r", "\n" and "\r\n" all end a line (SSE);
--- otherwise only "\n" does (NDJSON). on_line(line) may return a message to
--- stop the reader with it ("ETOOBIG").
---@param label string
---@param max_line integer
---@param option string
---@param cr_ends_line boolean
---@param on_line fun(line: string): string?
function M.reader(label, max_line, option, cr_ends_line, on_line)
  return setmetatable({ label = label, max_line = max_line, option = option, cr_ends_line = cr_ends_line, on_line = on_line, pending = {}, plen = 0, cr = false, head = "" }, Reader)
end

local function fail(self, message)
  self.err = message
  self.pending, self.plen = {}, 0
  return nil, message, "ETOOBIG"
end

local function too_long(self)
  return fail(self, self.label .. " line is longer than " .. self.option .. " (" .. self.max_line .. " bytes)")
end

-- Holds back the first bytes of the stream until it is clear whether they
-- are a byte-order mark; returns the chunk to parse (nil: wait for more).
local function strip_bom(self, chunk)
  local head = self.head .. chunk
  if #head < 3 and head == sub(BOM, 1, #head) then
    self.head = head
    return nil
  end
  self.head = nil
  if sub(head, 1, 3) == BOM then
    return sub(head, 4)
  end
  return head
end

---@param chunk string
---@return true|nil ok
---@return string? message
---@return string? code
function Reader:feed(chunk)
  if self.err then
    return nil, self.err, "ETOOBIG"
  end
  if self.head then
    chunk = strip_bom(self, chunk)
    if not chunk then
      return true
    end
  end
  local n = #chunk
  local pos = 1
  if self.cr and n > 0 then
    self.cr = false
    if byte(chunk, 1) == LF then
      pos = 2 -- the "\n" of a "\r\n" split across chunks
    end
  end
  local pending, cr_ends_line = self.pending, self.cr_ends_line
  -- The next "\n" and "\r" at or after pos (n + 1: none), each searched for
  -- with a plain find (a character class is many times slower) and only
  -- again once pos has passed it, so the chunk is scanned once.
  local next_lf, next_cr = 0, cr_ends_line and 0 or n + 1
  while true do
    if next_lf < pos then
      next_lf = find(chunk, "\n", pos, true) or n + 1
    end
    if next_cr < pos then
      next_cr = find(chunk, "\r", pos, true) or n + 1
    end
    local s = next_lf < next_cr and next_lf or next_cr
    if s > n then
      if pos <= n then
        self.plen = self.plen + (n - pos + 1)
        if self.plen > self.max_line then
          return too_long(self)
        end
        pending[#pending + 1] = sub(chunk, pos)
      end
      return true
    end
    if self.plen + (s - pos) > self.max_line then
      return too_long(self)
    end
    local line = sub(chunk, pos, s - 1)
    if #pending > 0 then
      pending[#pending + 1] = line
      line = concat(pending)
      pending = {}
      self.pending, self.plen = pending, 0
    end
    pos = s + 1
    if cr_ends_line and byte(chunk, s) == CR then
      if s == n then
        self.cr = true
      elseif byte(chunk, s + 1) == LF then
        pos = s + 2
      end
    end
    local message = self.on_line(line)
    if message then
      return fail(self, message)
    end
  end
end

--- Ends the stream: returns whether it ended at a line end, and the
--- unfinished last line ("" if none); false, message, "ETOOBIG" after a limit.
---@return boolean clean
---@return string rest_or_message
---@return string? code
function Reader:finish()
  if self.err then
    return false, self.err, "ETOOBIG"
  end
  local rest = concat(self.pending)
  if self.head then
    rest = self.head -- a stream of one or two bytes that began like a BOM
  end
  self.pending, self.plen, self.head, self.cr = {}, 0, nil, false
  return rest == "", rest
end

return M
