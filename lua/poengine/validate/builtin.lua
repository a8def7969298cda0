--- Built-in validators for po.validate: syntax, command, tests, benchmark,
--- pattern, lint, and the levels basic / standard / strict / paranoid.
---
--- Each constructor is a short function that returns a plain validator
--- table; read one, copy it, change it.
local po = require "poengine"
local stats = require "poengine.metrics.stats"
local decide = require "poengine.validate.decide"

local type, ipairs, pairs, tostring, tonumber, error = type, ipairs, pairs, tostring, tonumber, error
local sort = table.sort

local M = {}

local MAX_MESSAGES = 50

-- Copies the fields of `from` that a validator table may carry.
local function validator(defaults, from)
  local v = {}
  for k, value in pairs(defaults) do
    v[k] = value
  end
  for _, k in ipairs { "name", "timeout", "stage", "cwd", "env", "kill_grace", "executor" } do
    if from[k] ~= nil then
      v[k] = from[k]
    end
  end
  return v
end

local function check_argv(fname, argv)
  if type(argv) ~= "table" or #argv == 0 then
    error(fname .. ": argv must be a non-empty table of strings", 3)
  end
end

-- Lines of text that name a place in a file ("file:line:..."), at most max.
local function located_lines(text, max)
  local out = {}
  for line in text:gmatch("[^\n]+") do
    if #out >= max then
      break
    end
    if line:match("^[^%s:][^:]*:%d+[:,]") then
      out[#out + 1] = line
    end
  end
  return out
end

local function non_empty_lines(text, max)
  local out = {}
  for line in text:gmatch("[^\n]+") do
    if #out >= max then
      break
    end
    if line:match("%S") then
      out[#out + 1] = line
    end
  end
  return out
end

---------------------------------------------------------------------------
-- syntax

local SYNTAX_ARGV = {
  lua = { "luajit", "-bl", "{file}", "/dev/null" },
  c = { "cc", "-fsyntax-only", "{file}" },
  python = { "python3", "-c", "import sys; compile(open(sys.argv[1], 'rb').read(), sys.argv[1], 'exec')", "{file}" },
}

--- Checks that candidate.file parses: `luajit -bl`, `cc -fsyntax-only`, or
--- Python's compile() (which, unlike py_compile, writes no .pyc).
---@param opts { lang: "lua"|"c"|"python", argv?: string[], name?: string, timeout?: number, stage?: integer }
function M.syntax(opts)
  opts = opts or {}
  local argv = opts.argv or SYNTAX_ARGV[opts.lang]
  if not argv then
    error("po.validate.syntax: lang must be \"lua\", \"c\" or \"python\" (or give argv), got " .. tostring(opts.lang), 2)
  end
  return validator({
    name = "syntax",
    run = argv,
    parse = function(result)
      local output = result.stderr .. result.stdout
      local errors = located_lines(output, MAX_MESSAGES)
      if result.status ~= "ok" and #errors == 0 then
        errors = non_empty_lines(output, MAX_MESSAGES)
      end
      return result.status == "ok", { errors = result.status ~= "ok" and errors or nil }
    end,
  }, opts)
end

---------------------------------------------------------------------------
-- command

--- Runs a command; passes when it exits with status 0.
---@param opts { argv: string[], name?: string, timeout?: number, stage?: integer, cwd?: string, env?: table }
function M.command(opts)
  check_argv("po.validate.command", opts and opts.argv)
  return validator({ name = "command", run = opts.argv }, opts)
end

---------------------------------------------------------------------------
-- tests

local function last_match(text, pattern)
  local found
  for a, b, c, d in text:gmatch(pattern) do
    found = { a, b, c, d }
  end
  return found
end

--- Finds the summary line of a test run in text. Returns
--- `{ format =, passed =, failed =, errors =, skipped =, total = }` or nil.
--- Knows busted ("3 successes / 1 failure / 0 errors / 0 pending"), ctest
--- ("75% tests passed, 1 tests failed out of 4"), pytest
--- ("=== 2 failed, 8 passed, 1 skipped in 0.12s ===") and the plain
--- "N passed, N failed"; the last such line counts.
---@param text string
function M.parse_test_summary(text)
  local m = last_match(text, "(%d+) successe?s? / (%d+) failures? / (%d+) errors? / (%d+) pending")
  if m then
    local p, f, e, s = tonumber(m[1]), tonumber(m[2]), tonumber(m[3]), tonumber(m[4])
    return { format = "busted", passed = p, failed = f, errors = e, skipped = s, total = p + f + e + s }
  end
  m = last_match(text, "%d+%% tests passed, (%d+) tests? failed out of (%d+)")
  if m then
    local f, total = tonumber(m[1]), tonumber(m[2])
    return { format = "ctest", passed = total - f, failed = f, errors = 0, skipped = 0, total = total }
  end
  local pytest
  for line in text:gmatch("[^\n]+") do
    if line:match(" in [%d%.]+m?s") and (line:match("%d+ passed") or line:match("%d+ failed")
        or line:match("%d+ errors?")) then
      pytest = line
    end
  end
  if pytest then
    local function count(word)
      return tonumber(pytest:match("(%d+) " .. word)) or 0
    end
    local r = { format = "pytest", passed = count("passed"), failed = count("failed"),
                errors = count("errors?"), skipped = count("skipped") }
    r.total = r.passed + r.failed + r.errors + r.skipped
    return r
  end
  m = last_match(text, "(%d+) passed, (%d+) failed")
  if m then
    local p, f = tonumber(m[1]), tonumber(m[2])
    return { format = "plain", passed = p, failed = f, errors = 0, skipped = 0, total = p + f }
  end
  return nil
end

--- Runs a test command and reads its summary (see parse_test_summary):
--- passes when it exits 0 and reports no failures and no errors.
---@param opts { argv: string[], name?: string, timeout?: number, stage?: integer, cwd?: string, env?: table }
function M.tests(opts)
  check_argv("po.validate.tests", opts and opts.argv)
  return validator({
    name = "tests",
    run = opts.argv,
    stage = 2,
    parse = function(result)
      local summary = M.parse_test_summary(result.stdout .. "\n" .. result.stderr)
      local details = { summary = summary, errors = {}, warnings = {} }
      if not summary then
        details.warnings[1] = "no test summary found in the output"
      elseif summary.failed + summary.errors > 0 then
        details.errors[1] = ("%d failed, %d errors (%s)"):format(summary.failed, summary.errors, summary.format)
      end
      if result.status ~= "ok" then
        details.errors[#details.errors + 1] = "exited with " .. tostring(result.code or result.signal)
      end
      return result.status == "ok" and (not summary or summary.failed + summary.errors == 0), details
    end,
  }, opts)
end

---------------------------------------------------------------------------
-- benchmark: statistics, the comparison and one measurement

--- median, min, max and MAD (median absolute deviation) of samples; for
--- no samples, median and MAD are 0 and min and max nil.
---@param samples number[]
---@return { median: number, min: number, max: number, mad: number, n: integer, samples: number[] }
function M.stats(samples)
  local s = stats.sorted(samples)
  local med = stats.median(s)
  return { median = med, min = s[1], max = s[#s], mad = stats.mad(s, med), n = #s, samples = samples }
end

-- The band rule, kept for figures that carry no samples (a median and a MAD
-- from elsewhere): each side's band is its median ± noise × spread, where
-- spread is its MAD but at least 1% of its median; "faster" only when the
-- candidate's whole band lies beyond the baseline's. Its error rates were
-- never measured: nothing calibrates it.
local function band_verdict(candidate, baseline, opts)
  local k = opts.noise or 2
  local function band(s)
    local spread = math.max(s.mad or 0, 0.01 * math.abs(s.median))
    return s.median - k * spread, s.median + k * spread
  end
  local c_lo, c_hi = band(candidate)
  local b_lo, b_hi = band(baseline)
  local better, worse = c_hi < b_lo, c_lo > b_hi
  local speedup = baseline.median / candidate.median
  if opts.higher_is_better then
    better, worse = worse, better
    speedup = candidate.median / baseline.median
  end
  return better and "faster" or (worse and "slower" or "same"), speedup
end

local function samples_of(s)
  local x = type(s) == "table" and s.samples
  return type(x) == "table" and #x >= 2 and x or nil
end

--- Compares a candidate's figures with a baseline's. When both carry
--- `samples` (what po.validate.benchmark keeps), the rule is
--- decide.compare_samples: a Mann–Whitney test on log times at `alpha`
--- (default 0.05, one-sided) with a Hodges–Lehmann speedup and its
--- interval, "faster" only when significant and at least 1 + min_effect
--- (default 0.01; with margin = true, only when significantly better by
--- more than min_effect). Figures without samples ({ median =, mad = }) fall back
--- to the uncalibrated band rule (median ± noise × MAD, noise = 2), which
--- gives no interval. Returns the verdict, the speedup (> 1 is better, in
--- either direction) and a table { ci_low, ci_high, p, level, rule =
--- "mann-whitney" | "band", n_candidate, n_baseline }.
---@param candidate { median: number, mad?: number, samples?: number[] }
---@param baseline { median: number, mad?: number, samples?: number[] }
---@param opts? { alpha?: number, min_effect?: number, noise?: number, higher_is_better?: boolean, margin?: boolean }
---@return "faster"|"slower"|"same" verdict, number speedup, table info
function M.compare(candidate, baseline, opts)
  opts = opts or {}
  local cs, bs = samples_of(candidate), samples_of(baseline)
  if cs and bs then
    local r = decide.compare_samples(cs, bs, { alpha = opts.alpha, min_effect = opts.min_effect,
      higher_is_better = opts.higher_is_better, margin = opts.margin })
    if r then
      r.rule = "mann-whitney"
      return r.verdict, r.speedup, r
    end
    -- Samples that are not positive numbers: only the band rule can judge.
  end
  local verdict, speedup = band_verdict(candidate, baseline, opts)
  return verdict, speedup, { rule = "band", n_candidate = candidate.n, n_baseline = baseline.n }
end

-- Runs argv once (pinned to `cpu` when given) and returns the metric, or
-- nil and an error message.
local function measure(argv, metric, cwd, env, timeout, cpu, executor)
  if executor ~= nil and po.executor.kind_of(executor) ~= "local" then
    cpu = nil -- a core of this machine means nothing on a cluster node
  end
  local r = po.run_sync { argv = argv, cwd = cwd, env = env, timeout = timeout, cpu = cpu, executor = executor }
  if r.status ~= "ok" then
    return nil, (r.error or ("exited with " .. tostring(r.code or r.signal or r.status))) .. ": " .. r.stderr:sub(1, 500)
  end
  if metric == "wall" then
    return r.duration
  end
  local ok, value = pcall(metric, r)
  if not ok or type(value) ~= "number" then
    return nil, "metric: " .. (ok and ("returned " .. type(value) .. ", not a number") or tostring(value))
  end
  return value
end

local function expand(argv, candidate)
  local out = {}
  for i, a in ipairs(argv) do
    out[i] = tostring(a):gsub("{dir}", candidate.dir or ""):gsub("{file}", candidate.file or "")
  end
  return out
end

--- Runs a benchmark command `repeats` times after `warmup` runs and reports
--- median, min, max, MAD and the samples of the metric (wall seconds, or
--- what metric(result) returns). With baseline = { argv = ... } the
--- baseline is measured in the same run, alternately, and compared by
--- M.compare on the samples; baseline = { median =, mad = } compares with
--- earlier figures (the band rule). Passes unless the candidate is
--- "slower"; with require_speedup, only when "faster". The validator also
--- has `measure(candidate [, { cpu = n }])`: one run, the metric's value or
--- nil, message, "EBENCH" (the optimizer's timing phase takes its samples
--- one at a time with it, interleaved and pinned).
---@param opts { argv: string[], repeats?: integer, warmup?: integer, metric?: "wall"|fun(r: table): number, baseline?: table, noise?: number, alpha?: number, min_effect?: number, higher_is_better?: boolean, require_speedup?: boolean, name?: string, timeout?: number, stage?: integer, cwd?: string, env?: table }
function M.benchmark(opts)
  check_argv("po.validate.benchmark", opts and opts.argv)
  local repeats, warmup, metric = opts.repeats or 5, opts.warmup or 1, opts.metric or "wall"
  if metric ~= "wall" and type(metric) ~= "function" then
    error("po.validate.benchmark: metric must be \"wall\" or a function(result) -> number", 2)
  end
  local baseline = opts.baseline
  local per_run = opts.timeout and opts.timeout / (repeats + warmup) or nil
  local v = validator({ name = "benchmark", stage = 3, inline = true }, opts)
  v.measure = function(candidate, mopts)
    local cpu = mopts and mopts.cpu
    local ex = mopts and mopts.executor or opts.executor
    local value, err = measure(expand(opts.argv, candidate), metric, opts.cwd or candidate.dir, opts.env, per_run, cpu, ex)
    if not value then
      return nil, err, "EBENCH"
    end
    return value
  end
  v.run = function(candidate)
    local cwd = opts.cwd or candidate.dir
    local argv = expand(opts.argv, candidate)
    local base_argv = type(baseline) == "table" and baseline.argv and expand(baseline.argv, candidate)
    local samples, base_samples = {}, {}
    for round = 1, warmup + repeats do
      -- alternate which side goes first so a drifting machine favours neither
      local order = round % 2 == 1 and { argv, base_argv } or { base_argv, argv }
      for _, which in ipairs(order) do
        if which then
          local value, err = measure(which, metric, cwd, opts.env, per_run, nil, opts.executor)
          if not value then
            return false, { errors = { (which == argv and "" or "baseline: ") .. err } }
          end
          if round > warmup then
            local list = which == argv and samples or base_samples
            list[#list + 1] = value
          end
        end
      end
    end
    local details = M.stats(samples)
    local base = base_argv and M.stats(base_samples) or (type(baseline) == "table" and baseline.median and baseline)
    if not base then
      return true, details
    end
    details.baseline = base
    local info
    details.verdict, details.speedup, info = M.compare(details, base, opts)
    details.ci_low, details.ci_high, details.p, details.rule = info.ci_low, info.ci_high, info.p, info.rule
    local passed = details.verdict ~= "slower"
    if opts.require_speedup then
      passed = details.verdict == "faster"
    end
    if not passed then
      details.errors = { ("%s than the baseline: median %.6g vs %.6g"):format(
        details.verdict == "slower" and "slower" or "not clearly faster", details.median, base.median) }
    end
    return passed, details
  end
  return v
end

---------------------------------------------------------------------------
-- pattern

-- Hard-coded secrets. The message names the kind, never the value.
M.SECRET_PATTERNS = {
  { "AKIA" .. ("[0-9A-Z]"):rep(16), "AWS access key" },
  { "%-%-%-%-%-BEGIN [%u ]*PRIVATE KEY%-%-%-%-%-", "private key" },
  { "gh[pousr]_" .. ("[%w]"):rep(36), "GitHub token" },
  { "sk%-" .. ("[%w_%-]"):rep(20), "API secret key" },
  { "xox[abprs]%-" .. ("[%w%-]"):rep(10), "Slack token" },
  { "[Pp][Aa][Ss][Ss][Ww][Oo][Rr][Dd]%s*[=:]%s*[\"'][^\"'%s][^\"'%s][^\"'%s][^\"'%s]", "password" },
  { "[Aa][Pp][Ii]_?[Kk][Ee][Yy]%s*[=:]%s*[\"'][%w_%-][%w_%-][%w_%-][%w_%-][%w_%-][%w_%-][%w_%-][%w_%-]", "API key" },
  { "[Ss][Ee][Cc][Rr][Ee][Tt]%s*[=:]%s*[\"'][%w_%-/+][%w_%-/+][%w_%-/+][%w_%-/+][%w_%-/+][%w_%-/+][%w_%-/+][%w_%-/+]",
    "secret" },
}

-- The files a candidate names: files, file, or every regular file under
-- dir (without .git).
local function candidate_files(candidate)
  if type(candidate.files) == "table" then
    return candidate.files
  end
  if candidate.file then
    return { candidate.file }
  end
  if not candidate.dir then
    return nil, "the candidate has no files, file or dir"
  end
  local r = po.run_sync { argv = { "find", candidate.dir, "-type", "f", "-not", "-path", "*/.git/*" } }
  if r.status ~= "ok" then
    return nil, "cannot list " .. candidate.dir .. ": " .. r.stderr
  end
  local files = {}
  for path in r.stdout:gmatch("[^\n]+") do
    files[#files + 1] = path
  end
  sort(files)
  return files
end

--- Scans the candidate's files for forbidden patterns and secrets; runs on
--- a pool worker. Returns passed, { errors = { "path:line: ..." }, ... }.
---@param candidate table
---@param config { deny: (string|{ pattern: string, message?: string })[], secrets: boolean }
function M.scan_patterns(candidate, config)
  local files, err = candidate_files(candidate)
  if not files then
    return false, { errors = { err } }
  end
  local rules = {}
  for _, d in ipairs(config.deny or {}) do
    if type(d) == "table" then
      rules[#rules + 1] = { d.pattern, d.message or ("forbidden pattern '" .. d.pattern .. "'") }
    else
      rules[#rules + 1] = { d, "forbidden pattern '" .. d .. "'" }
    end
  end
  if config.secrets ~= false then
    for _, s in ipairs(M.SECRET_PATTERNS) do
      rules[#rules + 1] = { s[1], "possible hard-coded secret (" .. s[2] .. ")" }
    end
  end
  local errors, scanned, matches = {}, 0, 0
  for _, path in ipairs(files) do
    local f = io.open(path, "rb")
    local text = f and f:read("*a")
    if f then
      f:close()
    end
    if text and not text:find("\0", 1, true) then -- binary files are skipped
      scanned = scanned + 1
      local lineno = 0
      for line in (text .. "\n"):gmatch("([^\n]*)\n") do
        lineno = lineno + 1
        for _, rule in ipairs(rules) do
          if line:find(rule[1]) then
            matches = matches + 1
            if #errors < MAX_MESSAGES then
              errors[#errors + 1] = path .. ":" .. lineno .. ": " .. rule[2]
            end
          end
        end
      end
    end
  end
  return matches == 0, { errors = errors, matches = matches, files = scanned }
end

--- Forbidden patterns (Lua patterns, or { pattern =, message = }) and
--- hard-coded secrets (M.SECRET_PATTERNS; secrets = false turns them off),
--- reported as path:line. Scans candidate.files, candidate.file, or every
--- file under candidate.dir, on the worker pool.
---@param opts { deny?: (string|table)[], secrets?: boolean, name?: string, timeout?: number, stage?: integer }
function M.pattern(opts)
  opts = opts or {}
  for i, d in ipairs(opts.deny or {}) do
    local p = type(d) == "table" and d.pattern or d
    if type(p) ~= "string" or not pcall(string.find, "", p) then
      error("po.validate.pattern: deny[" .. i .. "] must be a valid Lua pattern", 2)
    end
  end
  return validator({
    name = "pattern",
    stage = 1,
    run = { module = "poengine.validate.builtin", fn = "scan_patterns",
            arg = { deny = opts.deny or {}, secrets = opts.secrets ~= false } },
  }, opts)
end

---------------------------------------------------------------------------
-- lint

-- True if a command can be found (a path, or a name on PATH).
local function available(cmd)
  local function executable(path)
    local r = po.run_sync { argv = { "test", "-x", path } }
    return r.status == "ok"
  end
  if cmd:find("/", 1, true) then
    return executable(cmd)
  end
  for dir in (os.getenv("PATH") or "/usr/bin:/bin"):gmatch("[^:]+") do
    local f = io.open(dir .. "/" .. cmd)
    if f then
      f:close()
      return true
    end
  end
  return false
end

local LINT_ARGV = {
  c = { "cppcheck", "--error-exitcode=1", "--quiet", "{files}" },
  lua = { "luacheck", "--no-color", "{files}" },
  python = { "python3", "-m", "pyflakes", "{files}" },
}

--- Runs a linter (cppcheck, clang-format --dry-run --Werror, luacheck ...):
--- passes on exit 0, with its file:line lines as warnings or errors. When
--- the tool is not installed the validator is skipped with a warning.
---@param opts { argv?: string[], lang?: "c"|"lua"|"python", name?: string, timeout?: number, stage?: integer }
function M.lint(opts)
  opts = opts or {}
  local argv = opts.argv or LINT_ARGV[opts.lang]
  check_argv("po.validate.lint", argv)
  local v = validator({ name = "lint", stage = 1 }, opts)
  local missing
  if argv[1] == "python3" and argv[2] == "-m" then
    if po.run_sync({ argv = { "python3", "-c", "import " .. tostring(argv[3]) } }).status ~= "ok" then
      missing = "python3 -m " .. tostring(argv[3])
    end
  elseif not available(argv[1]) then
    missing = argv[1]
  end
  if missing then
    v.inline = true
    v.run = function()
      return true, { status = "skipped", warnings = { "lint: " .. missing .. " is not installed; skipped" } }
    end
    return v
  end
  v.run = argv
  v.parse = function(result)
    local lines = located_lines(result.stdout .. "\n" .. result.stderr, MAX_MESSAGES)
    if result.status == "ok" then
      return true, { warnings = lines }
    end
    if #lines == 0 then
      lines = non_empty_lines(result.stdout .. "\n" .. result.stderr, MAX_MESSAGES)
    end
    return false, { errors = lines }
  end
  return v
end

---------------------------------------------------------------------------
-- levels

local LEVELS = { basic = 1, standard = 2, strict = 3, paranoid = 4 }

--- The validators of a level: basic (syntax), standard (+ tests), strict
--- (+ benchmark), paranoid (+ pattern + lint). config.lang picks the
--- syntax checker and the default linter; config.tests is the test argv,
--- config.benchmark the options of benchmark{}, config.deny the forbidden
--- patterns, config.lint the linter argv.
---@param name "basic"|"standard"|"strict"|"paranoid"
---@param config { lang: string, tests?: string[], benchmark?: table, deny?: table, lint?: string[] }
---@return table[] validators
function M.level(name, config)
  local rank = LEVELS[name]
  if not rank then
    error("po.validate.level: level must be basic, standard, strict or paranoid, got " .. tostring(name), 2)
  end
  config = config or {}
  local list = { M.syntax { lang = config.lang, stage = 1 } }
  if rank >= 2 then
    if not config.tests then
      error("po.validate.level: " .. name .. " needs tests = argv", 2)
    end
    list[#list + 1] = M.tests { argv = config.tests, stage = 2 }
  end
  if rank >= 3 then
    if not config.benchmark then
      error("po.validate.level: " .. name .. " needs benchmark = { argv = ... }", 2)
    end
    local b = {}
    for k, value in pairs(config.benchmark) do
      b[k] = value
    end
    b.stage = b.stage or 3
    list[#list + 1] = M.benchmark(b)
  end
  if rank >= 4 then
    list[#list + 1] = M.pattern { deny = config.deny, stage = 1 }
    list[#list + 1] = M.lint { argv = config.lint, lang = config.lang, stage = 1 }
  end
  return list
end

return M
