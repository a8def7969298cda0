--- Test helper: assertions the specs share.
local M = {}

--- Calls fn(...) and requires it to raise an error whose text contains
--- pattern (a plain substring).
function M.raises(pattern, fn, ...)
  local ok, err = pcall(fn, ...)
  assert(not ok, "expected an error, got none")
  err = tostring(err)
  if not err:find(pattern, 1, true) then
    error(("expected an error containing %q, got %q"):format(pattern, err), 2)
  end
end

return M
