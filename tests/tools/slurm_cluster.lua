--- Test helper: the one-node Slurm (and Redis) of scripts/cluster. Under
--- scripts/test the cluster is already up and its env exported
--- (POENGINE_CLUSTER_DIR, SLURM_CONF, POENGINE_SHARED_DIR); a spec run alone
--- brings up its own in a temporary directory and must take it down again
--- (M.down, in a finally or teardown). Never a skip: no cluster, an error.
local po = require "poengine"

local M = {}

local function source_dir()
  return os.getenv("POENGINE_SOURCE_DIR") or "."
end

local function read_env(path)
  local env = {}
  for line in assert(io.open(path)):lines() do
    local k, v = line:match("^([%w_]+)=(.*)$")
    if k then
      env[k] = v
    end
  end
  return env
end

--- The cluster's env: { SLURM_CONF =, POENGINE_SHARED_DIR =, ..., own = true
--- when this call started it }.
function M.up()
  local dir = os.getenv("POENGINE_CLUSTER_DIR")
  if dir and os.getenv("SLURM_CONF") then
    local env = read_env(dir .. "/env")
    env.own = false
    return env
  end
  local made = assert(po.run_sync { argv = { "mktemp", "-d", "/tmp/poengine-cluster.XXXXXX" } })
  dir = made.stdout:gsub("%s+$", "")
  local r = po.run_sync { argv = { source_dir() .. "/scripts/cluster", "up", "--dir", dir }, timeout = 120 }
  if r.status ~= "ok" then
    error("scripts/cluster up failed (" .. tostring(r.code or r.signal or r.error) .. "): " .. r.stderr)
  end
  local env = read_env(dir .. "/env")
  env.own = true
  return env
end

--- Takes down a cluster that M.up started (one from scripts/test stays).
function M.down(env)
  if env and env.own then
    local r = po.run_sync { argv = { source_dir() .. "/scripts/cluster", "down", "--dir", env.POENGINE_CLUSTER_DIR },
      timeout = 120 }
    assert(r.status == "ok", "scripts/cluster down failed: " .. r.stderr)
  end
end

--- Runs a Slurm client command (squeue, scontrol ...) against the cluster.
function M.client(env, argv)
  return po.run_sync { argv = argv, env = { SLURM_CONF = env.SLURM_CONF }, timeout = 60 }
end

return M
