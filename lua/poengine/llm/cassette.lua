--- Record and replay of LLM calls: a cassette wraps a router or a provider
--- and keeps normalized request/response pairs in a JSON Lines file, so
--- flows and tests can run offline and deterministically.
---
---   local cas = po.llm.cassette { path = "tests/fixtures/flow.jsonl", mode = "auto", wrap = router }
---   local res = cas:complete { prompt = "hi" }
---
--- Modes: "record" (start a fresh file; every call goes to `wrap` and is
--- written), "replay" (answer from the file only; a request it does not hold
--- fails with "ECASSETTE"; `wrap` is not needed), "auto" (replay what the
--- file holds, call `wrap` and append for the rest). A streamed answer keeps
--- its chunks, and replays to on_token one at a time (`replay_pace` seconds
--- apart, default 0).
local po = require "poengine"
local util = require "poengine.llm.util"

local M = {}

local type, pairs, ipairs, tostring, error = type, pairs, ipairs, tostring, error

local Cassette = {}
Cassette.__index = Cassette
Cassette.__name = "poengine.llm.cassette"

local MODES = { record = true, replay = true, auto = true }
local OPTIONS = { path = "string", mode = "string", wrap = true, replay_pace = "number" }
local RESPONSE_FIELDS = { "text", "finish_reason", "tool_calls", "reasoning", "json", "usage", "cost", "provider",
  "model", "latency", "ttft", "chunks" }

-- The request as matched and written: normalized, without what does not
-- change the answer.
local function normalized(fname, request)
  local req = util.normalize(fname, request)
  req.stream = nil
  req.metadata = nil
  return req
end

local function key_of(req)
  return po.json.encode(req, { sort_keys = true })
end

