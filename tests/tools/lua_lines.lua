--- The executable lines of Lua files, for scripts/coverage: the lines that
--- hold a bytecode instruction, from LuaJIT's own line info (jit.util), less
--- the implicit return at a function's "end" that follows an explicit one.
---   luajit tests/tools/lua_lines.lua FILE...   prints "FILE<TAB>LINE" lines
local jutil = require "jit.util"
local vmdef = require "jit.vmdef"

local function opname(ins)
  local op = ins % 256
  return vmdef.bcnames:sub(op * 6 + 1, op * 6 + 6):gsub("%s+$", "")
end

local function walk(fn, lines)
  local info = jutil.funcinfo(fn)
  local last = info.bytecodes - 1
  for pc = 1, last do
    local line = jutil.funcinfo(fn, pc).currentline
    local ins = jutil.funcbc(fn, pc)
    local implicit_end = pc == last and line == info.lastlinedefined and opname(ins) == "RET0"
      and pc > 1 and opname(jutil.funcbc(fn, pc - 1)):match("^RET")
    if line and line > 0 and not implicit_end then
      lines[line] = true
    end
  end
  if info.children then
    for k = -1, -1e6, -1 do
      local c = jutil.funck(fn, k)
      if c == nil then break end
      if type(c) == "proto" then walk(c, lines) end
    end
  end
end

for _, path in ipairs(arg) do
  local fn = assert(loadfile(path))
  local lines = {}
  walk(fn, lines)
  for line in pairs(lines) do
    io.write(path, "\t", line, "\n")
  end
end
