--- Subcommands: `poengine NAME args...` runs the module poengine.cli.NAME.
---
--- A subcommand module returns a table with `summary` (one line for
--- `poengine --help`) and `main(args)`, which returns the exit status (a
--- number; true or nil mean 0, false means 1). New features add subcommands
--- by adding modules; main.c never changes for them.
local core = require "poengine_core"

local M = {}

local function module_name(name)
  return "poengine.cli." .. name
end

--- Finds the loader of subcommand `name` without running it; nil if absent.
---@param name string
function M.find(name)
  local modname = module_name(name)
  if package.loaded[modname] then
    return true
  end
  for _, searcher in ipairs(package.loaders) do
    local loader = searcher(modname)
    if type(loader) == "function" then
      return loader
    end
  end
  return nil
end

local function exit_status(rc)
  if rc == nil or rc == true then
    return 0
  elseif rc == false then
    return 1
  end
  return tonumber(rc) or 1
end

--- Runs subcommand `name` with the argument list `args`; returns its exit
--- status, or nil when no such subcommand exists.
---@param name string
---@param args string[]
function M.run(name, args)
  if not M.find(name) then
    return nil
  end
  local cmd = require(module_name(name))
  if type(cmd) ~= "table" or type(cmd.main) ~= "function" then
    error("poengine: subcommand module " .. module_name(name) .. " does not return a table with main(args)")
  end
  return exit_status(cmd.main(args))
end

--- Names of the available subcommands, sorted: those compiled in and those
--- found in the POENGINE_LUA_PATH directories.
function M.list()
  local seen, names = {}, {}
  local function add(name)
    if not seen[name] and name ~= "init" then
      seen[name] = true
      names[#names + 1] = name
    end
  end
  for _, modname in ipairs(core.embedded_modules()) do
    local name = modname:match("^poengine%.cli%.([%w_-]+)$")
    if name then
      add(name)
    end
  end
  for dir in core.lua_path():gmatch("[^;]+") do
    local ls = io.popen('ls "' .. dir:gsub('"', '\\"') .. '/poengine/cli" 2>/dev/null')
    if ls then
      for file in ls:lines() do
        local name = file:match("^([%w_-]+)%.lua$")
        if name then
          add(name)
        end
      end
      ls:close()
    end
  end
  table.sort(names)
  return names
end

--- Prints the subcommands with their summaries (for `poengine --help`).
function M.help()
  local names = M.list()
  if #names == 0 then
    return
  end
  io.write("Subcommands:\n")
  for _, name in ipairs(names) do
    local ok, cmd = pcall(require, module_name(name))
    local summary = ok and type(cmd) == "table" and cmd.summary or ""
    io.write(string.format("  %-14s %s\n", name, summary))
  end
end

return M
