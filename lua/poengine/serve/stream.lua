--- A run's event log as Server-Sent Events: each complete line of
--- events.jsonl as one event (`event:` its kind, `data:` the line's JSON,
--- `id:` the byte offset just past it, so a client that reconnects with
--- Last-Event-ID goes on where it stopped). The log is polled (a stat each
--- `poll` seconds, a read only when it grew); a comment line keeps an idle
--- connection open and finds clients that went away; `event: gone` ends
--- the stream when the run's directory is removed.
local po = require "poengine"
local model = require "poengine.runs.model"

local M = {}

M.POLL = 0.25      -- seconds between looks at the log
M.KEEPALIVE = 15   -- seconds of silence before a comment line

local format = string.format

--- The offset a stream starts at: Last-Event-ID (a reconnecting client),
--- else the `from` query parameter, else 0 (the whole log).
function M.start_offset(req)
  local n = tonumber(req.headers["last-event-id"] or (req.query and req.query.from) or 0)
  if not n or n < 0 or n ~= math.floor(n) then
    return 0
  end
  return n
end

-- The log's first line (its start event, which names the writing process
-- and when it started): a new run under the same id starts a new log,
-- and a log that grew back past the offset within one poll is told apart
-- by it.
local function first_line(dir)
  local f = io.open(dir .. "/events.jsonl", "rb")
  if not f then
    return nil
  end
  local head = f:read(4096) or ""
  f:close()
  return head:match("^([^\n]*)\n")
end

--- The body function of a streamed response (see po.http.serve) for the
--- run in `dir`, from byte `offset`.
function M.body(dir, offset, opts)
  opts = opts or {}
  local poll, keepalive = opts.poll or M.POLL, opts.keepalive or M.KEEPALIVE
  return function(stream)
    if not stream:write("retry: 2000\n\n") then
      return
    end
    local quiet_since = po.now()
    local first = offset > 0 and first_line(dir) or nil
    while true do
      local st = po.files.stat(dir .. "/events.jsonl")
      if not st and not po.files.stat(dir) then
        stream:write("event: gone\ndata: {}\n\n")
        return
      end
      st = st or { size = 0 } -- a run just made: its log comes with its first event
      if st.size ~= offset then
        local now_first = first_line(dir)
        if st.size < offset or (first and now_first and now_first ~= first) then
          -- the run was started afresh: its new log from the top
          offset, first, now_first = 0, nil, first_line(dir)
          if not stream:write("event: reset\ndata: {}\n\n") then
            return
          end
        end
        first = first or now_first
        local events, next_offset, ends = model.events(dir, offset)
        if not events and not po.files.stat(dir) then
          stream:write("event: gone\ndata: {}\n\n")
          return
        end
        for i, ev in ipairs(events or {}) do
          local kind = tostring(ev.kind or "event"):gsub("[^%w_]", "_")
          if not stream:write(format("id: %d\nevent: %s\ndata: %s\n\n", ends[i], kind,
              po.json.encode(ev, { sort_keys = true }))) then
            return
          end
        end
        offset = events and next_offset or 0
        quiet_since = po.now()
      elseif po.now() - quiet_since >= keepalive then
        if not stream:write(": keep-alive\n\n") then
          return
        end
        quiet_since = po.now()
      end
      po.sleep(poll)
    end
  end
end

return M
