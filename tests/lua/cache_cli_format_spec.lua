-- poengine cache's text: the stats of namespaces with semantic vectors and
-- entries hours or minutes old, a store without entries; and the option
-- parser's help after a command.
local cache_cli = require "poengine.cli.cache"

local function namespace(name, over)
  local ns = { name = name, entries = 2, bytes = 300, expired = 0, vectors = 0 }
  for k, v in pairs(over or {}) do
    ns[k] = v
  end
  return ns
end

describe("poengine cache stats as text", function()
  it("counts semantic vectors and writes ages in hours and minutes", function()
    local a = namespace("a", { vectors = 2, oldest_age = 2 * 3600 + 5 * 60 + 9, newest_age = 7 * 60 + 3,
      oldest = "2026-01-01T00:00:00.000Z", newest = "2026-01-01T02:00:00.000Z" })
    local text = cache_cli.format_stats { path = "/s", namespaces = { a } }
    assert.are.equal("cache store /s\n"
      .. "namespace a: 2 entries (300 bytes), 0 expired, 2 semantic vectors\n"
      .. "  oldest written 2h 5m ago (2026-01-01T00:00:00.000Z), newest 7m 3s ago (2026-01-01T02:00:00.000Z)\n", text)
  end)

  it("says a store without namespaces has no entries", function()
    assert.are.equal("cache store /s\nno entries\n", cache_cli.format_stats { path = "/s", namespaces = {} })
  end)
end)

describe("poengine cache's arguments", function()
  it("take --help after a command, whatever else is given", function()
    local opts = assert(cache_cli.parse { "prune", "--help", "--older-than", "3d" })
    assert.is_true(opts.help)
    assert.are.equal("prune", opts.command)
  end)
end)
