--- The one check of option and field names the Lua modules share (the C
--- side's is po_check_options): a misspelt name or a value of the wrong
--- type raises, naming the function and the key.
local pairs, type, tostring, error = pairs, type, tostring, error

local M = {}

--- Raises when table t holds a key that `allowed` does not name, or a
--- value whose type is not allowed[k] when that is a type name (`true`
--- allows any value):
---   "<fname>: unknown <noun> '<prefix><key>'"
---   "<fname>: <prefix><key> must be a <type>, got <type>"
--- noun defaults to "option", prefix (e.g. "semantic.") to "". level is
--- error()'s, as the function calling check would pass it. Returns t.
---@param fname string
---@param t table
---@param allowed table<string, string|true>
---@param level integer
---@param noun? string
---@param prefix? string
function M.check(fname, t, allowed, level, noun, prefix)
  for k, v in pairs(t) do
    local want = allowed[k]
    if not want then
      error(fname .. ": unknown " .. (noun or "option") .. " '" .. (prefix or "") .. tostring(k) .. "'", level + 1)
    elseif want ~= true and type(v) ~= want then
      error(fname .. ": " .. (prefix or "") .. k .. " must be a " .. want .. ", got " .. type(v), level + 1)
    end
  end
  return t
end

return M
