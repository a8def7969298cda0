-- Semantic lookup: one query's top-1 among 10,000 and 100,000 n-gram vectors
-- of generated prompts, with po.semantic.index (f32 and i8) beside numpy's
-- brute-force cosine over the same vectors (M @ q, argmax), p50 and p99 per
-- query, single-threaded. numpy runs in one child process that loads the
-- vectors once and times only its queries (tests/bench/baselines/
-- numpy_cosine.py); poengine times its queries in-process. Rounds alternate
-- which side goes first. Also: how often the int8 kind's top-1 is the exact
-- float top-1.
local ffi = require "ffi"
local po = require "poengine"
local lib = require "tests.bench.lib"
local prompts = require "tests.bench.prompts"

local DIM = po.semantic.dim
local SIZES = { 10000, 100000 }
local QUERIES = { [10000] = 1000, [100000] = 200 } -- per size, over all rounds
local ROUNDS = 5

local function shell_quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

local function percentile(xs, p)
  local s = {}
  for i, x in ipairs(xs) do
    s[i] = x
  end
  table.sort(s)
  return s[math.max(1, math.ceil(#s * p / 100))]
end

-- The vectors: n-gram embeddings of generated prompts, written as float32
-- for numpy and added to the indexes.
local work = os.tmpname()
os.remove(work)
assert(os.execute("mkdir -p " .. shell_quote(work)) == 0)
local vec_path, query_path, fifo = work .. "/vectors.f32", work .. "/queries.f32", work .. "/numpy.out"

local buf = ffi.new("float[?]", DIM)
local function write_vector(f, v)
  for i = 1, DIM do
    buf[i - 1] = v[i]
  end
  f:write(ffi.string(buf, DIM * 4))
end

math.randomseed(7)
local largest = SIZES[#SIZES]
local indexes = {}
for _, n in ipairs(SIZES) do
  indexes[n] = { f32 = po.semantic.index { kind = "f32" }, i8 = po.semantic.index { kind = "i8" } }
end
local kept = {} -- some prompts, to make near-duplicate queries of
local vf = assert(io.open(vec_path, "wb"))
for id = 0, largest - 1 do
  local parts = prompts.prompt()
  if id % 50 == 0 then
    kept[#kept + 1] = parts
  end
  local v = po.semantic.embed(prompts.text(parts))
  write_vector(vf, v)
  for _, n in ipairs(SIZES) do
    if id < n then
      indexes[n].f32:add(id, v)
      indexes[n].i8:add(id, v)
    end
  end
end
vf:close()

-- Queries: half near-duplicates of stored prompts (a cache's hits), half
-- new prompts (its misses). The 10,000 set draws only on the first 10,000.
local near_kinds = {}
for name in pairs(prompts.near) do
  near_kinds[#near_kinds + 1] = name
end
table.sort(near_kinds)
local queries, first = {}, {}
local qf = assert(io.open(query_path, "wb"))
for _, n in ipairs(SIZES) do
  first[n] = #queries
  for i = 1, QUERIES[n] do
    local text
    if i % 2 == 0 then
      local parts = kept[math.random(math.floor(n / 50))]
      text = prompts.near[near_kinds[math.random(#near_kinds)]](parts)
    else
      text = prompts.text(prompts.prompt())
    end
    local v = po.semantic.embed(text)
    queries[#queries + 1] = v
    write_vector(qf, v)
  end
end
qf:close()

-- numpy in a child process: commands on its stdin, answers through a FIFO.
-- OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE, set on some machines for old
-- OpenBLAS builds, slow a current one: unset here, for this command only.
assert(os.execute("mkfifo " .. shell_quote(fifo)) == 0)
local python = io.open("/usr/bin/python3") and "/usr/bin/python3" or "python3"
local child = assert(io.popen(string.format(
  "env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 "
    .. "%s tests/bench/baselines/numpy_cosine.py %s %s %d > %s",
  python, shell_quote(vec_path), shell_quote(query_path), DIM, shell_quote(fifo)), "w"))
local answers = assert(io.open(fifo, "r"))
local hello = assert(po.json.decode(assert(answers:read("*l"), "numpy_cosine.py did not start")))
local blas = hello.blas[1] or "no BLAS library"
local numpy_label = string.format("numpy %s, %s", hello.numpy, blas:match("[^/]+/[^/]+$") or blas)
io.stderr:write("semantic: numpy ", hello.numpy, ", BLAS: ", table.concat(hello.blas, ", "), "\n")

local function numpy_round(n, from, count)
  child:write(string.format("run %d %d %d\n", n, from, count))
  child:flush()
  return assert(po.json.decode(assert(answers:read("*l"), "numpy_cosine.py stopped")))
end

local function our_round(ix, from, count, times, ids, scores)
  for i = from, from + count - 1 do
    local q = queries[i + 1]
    local t0 = po.now()
    local found, score = ix:search(q)
    times[#times + 1] = po.now() - t0
    ids[i] = found[1]
    scores[i] = score[1]
  end
end

local agree, compared = 0, 0
for _, n in ipairs(SIZES) do
  local t = { numpy = {}, f32 = {}, i8 = {} }
  local ids = { numpy = {}, f32 = {}, i8 = {} }
  local scores = { f32 = {}, i8 = {} }
  local per = QUERIES[n] / ROUNDS
  for r = 1, ROUNDS do
    local from = first[n] + (r - 1) * per
    local function numpy()
      local got = numpy_round(n, from, per)
      for i, dt in ipairs(got.times) do
        t.numpy[#t.numpy + 1] = dt
        ids.numpy[from + i - 1] = got.ids[i]
      end
    end
    local function f32()
      our_round(indexes[n].f32, from, per, t.f32, ids.f32, scores.f32)
    end
    local function i8()
      our_round(indexes[n].i8, from, per, t.i8, ids.i8, scores.i8)
    end
    local order = r % 2 == 1 and { numpy, f32, i8 } or { i8, f32, numpy }
    for _, side in ipairs(order) do
      side()
    end
  end
  -- int8 against exact float: the same id, or an exactly tied score
  -- (identical prompts give identical vectors)
  local numpy_same = 0
  for i = first[n], first[n] + QUERIES[n] - 1 do
    compared = compared + 1
    if ids.i8[i] == ids.f32[i] or scores.i8[i] == scores.f32[i] then
      agree = agree + 1
    end
    if ids.numpy[i] == ids.f32[i] then
      numpy_same = numpy_same + 1
    end
  end
  io.stderr:write(string.format("semantic: %d entries: numpy's top-1 id = the f32 index's on %d/%d queries\n", n,
    numpy_same, QUERIES[n]))
  for _, kind in ipairs { "f32", "i8" } do
    for _, p in ipairs { 50, 99 } do
      lib.record {
        name = "semantic lookup",
        case = string.format("top-1 of %d n-gram vectors, %s, p%d of %d queries", n, kind, p, QUERIES[n]),
        subject = { label = "po.semantic.index " .. kind, value = percentile(t[kind], p) * 1e6 },
        baseline = { label = numpy_label, value = percentile(t.numpy, p) * 1e6 },
        unit = "us",
        goal = { min_speedup = 5 },
        runs = ROUNDS,
      }
    end
  end
end

lib.record {
  name = "semantic lookup",
  case = string.format("int8 top-1 = exact float32 top-1, %d queries", compared),
  subject = { label = "po.semantic.index i8", value = agree / compared },
  baseline = { label = "po.semantic.index f32 (exact)", value = 1 },
  unit = "agreement",
  goal = { min = 0.999 },
}

child:close()
answers:close()
for _, n in ipairs(SIZES) do
  indexes[n].f32:close()
  indexes[n].i8:close()
end
os.execute("rm -rf " .. shell_quote(work))