--- Opens a cassette. Raises on bad options; returns nil, message, code when
--- the file cannot be read or written, or holds a line that is not a pair.
function M.new(opts)
  local fname = "po.llm.cassette"
  if type(opts) ~= "table" then
    error(fname .. ": options must be a table, got " .. type(opts), 3)
  end
  require("poengine.util.options").check(fname, opts, OPTIONS, 3)
  if not opts.path then
    error(fname .. ": path is required", 3)
  end
  local mode = opts.mode or "replay"
  if not MODES[mode] then
    error(fname .. ": mode must be \"record\", \"replay\" or \"auto\", got \"" .. mode .. "\"", 3)
  end
  local wrap = opts.wrap
  if wrap ~= nil and (type(wrap) ~= "table" or type(wrap.complete) ~= "function") then
    error(fname .. ": wrap must be a router or a provider", 3)
  end
  if mode ~= "replay" and not wrap then
    error(fname .. ": mode \"" .. mode .. "\" needs wrap = a router or a provider", 3)
  end
  if opts.replay_pace ~= nil and not (opts.replay_pace >= 0) then
    error(fname .. ": replay_pace must be a non-negative number of seconds, got " .. tostring(opts.replay_pace), 3)
  end
  local self = setmetatable({ path = opts.path, mode = mode, wrap = wrap, tapes = {}, plays = {},
    replay_pace = opts.replay_pace or 0,
    counts = { replayed = 0, recorded = 0, missing = 0 } }, Cassette)
  if mode ~= "record" then
    local f = io.open(opts.path, "rb")
    if f then
      local n = 0
      for line in f:lines() do
        n = n + 1
        if line:find("%S") then
          local pair, err = po.json.decode(line)
          if type(pair) ~= "table" or type(pair.request) ~= "table" or type(pair.response) ~= "table" then
            f:close()
            return nil, fname .. ": " .. opts.path .. ":" .. n .. ": not a request/response pair"
              .. (err and (": " .. err) or ""), "ECASSETTE"
          end
          local key = key_of(pair.request)
          local list = self.tapes[key] or {}
          list[#list + 1] = pair.response
          self.tapes[key] = list
        end
      end
      f:close()
    elseif mode == "replay" then
      return nil, fname .. ": cannot read " .. opts.path, "ECASSETTE"
    end
  end
  local f, err = io.open(opts.path, mode == "record" and "wb" or "ab")
  if mode ~= "replay" then
    if not f then
      return nil, fname .. ": cannot write " .. opts.path .. ": " .. tostring(err), "ECASSETTE"
    end
    self.file = f
  elseif f then
    f:close()
  end
  return self
end

-- Secrets never reach the file: the wrapped providers' keys and credential
-- headers (by name) are scrubbed wherever they appear, and so is anything
-- shaped like a vendor key; ordinary words that merely contain "sk-" stay,
-- so a recorded prompt replays.
function Cassette:_write(req, res)
  local out = {}
  for _, k in ipairs(RESPONSE_FIELDS) do
    out[k] = res[k]
  end
  local line = po.json.encode({ request = req, response = out }, { sort_keys = true })
  local providers = { self.wrap }
  for _, d in ipairs(self.wrap.deployments or {}) do
    providers[#providers + 1] = d.provider
  end
  local secrets = {}
  for _, p in ipairs(providers) do
    for _, secret in ipairs(util.secrets(p)) do
      secrets[#secrets + 1] = secret
    end
  end
  line = util.scrub(line, secrets)
  self.file:write(line, "\n")
  self.file:flush()
  self.counts.recorded = self.counts.recorded + 1
end

--- Answers a request: from the file (replay, auto) or through the wrapped
--- router or provider (record, auto; then written). Same results as
--- router:complete; "ECASSETTE" in replay mode for a request not held.
---@param request table
---@param opts? table passed to the wrapped complete; on_token gets replayed text too
function Cassette:complete(request, opts)
  local fname = "cassette:complete"
  if getmetatable(self) ~= Cassette then
    error(fname .. ": called on a " .. type(self) .. " (use cas:complete)", 2)
  end
  local req = normalized(fname, request)
  local key = key_of(req)
  if self.mode ~= "record" then
    local list = self.tapes[key]
    if list then
      -- Identical requests replay in the order they were recorded; the
      -- last answer repeats once they are used up.
      local i = (self.plays[key] or 0) + 1
      self.plays[key] = i
      local res = util.copy(list[math.min(i, #list)])
      res.cached = false
      res.replayed = true
      local chunks = res.chunks
      res.chunks = nil
      local on_token = opts and opts.on_token
      if on_token then
        util.replay_chunks(on_token, res.text, chunks, self.replay_pace)
      end
      self.counts.replayed = self.counts.replayed + 1
      return res
    end
    if self.mode == "replay" then
      self.counts.missing = self.counts.missing + 1
      return nil, fname .. ": " .. self.path .. " holds no answer for this request (model "
        .. tostring(req.model) .. ", " .. #req.messages .. " messages)", "ECASSETTE"
    end
  end
  local chunks, wopts = nil, opts
  if opts and opts.on_token then
    -- The chunks as the caller saw them, kept for a faithful replay.
    chunks, wopts = {}, util.copy(opts)
    local on_token = opts.on_token
    wopts.on_token = function(text)
      chunks[#chunks + 1] = text
      on_token(text)
    end
  end
  local res, err, code, info = self.wrap:complete(request, wopts)
  if not res then
    return nil, err, code, info
  end
  if chunks and #chunks > 1 then
    res = util.copy(res)
    res.chunks = chunks
  end
  self:_write(req, res)
  local list = self.tapes[key] or {}
  list[#list + 1] = res
  self.tapes[key] = list
  self.plays[key] = #list
  if res.chunks then
    res = util.copy(res)
    res.chunks = nil
  end
  return res
end

--- Like complete, as a future.
function Cassette:complete_async(request, opts)
  return po.async(self.complete, self, request, opts)
end

--- Counts: replayed, recorded, missing.
function Cassette:stats()
  return { replayed = self.counts.replayed, recorded = self.counts.recorded, missing = self.counts.missing }
end

--- Closes the file (safe to call twice).
function Cassette:close()
  if self.file then
    self.file:close()
    self.file = nil
  end
end

return M
