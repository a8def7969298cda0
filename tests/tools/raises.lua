--- Test helper for specs: raises(pattern, fn, ...) calls fn(...) and checks
--- that it raised an error whose message contains pattern (plain text).
local assert = require "luassert"

return function(pattern, fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok)
  assert.is_string(err)
  if not err:find(pattern, 1, true) then
    error(("expected error containing %q, got %q"):format(pattern, err), 2)
  end
end
