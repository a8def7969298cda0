--- `poengine dashboard`: the dashboard of a run's (or a store's) recorded
--- cycles, in any format, once or redrawn every few seconds while a run goes
--- on. Optimizer runs keep their store in <home>/runs/<id>/store; with no
--- run named, the most recently written store is shown.
local M = {
  summary = "show the dashboard of a store's cycles (text, markdown, json, csv, html, prometheus)",
}

local USAGE = [[
usage: poengine dashboard [RUN_ID | --run RUN_ID | --store DIR] [--format FORMAT] [-o FILE]
                          [--sections a,b] [--watch SECONDS] [--title TEXT] [--recent N]
  RUN_ID, --run ID   an optimizer run: its store is HOME/runs/ID/store, where
                     HOME is $POENGINE_HOME, else $XDG_CACHE_HOME/poengine,
                     else ~/.cache/poengine (a run directory's path works too)
  --store DIR        the store to read, any store a flow wrote
                     (default: the most recently written of HOME/runs/*/store
                     and HOME itself)
  --format FORMAT    %s
                     (default: from the extension of FILE, else text)
  -o, --output FILE  write to FILE (replaced whole) instead of standard output
  --sections a,b     only these sections, in this order: %s
                     (default: for a run with an event log its judging
                     sections first — best, candidates, evolution,
                     outcomes — then the rest; profile only when asked,
                     since only the process that ran the flow fills it)
  --watch SECONDS    redraw every SECONDS until Ctrl-C: on a terminal the
                     text dashboard is redrawn in place; with -o the file is
                     rewritten (an html page then reloads itself)
  --title TEXT       the dashboard's title
  --recent N         cycles in the recent section (default 10)
]]

-- A runtime failure's message without the library's own prefix.
local function message(err)
  return (tostring(err):gsub("^po%.dashboard[%w_.:]*: ", ""))
end

local function usage(dashboard)
  return USAGE:format(table.concat(dashboard.formats(), ", "), table.concat(dashboard.sections(), ", "))
end

--- The store directory used when --store is not given (the engine's
--- default: $POENGINE_HOME, else $XDG_CACHE_HOME/poengine, else
--- ~/.cache/poengine).
function M.default_store()
  return assert(require("poengine").store.default_dir())
end

local VALUE_OPTIONS = { store = true, run = true, format = true, output = true, sections = true, watch = true,
  title = true, recent = true }

--- Parses the arguments: returns a table of options, or nil and a message.
---@param args string[]
---@return table|nil opts, string? err
function M.parse(args)
  local opts = {}
  local i = 1
  while i <= #args do
    local a = args[i]
    local name, value = a:match("^%-%-([%w-]+)=(.*)$")
    if not name then
      name = a:match("^%-%-([%w-]+)$")
    end
    if a == "-o" then
      name = "output"
    elseif a == "-h" or a == "--help" then
      name = "help"
    end
    if not name and not a:match("^%-") and not opts.run then
      name, value = "run", a
    elseif not name then
      return nil, "unexpected argument '" .. a .. "'"
    end
    if name == "help" then
      opts.help = true
    elseif VALUE_OPTIONS[name] then
      if value == nil then
        i = i + 1
        value = args[i]
        if value == nil then
          return nil, "option --" .. name .. " needs a value"
        end
      end
      opts[name] = value
    else
      return nil, "unknown option '" .. a .. "'"
    end
    i = i + 1
  end
  if opts.run and opts.store then
    return nil, "give a run or --store, not both"
  end
  if opts.watch then
    local s = tonumber(opts.watch)
    if not s or s <= 0 or s ~= s then
      return nil, "--watch needs a positive number of seconds, got '" .. opts.watch .. "'"
    end
    opts.watch = s
  end
  if opts.recent then
    local n = tonumber(opts.recent)
    if not n or n < 0 or n ~= math.floor(n) then
      return nil, "--recent needs a whole number, got '" .. opts.recent .. "'"
    end
    opts.recent = n
  end
  if opts.sections then
    local list = {}
    for name in opts.sections:gmatch("[^,%s]+") do
      list[#list + 1] = name
    end
    opts.sections = list
  end
  return opts
end

-- The stores under home that hold data, newest first: { { path =, run =,
-- mtime = } }, run being nil for the home store itself.
local function stores_by_age(po, home)
  local r = po.run_sync { argv = { "find", home, "-maxdepth", "4", "-name", "data.mdb", "-printf", "%T@ %p\n" } }
  local list = {}
  for line in (r and r.stdout or ""):gmatch("[^\n]+") do
    local t, file = line:match("^(%S+) (.*)/data%.mdb$")
    if file == home then
      list[#list + 1] = { path = home, mtime = tonumber(t) }
    else
      local id = file and file:sub(#home + 1):match("^/runs/([^/]+)/store$")
      if id then
        list[#list + 1] = { path = file, run = id, mtime = tonumber(t) }
      end
    end
  end
  table.sort(list, function(a, b) return a.mtime > b.mtime end)
  return list
end

local function is_dir(po, path)
  local r = po.run_sync { argv = { "test", "-d", path } }
  return r and r.status == "ok"
end

--- Which store to show: the --store given, the run named, else the most
--- recently written store. Returns the path and a note for stderr (or nil),
--- or nil and a message that says where it looked.
function M.choose_store(po, opts)
  if opts.store then
    return opts.store
  end
  local home = M.default_store()
  if opts.run then
    if opts.run:find("/", 1, true) and is_dir(po, opts.run) then
      local store = opts.run .. "/store"
      return is_dir(po, store) and store or opts.run
    end
    local store = home .. "/runs/" .. opts.run .. "/store"
    if is_dir(po, store) then
      return store
    elseif require("poengine.dashboard.source").run_dir(home .. "/runs/" .. opts.run) then
      return home .. "/runs/" .. opts.run -- a run that has written events but no cycle yet
    end
    local known = {}
    for _, s in ipairs(stores_by_age(po, home)) do
      if s.run then
        known[#known + 1] = s.run
      end
    end
    return nil, ("no run '%s': looked for %s (runs there: %s)"):format(opts.run, store,
      #known > 0 and table.concat(known, ", ") or "none")
  end
  local list = stores_by_age(po, home)
  if #list == 0 then
    return nil, ("no store found: looked for runs in %s/runs/*/store and for a store in %s"
      .. " (run an optimizer or a flow first, or name one with --store DIR)"):format(home, home)
  end
  local newest = list[1]
  if #list == 1 then
    return newest.path
  end
  return newest.path, newest.run and ("run '%s', the most recent of %d stores in %s"):format(newest.run, #list, home)
    or ("the store in %s, the most recent of %d"):format(home, #list)
end

local ffi = require "ffi"
pcall(ffi.cdef, [[
  int isatty(int fd);
  int ioctl(int fd, unsigned long request, ...);
  struct po_winsize { unsigned short ws_row, ws_col, ws_xpixel, ws_ypixel; };
]])

local function isatty(fd)
  return ffi.C.isatty(fd) == 1
end

-- The terminal's width in columns, or nil.
local function columns(fd)
  local ws = ffi.new("struct po_winsize")
  if ffi.C.ioctl(fd, 0x5413 --[[TIOCGWINSZ]], ws) == 0 and ws.ws_col > 0 then
    return ws.ws_col
  end
  return nil
end

---@param args string[]
function M.main(args)
  local po = require "poengine"
  local dashboard = po.dashboard
  local opts, err = M.parse(args)
  if not opts then
    io.stderr:write("poengine dashboard: ", err, "\n", usage(dashboard))
    return 2
  end
  if opts.help then
    io.stdout:write(usage(dashboard))
    return 0
  end
  local format = opts.format or (opts.output and dashboard.format_for(opts.output)) or "text"
  local known = {}
  for _, f in ipairs(dashboard.formats()) do
    known[f] = true
  end
  if not known[format] then
    io.stderr:write("poengine dashboard: unknown format '", format, "' (known: ",
      table.concat(dashboard.formats(), ", "), ")\n")
    return 2
  end
  for _, name in ipairs(opts.sections or {}) do
    local found = false
    for _, s in ipairs(dashboard.sections()) do
      found = found or s == name
    end
    if not found then
      io.stderr:write("poengine dashboard: unknown section '", name, "' (known: ",
        table.concat(dashboard.sections(), ", "), ")\n")
      return 2
    end
  end
  local tty = isatty(1)
  if opts.watch and not opts.output and format ~= "text" then
    io.stderr:write("poengine dashboard: --watch on standard output draws the text format; use -o FILE for "
      .. format .. "\n")
    return 2
  end
  local width = 80
  if opts.watch and tty and not opts.output then
    width = math.max(40, columns(1) or 80)
  end
  -- Without --sections, the dashboard's own default: a run's judging
  -- sections first when it has an event log, and no profile (a store's
  -- profile is another process's).
  local sections = opts.sections
  local store, note = M.choose_store(po, opts)
  if not store then
    io.stderr:write("poengine dashboard: ", note, "\n")
    return 1
  end
  if note then
    io.stderr:write("poengine dashboard: ", note, "\n")
  end
  local d = dashboard.new(store, {
    sections = sections,
    title = opts.title,
    recent = opts.recent,
    width = width,
    refresh = opts.watch and opts.output and format == "html" and math.max(1, math.ceil(opts.watch)) or nil,
  })

  local function once()
    if opts.output then
      return d:write(opts.output, format)
    end
    local text, rerr, code = d:render(format)
    if not text then
      return nil, rerr, code
    end
    if opts.watch and tty then
      -- Home, the frame with each line cleared to its end, then clear below:
      -- redrawn in place without flicker. Ctrl-C leaves the last frame.
      io.stdout:write("\27[H", (text:gsub("\n", "\27[K\n")), "\27[J")
    elseif opts.watch then
      io.stdout:write(text, "\n")
    else
      io.stdout:write(text)
    end
    io.stdout:flush()
    return true
  end

  if not opts.watch then
    local ok, rerr = once()
    if not ok then
      io.stderr:write("poengine dashboard: ", message(rerr), "\n")
      return 1
    end
    return 0
  end
  if tty and not opts.output then
    io.stdout:write("\27[H\27[2J")
  end
  while true do
    local ok, rerr = once()
    if not ok then
      -- A store that is not there yet (a run about to start) is waited for.
      if tty and not opts.output then
        io.stdout:write("\27[H\27[2J")
      end
      io.stderr:write("poengine dashboard: ", message(rerr), " (retrying every ", opts.watch, " s)\n")
    end
    po.sleep(opts.watch)
  end
end

return M
