--- `poengine cache`: what a cache store holds, and pruning, clearing and
--- reading it (po.cache's contents, prune, clear and get on the store
--- `poengine optimize` keeps its LLM answers in, or any other).
local M = {
  summary = "inspect, prune, clear or read a cache store (cache stats|prune|clear|get)",
}

local USAGE = [[
usage: poengine cache stats [--namespace NS] [--json] [--path DIR]
       poengine cache prune [--older-than AGE] [--max-bytes SIZE] [--dry-run]
                            [--namespace NS] [--json] [--path DIR]
       poengine cache clear [--namespace NS] [--path DIR]
       poengine cache get KEY [--json-key] [--namespace NS] [--path DIR]
  stats            entries and bytes (each namespace's), the oldest and newest
                   entry's age, entries already expired, semantic vectors,
                   and the store's map: its size, the bytes in use, the bytes
                   freed for reuse
  prune            removes expired entries, entries written more than AGE ago
                   (--older-than 90s, 30m, 12h, 7d, 2w), then the oldest ones
                   until the rest hold at most SIZE key + value bytes
                   (--max-bytes 500000, 64K, 500M, 2G: K, M, G are powers of
                   1024); --dry-run only says what would go
  clear            removes every entry (of NS, else of every namespace);
                   it asks nothing and cannot be undone
  get KEY          prints the value stored under the string KEY; with
                   --json-key, KEY is a request as JSON, hashed as
                   po.cache.key hashes the table
  --path DIR       the store (default: HOME/cache, poengine optimize's cache,
                   HOME being $POENGINE_HOME, else $XDG_CACHE_HOME/poengine,
                   else ~/.cache/poengine)
  --namespace NS   one namespace (default: all; for get, the store's only one)
  --json           the figures as JSON
exit status: 0 done, 1 failed (no cache store there, a damaged or read-only
store, no entry under KEY), 2 usage
]]

local COMMANDS = { stats = true, prune = true, clear = true, get = true }
local VALUE_OPTIONS = { path = true, namespace = true, ["older-than"] = true, ["max-bytes"] = true }
local FLAGS = { json = { stats = true, prune = true }, ["dry-run"] = { prune = true }, ["json-key"] = { get = true } }

-- A runtime failure's message without the library's own prefix.
local function message(err)
  return (tostring(err):gsub("^po%.cache[%w_.]*: ", ""):gsub("^cache:%w+: ", ""))
end

local AGE_UNITS = { s = 1, m = 60, h = 3600, d = 86400, w = 604800 }
local SIZE_UNITS = { [""] = 1, K = 1024, M = 1024 ^ 2, G = 1024 ^ 3 }

--- Seconds in an age such as "90s", "30m", "12h", "7d", "2w" (a bare
--- number is seconds); nil if it is not one.
---@param s string
---@return number|nil
function M.parse_age(s)
  local n, unit = s:match("^(%d+%.?%d*)([smhdw]?)$")
  if not n then
    return nil
  end
  return tonumber(n) * AGE_UNITS[unit == "" and "s" or unit]
end

--- Bytes in a size such as "500000", "64K", "500M", "2G" (powers of 1024);
--- nil if it is not one.
---@param s string
---@return number|nil
function M.parse_size(s)
  local n, unit = s:match("^(%d+)([KMG]?)$")
  if not n then
    return nil
  end
  local bytes = tonumber(n) * SIZE_UNITS[unit]
  return bytes <= 2 ^ 53 and bytes or nil
end

--- Parses the arguments: returns the options, or nil and a message naming
--- the argument at fault.
---@param args string[]
---@return table|nil opts, string? err
function M.parse(args)
  local command = args[1]
  if command == "-h" or command == "--help" then
    return { help = true }
  elseif not command then
    return nil, "a command is needed (stats, prune, clear or get)"
  elseif not COMMANDS[command] then
    return nil, "unknown command '" .. command .. "' (stats, prune, clear or get)"
  end
  local opts = { command = command }
  local i = 2
  while i <= #args do
    local a = args[i]
    local name, value = a:match("^%-%-([%w-]+)=(.*)$")
    name = name or a:match("^%-%-([%w-]+)$")
    if a == "-h" or a == "--help" then
      opts.help = true
    elseif name and VALUE_OPTIONS[name] then
      if not value then
        i = i + 1
        value = args[i]
        if value == nil or value:sub(1, 2) == "--" then
          return nil, "--" .. name .. " needs a value"
        end
      end
      opts[name] = value
    elseif name and FLAGS[name] and FLAGS[name][command] and not value then
      opts[name] = true
    elseif a:sub(1, 1) == "-" or command ~= "get" or opts.key then
      return nil, "unexpected argument '" .. a .. "' for " .. command
    else
      opts.key = a
    end
    i = i + 1
  end
  if opts.help then
    return opts
  end
  if opts.path == "" then
    return nil, "--path needs a directory"
  end
  if opts.namespace and (opts.namespace == "" or #opts.namespace > 255) then
    return nil, "--namespace needs a name of 1 to 255 bytes"
  end
  if command ~= "prune" and (opts["older-than"] or opts["max-bytes"]) then
    return nil, "--" .. (opts["older-than"] and "older-than" or "max-bytes") .. " is for prune, not " .. command
  end
  if opts["older-than"] then
    opts.older_than = M.parse_age(opts["older-than"])
    if not opts.older_than then
      return nil, "--older-than needs an age such as 90s, 30m, 12h, 7d or 2w, got '" .. opts["older-than"] .. "'"
    end
  end
  if opts["max-bytes"] then
    opts.max_bytes = M.parse_size(opts["max-bytes"])
    if not opts.max_bytes then
      return nil, "--max-bytes needs a size in bytes, or with K, M or G (powers of 1024), got '"
        .. opts["max-bytes"] .. "'"
    end
  end
  if command == "get" and not opts.key then
    return nil, "get needs a KEY"
  end
  if opts["json-key"] then
    local decoded, err = require("poengine").json.decode(opts.key)
    if type(decoded) ~= "table" then
      return nil, "--json-key needs a JSON object or array as KEY: " .. (decoded == nil and message(err)
        or "got " .. type(decoded))
    end
    opts.key = decoded
  end
  return opts
end

local function fail(err)
  io.stderr:write("poengine cache: ", message(err), "\n")
  return 1
end

-- "12.3 KiB" for a byte count (exact figures are printed beside it).
local function human_bytes(n)
  local units = { "bytes", "KiB", "MiB", "GiB", "TiB" }
  local u = 1
  while n >= 1024 and u < #units do
    n = n / 1024
    u = u + 1
  end
  return u == 1 and ("%d bytes"):format(n) or ("%.1f %s"):format(n, units[u])
end

-- "3d 4h", "12m 5s", "40s" for an age in seconds.
local function human_age(s)
  s = math.max(0, math.floor(s))
  local d, h, m = math.floor(s / 86400), math.floor(s % 86400 / 3600), math.floor(s % 3600 / 60)
  if d > 0 then
    return ("%dd %dh"):format(d, h)
  elseif h > 0 then
    return ("%dh %dm"):format(h, m)
  elseif m > 0 then
    return ("%dm %ds"):format(m, s % 60)
  end
  return ("%ds"):format(s)
end

-- "1 entry", "3 entries (12 bytes)": exact counts, a readable size beside
-- a large one.
local function entries(n, bytes)
  local text = n == 1 and "1 entry" or ("%d entries"):format(n)
  if bytes then
    text = text .. (" (%d bytes%s)"):format(bytes, bytes >= 1024 and ", " .. human_bytes(bytes) or "")
  end
  return text
end

-- Opens namespace ns of the store without creating anything.
local function open(po, path, ns)
  return po.cache.open { path = path, namespace = ns, create = false, ttl = 0 }
end

-- The namespaces the command works on: the one asked for (which must be
-- there), else every one; or nil, message.
local function namespaces(po, opts)
  local names, err = po.cache.namespaces(opts.path)
  if not names then
    return nil, err
  end
  table.sort(names)
  if not opts.namespace then
    return names
  end
  for _, name in ipairs(names) do
    if name == opts.namespace then
      return { name }
    end
  end
  return nil, ("no namespace '%s' in the cache store %s (%s)"):format(opts.namespace, opts.path,
    #names > 0 and "it holds " .. table.concat(names, ", ") or "it holds none")
end

-- Each namespace's contents, and the store's map figures (from any of them).
local function gather(po, opts, names)
  local out = { path = opts.path, namespaces = po.json.array(), entries = 0, bytes = 0, expired = 0, vectors = 0 }
  local now = po.time()
  for _, name in ipairs(names) do
    local c, err = open(po, opts.path, name)
    if not c then
      return nil, err
    end
    local info, ierr = c:contents()
    c:close()
    if not info then
      return nil, ierr
    end
    local ns = { name = name, entries = info.entries, bytes = info.bytes, expired = info.expired,
      vectors = info.vectors }
    if info.oldest then
      local rfc3339 = po.dashboard.fmt.rfc3339
      ns.oldest, ns.newest = rfc3339(info.oldest), rfc3339(info.newest)
      ns.oldest_age, ns.newest_age = now - info.oldest, now - info.newest
      if not out.oldest_age or ns.oldest_age > out.oldest_age then
        out.oldest, out.oldest_age = ns.oldest, ns.oldest_age
      end
      if not out.newest_age or ns.newest_age < out.newest_age then
        out.newest, out.newest_age = ns.newest, ns.newest_age
      end
    end
    for _, k in ipairs { "entries", "bytes", "expired", "vectors" } do
      out[k] = out[k] + info[k]
    end
    out.map_size, out.map_used, out.map_free = info.map_size, info.map_used, info.map_free
    out.namespaces[#out.namespaces + 1] = ns
  end
  return out
end

local function contents_line(label, t)
  local line = ("%s: %s, %d expired"):format(label, entries(t.entries, t.bytes), t.expired)
  if t.vectors > 0 then
    line = line .. (", %d semantic vectors"):format(t.vectors)
  end
  if t.oldest_age then
    line = line .. ("\n  oldest written %s ago (%s), newest %s ago (%s)"):format(human_age(t.oldest_age), t.oldest,
      human_age(t.newest_age), t.newest)
  end
  return line
end

--- The stats as text.
---@param s table  what `stats --json` prints
---@return string
function M.format_stats(s)
  local out = { "cache store " .. s.path }
  if s.map_size then
    out[#out + 1] = ("map: %s, %s in use, %s freed for reuse"):format(human_bytes(s.map_size),
      human_bytes(s.map_used), human_bytes(s.map_free))
  end
  for _, ns in ipairs(s.namespaces) do
    out[#out + 1] = contents_line("namespace " .. ns.name, ns)
  end
  if #s.namespaces == 0 then
    out[#out + 1] = "no entries"
  elseif #s.namespaces > 1 then
    out[#out + 1] = contents_line("total", s)
  end
  return table.concat(out, "\n") .. "\n"
end

local function stats(po, opts, names)
  local s, err = gather(po, opts, names)
  if not s then
    return fail(err)
  end
  io.stdout:write(opts.json and po.json.encode(s) .. "\n" or M.format_stats(s))
  return 0
end

local function prune(po, opts, names)
  local result = { removed = 0, removed_bytes = 0, expired = 0, remaining = 0, remaining_bytes = 0 }
  if #names > 0 then
    -- Without --namespace, one prune over the whole store: --max-bytes
    -- bounds all its namespaces together, the oldest going first whichever
    -- holds them.
    local c, err = open(po, opts.path, names[1])
    if not c then
      return fail(err)
    end
    local r, perr = c:prune { older_than = opts.older_than, max_bytes = opts.max_bytes, dry_run = opts["dry-run"],
      all_namespaces = not opts.namespace }
    c:close()
    if not r then
      return fail(perr)
    end
    for k in pairs(result) do
      result[k] = r[k]
    end
  end
  result.dry_run = opts["dry-run"] == true
  if opts.json then
    io.stdout:write(po.json.encode(result), "\n")
    return 0
  end
  local verb, rest = "removed", "remain"
  if result.dry_run then
    verb, rest = "would remove", "would remain"
  end
  io.stdout:write(("%s %s, %d of them expired; %s %s\n"):format(verb, entries(result.removed, result.removed_bytes),
    result.expired, entries(result.remaining, result.remaining_bytes), rest))
  return 0
end

local function clear(po, opts, names)
  for _, name in ipairs(names) do
    local c, err = open(po, opts.path, name)
    if not c then
      return fail(err)
    end
    -- Bounded transactions for the bulk, then clear for what is left (the
    -- records no entry points at any more).
    local r, perr = c:prune { max_bytes = 0 }
    local ok, cerr = true, nil
    if r then
      ok, cerr = c:clear()
    end
    c:close()
    if not r or not ok then
      return fail(perr or cerr)
    end
    io.stdout:write(("cleared namespace %s: %s removed\n"):format(name, entries(r.removed, r.removed_bytes)))
  end
  return 0
end

local function get(po, opts, names)
  if #names ~= 1 then
    return fail(#names == 0 and "the cache store " .. opts.path .. " holds no namespace"
      or "the cache store holds several namespaces (" .. table.concat(names, ", ") .. "): give --namespace")
  end
  local key = opts.key
  local c, err = open(po, opts.path, names[1])
  if not c then
    return fail(err)
  end
  local value, info, code = c:get(key)
  c:close()
  if value == nil then
    if info then
      return fail(info .. (code and " (" .. code .. ")" or ""))
    end
    return fail(("no entry under key %s in namespace %s"):format(po.cache.key(key), names[1]))
  end
  io.stdout:write(type(value) == "table" and po.json.encode(value) .. "\n" or value)
  return 0
end

local RUN = { stats = stats, prune = prune, clear = clear, get = get }

function M.main(args)
  local opts, err = M.parse(args)
  if not opts or opts.help then
    io.stderr:write(err and ("poengine cache: " .. err .. "\n") or "", USAGE)
    return opts and 0 or 2
  end
  local po = require "poengine"
  if not opts.path then
    local home, herr = po.store.default_dir()
    if not home then
      return fail(herr)
    end
    opts.path = home .. "/cache"
  end
  local names, nerr = namespaces(po, opts)
  if not names then
    return fail(nerr)
  end
  return RUN[opts.command](po, opts, names)
end

return M
