--- Test helper: an optimizer run's event log (events.jsonl), decoded.
---   require("tests.tools.events")(path [, kind])
--- returns its records, or only those of one kind ("candidate", "timing",
--- "final", ...).
local po = require "poengine"

return function(path, kind)
  local out = {}
  for line in io.lines(path) do
    local e = assert(po.json.decode(line))
    if not kind or e.kind == kind then
      out[#out + 1] = e
    end
  end
  return out
end
