--- Test helper: small real optimizer tasks for the run catalogue's specs.
--- A task times bench_spin with the rounds in rounds.txt (its CPU seconds:
--- 2000 rounds are half the work of the baseline's 4000), proposes the
--- points it is given in one cycle, and a "check" validator rejects a
--- rounds.txt of 1. With `gate`, its proposer first writes a line to the
--- FIFO gate.ready and then waits for one on gate.release: a test sees the
--- run in progress, and lets it go on, without sleeping.
local proc = require "tests.tools.proc"

local M = {}

local build = os.getenv("POENGINE_BUILD_DIR") or "build"

M.spin = build .. "/tests/bench_spin"

local TEMPLATE = [==[
local spin, gate, reject = %q, %s, %q
return {
  id = %q,
  workdir = %q,
  target_files = { "rounds.txt" },
  baseline_params = { rounds = 4000 },
  apply_params = function(params, dir)
    local f = assert(io.open(dir .. "/rounds.txt", "w"))
    f:write(params.rounds, "\n")
    f:close()
  end,
  write_params = function(params) return { ["rounds.txt"] = params.rounds .. "\n" } end,
  method = function()
    if gate then
      local ready = assert(io.open(gate.ready, "w"))
      ready:write("ready\n")
      ready:close()
      local release = assert(io.open(gate.release, "r"))
      release:read("*a")
      release:close()
    end
    local list = {}
    for i, rounds in ipairs { %s } do
      list[i] = { params = { rounds = rounds } }
    end
    return list
  end,
  validators = { { name = "check",
    run = { "sh", "-c", "r=$(cat rounds.txt); test \"$r\" != 1 && test \"$r\" != " .. reject } } },
  objective = {
    validator = po.validate.benchmark { name = "spin", argv = { "sh", "-c", spin .. " $(cat rounds.txt)" },
      metric = function(r) return tonumber(r.stdout) end },
    direction = "min", alpha = 0.01, min_effect = 0.05,
  },
  budget = { cycles = 1 },
}
]==]

--- Writes a task file under `dir` (with its workdir, dir/work-ID) and
--- returns its path. opts = { id =, points = { rounds, ... }, gate = {
--- ready =, release = } FIFO paths, reject = rounds the check also
--- rejects }.
---@param dir string
---@param opts table
---@return string path
function M.task_file(dir, opts)
  local work = dir .. "/work-" .. opts.id
  assert(os.execute("mkdir -p " .. proc.quote(work)) == 0)
  local f = assert(io.open(work .. "/rounds.txt", "w"))
  f:write("4000\n")
  f:close()
  local gate = opts.gate and ("{ ready = %q, release = %q }"):format(opts.gate.ready, opts.gate.release) or "nil"
  local points = {}
  for i, p in ipairs(opts.points) do
    points[i] = tostring(p)
  end
  local path = dir .. "/" .. opts.id .. ".task.lua"
  f = assert(io.open(path, "w"))
  f:write(TEMPLATE:format(M.spin, gate, tostring(opts.reject or 1), opts.id, work, table.concat(points, ", ")))
  f:close()
  return path
end

--- The two FIFOs of a gate, made under dir.
---@param dir string
---@return { ready: string, release: string }
function M.gate(dir)
  local gate = { ready = dir .. "/ready.fifo", release = dir .. "/release.fifo" }
  assert(os.execute("mkfifo " .. proc.quote(gate.ready) .. " " .. proc.quote(gate.release)) == 0)
  return gate
end

--- Parses CSV text (RFC 4180: quoted fields, doubled quotes, CRLF) into a
--- list of rows, each a list of fields.
---@param text string
---@return string[][]
function M.parse_csv(text)
  local rows, row, field, i, n = {}, {}, {}, 1, #text
  local quoted = false
  while i <= n do
    local c = text:sub(i, i)
    if quoted then
      if c == '"' and text:sub(i + 1, i + 1) == '"' then
        field[#field + 1] = '"'
        i = i + 1
      elseif c == '"' then
        quoted = false
      else
        field[#field + 1] = c
      end
    elseif c == '"' then
      quoted = true
    elseif c == "," then
      row[#row + 1] = table.concat(field)
      field = {}
    elseif c == "\r" and text:sub(i + 1, i + 1) == "\n" then
      row[#row + 1] = table.concat(field)
      rows[#rows + 1] = row
      row, field = {}, {}
      i = i + 1
    else
      field[#field + 1] = c
    end
    i = i + 1
  end
  assert(#row == 0 and #field == 0, "the CSV text does not end in CRLF")
  return rows
end

return M
