--- `poengine store check [DIR] [--repair]`: checks a store and, asked to,
--- repairs a damaged one (po.store.check, po.store.repair).
local M = {
  summary = "check a store, or repair a damaged one (store check [DIR] [--repair])",
}

local USAGE = [[
usage: poengine store check [DIR] [--repair]
  DIR        the store (default: $POENGINE_HOME, else $XDG_CACHE_HOME/poengine,
             else ~/.cache/poengine)
  --repair   copy what is readable into a new, compacted data file and put it
             in place; the old file is kept as data.mdb.before-repair-<time>.
             No process may have the store open meanwhile.
exit status: 0 sound (or repaired), 1 damaged or failed, 2 usage
]]

--- Parses the arguments: returns { dir, repair }, or nil and a message.
---@param args string[]
---@return table|nil opts, string? err
function M.parse(args)
  if args[1] == "-h" or args[1] == "--help" then
    return { help = true }
  elseif args[1] ~= "check" then
    return nil, args[1] and ("unknown command '" .. args[1] .. "'") or "a command is needed"
  end
  local opts = { repair = false }
  for i = 2, #args do
    local a = args[i]
    if a == "--repair" then
      opts.repair = true
    elseif a == "-h" or a == "--help" then
      opts.help = true
    elseif a:sub(1, 1) == "-" or opts.dir then
      return nil, "unexpected argument '" .. a .. "'"
    else
      opts.dir = a
    end
  end
  return opts
end

local function databases(report)
  local names = {}
  for name in pairs(report.databases) do
    names[#names + 1] = name
  end
  table.sort(names)
  local lines = {}
  for _, name in ipairs(names) do
    lines[#lines + 1] = ("  %-20s %d records"):format(name, report.databases[name])
  end
  return lines
end

--- The report as lines of text.
---@param dir string
---@param report table  from po.store.check or po.store.repair
---@return string
function M.format(dir, report)
  local out = {}
  local verdict = report.ok and "sound" or ("damaged: " .. #report.problems .. " problem(s)")
  out[#out + 1] = ("store %s (%d bytes): %s"):format(dir, report.file_size, verdict)
  for _, p in ipairs(report.problems) do
    out[#out + 1] = "  problem: " .. p
  end
  if report.method then
    out[#out + 1] = "repaired: " .. report.method .. "; the old data file is now " .. report.moved_to
    out[#out + 1] = next(report.databases) and "the new store holds:" or "the new store is empty"
  end
  for _, line in ipairs(databases(report)) do
    out[#out + 1] = line
  end
  if not report.ok and not report.method then
    out[#out + 1] = "to copy out what is readable: poengine store check " .. dir .. " --repair"
  end
  return table.concat(out, "\n") .. "\n"
end

function M.main(args)
  local opts, err = M.parse(args)
  if not opts or opts.help then
    io.stderr:write(err and ("poengine store: " .. err .. "\n") or "", USAGE)
    return opts and 0 or 2
  end
  local store = require("poengine").store
  local dir = opts.dir or assert(store.default_dir())
  local report, msg = (opts.repair and store.repair or store.check)(dir)
  if not report then
    io.stderr:write("poengine store: ", (tostring(msg):gsub("^po%.store%.%w+: ", "")), "\n")
    return 1
  end
  io.stdout:write(M.format(dir, report))
  return (report.ok or opts.repair) and 0 or 1
end

return M
