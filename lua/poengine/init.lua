--- poengine: the Lua API (`po` in scripts, or `require "poengine"`).
---
--- Fields load on first use so that start-up stays cheap: `po.async` loads
--- the scheduler the first time a script touches it.
local core = require "poengine_core"

local po = {
  version = core.version,
  now = core.now,
  time = core.time,
  json = core.json,
  executable = core.executable,
  isatty = core.isatty,
  store = core.store,
  semantic = core.semantic,
  write_file = core.write_file,
}

-- name -> module whose field of the same name it is
local lazy_functions = {
  async = "poengine.future",
  sleep = "poengine.future",
  all = "poengine.future",
  any = "poengine.future",
  after = "poengine.future",
  future = "poengine.future",
  is_future = "poengine.future",
  run = "poengine.proc",
  run_sync = "poengine.proc",
  cpus = "poengine.proc",
}

-- name -> module that is the field
local lazy_modules = {
  cli = "poengine.cli",
  dashboard = "poengine.dashboard",
  metrics = "poengine.metrics",
  profile = "poengine.profile",
  cache = "poengine.cache",
  pool = "poengine.pool",
  files = "poengine.files",
  batch = "poengine.files", -- deprecated alias of po.files (its old name); to go in the next release
  validate = "poengine.validate",
  optimizer = "poengine.optimizer",
  http = "poengine.http",
  llm = "poengine.llm",
  redis = "poengine.redis",
  executor = "poengine.executor",
}

return setmetatable(po, {
  __index = function(t, name)
    local value
    local from = lazy_functions[name]
    if from then
      value = require(from)[name]
    elseif lazy_modules[name] then
      value = require(lazy_modules[name])
    else
      return nil
    end
    rawset(t, name, value)
    return value
  end,
})
