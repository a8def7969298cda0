--- `poengine runs`: the optimizer runs under HOME/runs listed, shown,
--- compared (and their bests timed against each other), removed and
--- exported (poengine.runs).
local M = {
  summary = "list, show, compare, remove, export and pull optimizer runs (runs list|show|compare|rm|export|pull)",
}

local USAGE = [[
usage: poengine runs list [--json] [--home DIR]
       poengine runs show ID [--home DIR]
       poengine runs compare A B [--time --task FILE] [--home DIR]
       poengine runs rm ID [--force] [--home DIR]
       poengine runs export ID --format json|csv [-o FILE] [--home DIR]
       poengine runs pull URL [--stream NAME] [--home DIR]
  --home DIR         the runs are DIR/runs/ID (default: $POENGINE_HOME, else
                     $XDG_CACHE_HOME/poengine, else ~/.cache/poengine)
  --json             list: the runs as a JSON array
  --time             compare: also time the two runs' bests against each other
                     (sandboxes of the task's workdir, interleaved, by the
                     optimizer's rule); needs --task
  --task FILE        compare --time: the task file the runs optimized, whose
                     validators and objective are used (a run does not record it)
  --force            rm: remove the run even while its process is running
  --format FORMAT    export: json (the run as a document) or csv (one row per
                     candidate)
  -o, --output FILE  export: write to FILE instead of standard output
  --stream NAME      pull: only this stream (default: every poengine:run:*
                     stream of the Redis server at URL)
exit status: 0 done, 1 failed (the reason on standard error), 2 usage
]]

-- What each command takes: its positional arguments' names and its options
-- (true: a flag, "value": takes a value).
local COMMANDS = {
  list = { args = {}, options = { json = true } },
  show = { args = { "ID" }, options = {} },
  compare = { args = { "A", "B" }, options = { time = true, task = "value" } },
  rm = { args = { "ID" }, options = { force = true } },
  export = { args = { "ID" }, options = { format = "value", output = "value" } },
  pull = { args = { "URL" }, options = { stream = "value" } },
}

local WIDTH = 1000 -- tables are never cut: a wide one wraps rather than loses text

--- Parses the arguments: { command, args = {...}, home, json, time, task,
--- force, format, output, help }, or nil and a message naming the argument.
---@param args string[]
---@return table|nil opts, string? err
function M.parse(args)
  local command = args[1]
  if command == "-h" or command == "--help" then
    return { help = true }
  elseif not command then
    return nil, "a command is needed (list, show, compare, rm, export, pull)"
  end
  local spec = COMMANDS[command]
  if not spec then
    return nil, "unknown command '" .. command .. "' (list, show, compare, rm, export, pull)"
  end
  local opts = { command = command, args = {} }
  local i = 2
  while i <= #args do
    local a = args[i]
    local name, value = a:match("^%-%-([%w-]+)=(.*)$")
    name = name or a:match("^%-%-([%w-]+)$")
    if a == "-o" then
      name = "output"
    elseif a == "-h" then
      name = "help"
    end
    if name == "help" then
      opts.help = true
    elseif name then
      local kind = name == "home" and "value" or spec.options[name]
      if not kind then
        return nil, "unknown option '" .. a .. "' for 'runs " .. command .. "'"
      elseif kind == "value" then
        if value == nil then
          i = i + 1
          value = args[i]
        end
        if value == nil or value == "" then
          return nil, "option --" .. name .. " needs a value"
        end
        opts[name] = value
      elseif value ~= nil then
        return nil, "option --" .. name .. " takes no value"
      else
        opts[name] = true
      end
    elseif a:sub(1, 1) == "-" and a ~= "-" then
      return nil, "unknown option '" .. a .. "' for 'runs " .. command .. "'"
    elseif #opts.args >= #spec.args then
      return nil, "unexpected argument '" .. a .. "' for 'runs " .. command .. "'"
    else
      opts.args[#opts.args + 1] = a
    end
    i = i + 1
  end
  if opts.help then
    return opts
  end
  if #opts.args < #spec.args then
    return nil, ("'runs %s' needs %s"):format(command, table.concat(spec.args, " and "))
  end
  local runs = require "poengine.runs"
  for _, id in ipairs(command == "pull" and {} or opts.args) do
    local ok, err = runs.check_id(id)
    if not ok then
      return nil, err
    end
  end
  if command == "export" and opts.format ~= "json" and opts.format ~= "csv" then
    return nil, opts.format and ("--format must be json or csv, got '" .. opts.format .. "'")
      or "'runs export' needs --format json or --format csv"
  end
  if opts.time and not opts.task then
    return nil, "'runs compare --time' needs --task FILE: the task file the runs optimized, whose validators "
      .. "and objective time the two bests (a run does not record its task file)"
  elseif opts.task and not opts.time then
    return nil, "--task goes with --time"
  end
  return opts
end

local function fail(message)
  io.stderr:write("poengine runs: ", tostring(message), "\n")
  return 1
end

-- The run named id, or nil after saying why (with the runs there when
-- there is no such run).
local function get(runs, home, id)
  local m, err, code = runs.get(home, id)
  if m then
    return m
  end
  if code == "ENOENT" then
    local ids = {}
    for _, s in ipairs(runs.list(home) or {}) do
      ids[#ids + 1] = s.id
    end
    err = err .. " (runs there: " .. (#ids > 0 and table.concat(ids, ", ") or "none") .. ")"
  end
  fail(err)
  return nil
end

local commands = {}

function commands.list(runs, home, opts)
  local list, err = runs.list(home)
  if not list then
    return fail(err)
  end
  if opts.json then
    local po = require "poengine"
    local export = require "poengine.runs.export"
    local docs = po.json.array()
    for i, s in ipairs(list) do
      docs[i] = export.document(s)
    end
    io.stdout:write(po.json.encode(docs, { sort_keys = true, indent = true }), "\n")
  else
    io.stdout:write(require("poengine.runs.text").list(list, WIDTH))
  end
  return 0
end

function commands.show(runs, home, opts)
  local m = get(runs, home, opts.args[1])
  if not m then
    return 1
  end
  io.stdout:write(require("poengine.runs.text").show(m, WIDTH))
  return 0
end

function commands.compare(runs, home, opts)
  local a = get(runs, home, opts.args[1])
  local b = a and get(runs, home, opts.args[2])
  if not b then
    return 1
  end
  local text = require "poengine.runs.text"
  io.stdout:write(text.compare(a, b, WIDTH))
  if opts.time then
    io.stdout:flush()
    io.stderr:write(("poengine runs: timing %s's best beside %s's with %s ...\n"):format(a.id, b.id, opts.task))
    local r, err = require("poengine.runs.versus").time(opts.task, a, b)
    if not r then
      return fail(err)
    end
    io.stdout:write("\n", text.versus(r, r.direction))
  end
  return 0
end

function commands.rm(runs, home, opts)
  local id = opts.args[1]
  local ok, err, code = runs.remove(home, id, { force = opts.force })
  if not ok then
    return fail(err .. (code == "EBUSY" and " (--force)" or ""))
  end
  io.stdout:write("removed run ", id, "\n")
  return 0
end

function commands.export(runs, home, opts)
  local m = get(runs, home, opts.args[1])
  if not m then
    return 1
  end
  local text = runs.export(m, opts.format)
  if not opts.output then
    io.stdout:write(text)
    return 0
  end
  local ok, err = require("poengine").write_file(opts.output, text)
  if not ok then
    return fail(err)
  end
  return 0
end

-- Mirrors the runs published to a Redis stream into the home (poengine.runs.mirror).
function commands.pull(_, home, opts)
  local ok, mirror = pcall(require("poengine.runs.mirror").new, { redis = opts.args[1], home = home,
    streams = opts.stream and { opts.stream } or nil })
  if not ok then
    return fail(mirror)
  end
  local n, err = mirror:pull()
  local st = mirror:stats()
  mirror:close()
  if not n then
    return fail(err)
  end
  local ids = {}
  for _, id in pairs(st.streams) do
    if id then
      ids[#ids + 1] = id
    end
  end
  table.sort(ids)
  io.stdout:write(("pulled %d events into %d runs%s\n"):format(n, #ids, #ids > 0 and (": " .. table.concat(ids, ", ")) or ""))
  return 0
end

---@param args string[]
function M.main(args)
  local opts, err = M.parse(args)
  if not opts then
    io.stderr:write("poengine runs: ", err, "\n", USAGE)
    return 2
  end
  if opts.help then
    io.stdout:write(USAGE)
    return 0
  end
  local runs = require "poengine.runs"
  local home, herr = opts.home, nil
  if not home then
    home, herr = runs.home()
    if not home then
      return fail(herr)
    end
  end
  return commands[opts.command](runs, home, opts)
end

return M
