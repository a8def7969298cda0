--- `poengine test [busted options] [specs...]`: runs busted specs inside
--- poengine, so specs see the same `po` and the same binary as flows do.
local M = {
  summary = "run busted specs inside poengine (busted options and paths follow)",
}

---@param args string[]
function M.main(args)
  local ok, runner = pcall(require, "busted.runner")
  if not ok then
    io.stderr:write("poengine test: busted is not installed (Debian: apt-get install lua-busted)\n")
    return 2
  end
  -- busted reads its command line from the global `arg`.
  local busted_arg = { [0] = "poengine test" }
  for i, a in ipairs(args) do
    busted_arg[i] = a
  end
  _G.arg = busted_arg
  runner({ standalone = false })
  return 0
end

return M
