-- Quality of the semantic tier's decision: po.semantic.match at its default
-- threshold (0.95) beside the reference design's word-set Jaccard at 0.95,
-- over generated pairs of code-optimization prompts: near-duplicates that
-- must hit (whitespace, case, punctuation, a one-word edit, a reflowed
-- paragraph) and look-alikes that must miss (a changed number, a negation,
-- swapped operands, another function). Precision and recall, plus (on
-- stderr) each kind of pair and a sweep of thresholds. Then the same on the
-- harder pair set the tests keep (tests/fixtures/semantic/pairs.lua: long
-- prompts that differ in one content word, or are reworded), and what the
-- guard costs per call.
local po = require "poengine"
local lib = require "tests.bench.lib"
local prompts = require "tests.bench.prompts"
local hard_pairs = require "tests.fixtures.semantic.pairs"

local PER_KIND = 120
local THRESHOLD = po.semantic.threshold

-- The reference design: lower-cased, whitespace-split word sets.
local function jaccard(a, b)
  local sa, sb, na, nb, both = {}, {}, 0, 0, 0
  for w in a:lower():gmatch("%S+") do
    if not sa[w] then
      sa[w], na = true, na + 1
    end
  end
  for w in b:lower():gmatch("%S+") do
    if not sb[w] then
      sb[w], nb = true, nb + 1
      if sa[w] then
        both = both + 1
      end
    end
  end
  local union = na + nb - both
  return union == 0 and 1 or both / union
end

math.randomseed(20240917)
local pairs_ = {} -- { a, b, positive, kind }
local function add_kinds(kinds, positive)
  local names = {}
  for name in pairs(kinds) do
    names[#names + 1] = name
  end
  table.sort(names)
  for _, name in ipairs(names) do
    local made = 0
    while made < PER_KIND do
      local parts = prompts.prompt()
      local b = kinds[name](parts)
      local a = prompts.text(parts)
      if b and b ~= a then
        pairs_[#pairs_ + 1] = { a = a, b = b, positive = positive, kind = name }
        made = made + 1
      end
    end
  end
end
add_kinds(prompts.near, true)
add_kinds(prompts.different, false)

-- Score every pair once; decisions at any threshold follow from the score
-- and the guard.
local npos, nneg = 0, 0
for _, p in ipairs(pairs_) do
  p.score = po.semantic.similarity(p.a, p.b)
  p.facts = po.semantic.same_facts(p.a, p.b)
  p.match = po.semantic.match(p.a, p.b)
  assert(p.match == (p.facts and p.score >= THRESHOLD), "match disagrees with similarity and same_facts")
  p.jaccard = jaccard(p.a, p.b)
  if p.positive then
    npos = npos + 1
  else
    nneg = nneg + 1
  end
end

local function measure(accept)
  local tp, fp = 0, 0
  for _, p in ipairs(pairs_) do
    if accept(p) then
      if p.positive then
        tp = tp + 1
      else
        fp = fp + 1
      end
    end
  end
  local precision = tp + fp == 0 and 1 or tp / (tp + fp)
  return precision, tp / npos, tp, fp
end

local function ours_at(t)
  return function(p)
    return p.facts and p.score >= t
  end
end
local function jaccard_at(t)
  return function(p)
    return p.jaccard >= t
  end
end

local err = io.stderr
err:write(string.format("semantic quality: %d near-duplicate pairs, %d different-meaning pairs\n", npos, nneg))
err:write("  kind                 positive  match@0.95  jaccard@0.95  median score\n")
local kinds = {}
for _, p in ipairs(pairs_) do
  local k = kinds[p.kind] or { n = 0, ours = 0, jac = 0, scores = {}, positive = p.positive }
  kinds[p.kind] = k
  k.n = k.n + 1
  k.ours = k.ours + (p.match and 1 or 0)
  k.jac = k.jac + (p.jaccard >= 0.95 and 1 or 0)
  k.scores[#k.scores + 1] = p.score
end
local names = {}
for name in pairs(kinds) do
  names[#names + 1] = name
end
table.sort(names, function(x, y)
  if kinds[x].positive ~= kinds[y].positive then
    return kinds[x].positive
  end
  return x < y
end)
for _, name in ipairs(names) do
  local k = kinds[name]
  err:write(string.format("  %-20s %-8s  %4d/%-4d   %4d/%-4d     %.3f\n", name, tostring(k.positive), k.ours, k.n,
    k.jac, k.n, lib.median(k.scores)))
end
err:write("  threshold  precision  recall  (po.semantic.match)\n")
for _, t in ipairs { 0.80, 0.85, 0.88, 0.90, 0.92, 0.95, 0.97, 0.99 } do
  local prec, rec, tp, fp = measure(ours_at(t))
  err:write(string.format("  %.2f       %.4f     %.4f  tp %d fp %d\n", t, prec, rec, tp, fp))
end
-- What the guards add: the score alone, at the default threshold.
local alone_tp, alone_fp = 0, 0
for _, p in ipairs(pairs_) do
  if p.score >= THRESHOLD then
    if p.positive then
      alone_tp = alone_tp + 1
    else
      alone_fp = alone_fp + 1
    end
  end
end
err:write(string.format("  the score alone at 0.95 (no guards): precision %.4f (fp %d)\n",
  alone_tp / math.max(1, alone_tp + alone_fp), alone_fp))

-- For choosing the threshold: pairs that differ in meaning but in no fact
-- ("memory" for "latency"), which only the score can refuse.
local prose = {}
while #prose < PER_KIND do
  local parts = prompts.prompt()
  local b = prompts.prose_change(parts)
  if b then
    local a = prompts.text(parts)
    prose[#prose + 1] = { score = po.semantic.similarity(a, b), facts = po.semantic.same_facts(a, b) }
  end
end
err:write(string.format("  %d pairs with one meaning-changing prose word (facts unchanged), accepted at:\n", #prose))
for _, t in ipairs { 0.85, 0.88, 0.90, 0.92, 0.95, 0.97 } do
  local accepted = 0
  for _, p in ipairs(prose) do
    accepted = accepted + ((p.facts and p.score >= t) and 1 or 0)
  end
  err:write(string.format("    %.2f: %d/%d\n", t, accepted, #prose))
end

local jp, jr, jtp, jfp = measure(jaccard_at(0.95))
err:write(string.format("  jaccard@0.95: precision %.4f recall %.4f tp %d fp %d\n", jp, jr, jtp, jfp))

local prec, rec = measure(ours_at(THRESHOLD))
local case = string.format("%d near-duplicate and %d different-meaning prompt pairs, threshold 0.95", npos, nneg)
lib.record {
  name = "semantic quality",
  case = "precision: " .. case,
  subject = { label = "po.semantic.match", value = prec },
  baseline = { label = "word-set Jaccard >= 0.95", value = jp },
  unit = "precision",
  goal = { min = 0.99 },
}
lib.record {
  name = "semantic quality",
  case = "recall: " .. case,
  subject = { label = "po.semantic.match", value = rec },
  baseline = { label = "word-set Jaccard >= 0.95", value = jr },
  unit = "recall",
  goal = { above_baseline = true },
}

---------------------------------------------------------------------------
-- The harder set: one content word changed in a long prompt.

local hard = hard_pairs.build()
local hpos, hneg = 0, 0
for _, p in ipairs(hard) do
  p.score = po.semantic.similarity(p.a, p.b)
  p.facts = po.semantic.same_facts(p.a, p.b)
  p.jaccard = jaccard(p.a, p.b)
  if p.positive then
    hpos = hpos + 1
  else
    hneg = hneg + 1
  end
end

local function measure_on(set, npositive, accept)
  local tp, fp = 0, 0
  for _, p in ipairs(set) do
    if accept(p) then
      if p.positive then
        tp = tp + 1
      else
        fp = fp + 1
      end
    end
  end
  return tp + fp == 0 and 1 or tp / (tp + fp), tp / npositive, tp, fp
end

err:write(string.format("semantic quality, one-word pairs: %d rewordings, %d one-word changes\n", hpos, hneg))
err:write("  kind          positive  match@0.95  score>=0.95  jaccard@0.95\n")
local hkinds, hnames = {}, {}
for _, p in ipairs(hard) do
  local k = hkinds[p.kind]
  if not k then
    k = { n = 0, ours = 0, score = 0, jac = 0, positive = p.positive }
    hkinds[p.kind] = k
    hnames[#hnames + 1] = p.kind
  end
  k.n = k.n + 1
  k.ours = k.ours + ((p.facts and p.score >= THRESHOLD) and 1 or 0)
  k.score = k.score + (p.score >= THRESHOLD and 1 or 0)
  k.jac = k.jac + (p.jaccard >= THRESHOLD and 1 or 0)
end
for _, name in ipairs(hnames) do
  local k = hkinds[name]
  err:write(string.format("  %-13s %-8s  %4d/%-4d   %4d/%-4d    %4d/%-4d\n", name, tostring(k.positive), k.ours, k.n,
    k.score, k.n, k.jac, k.n))
end
for _, t in ipairs { 0.80, 0.90, 0.95, 0.97 } do
  local prec, rec, tp, fp = measure_on(hard, hpos, ours_at(t))
  err:write(string.format("  %.2f: precision %.4f recall %.4f tp %d fp %d\n", t, prec, rec, tp, fp))
end

-- What the guard costs: po.semantic.same_facts per pair, on the rewordings
-- (every check runs to the end) and on the changes (refused at the first
-- differing word), beside the similarity itself. The cache runs the guard
-- once per candidate above the threshold.
local function per_pair_us(fn, positive)
  local n, t0 = 0, po.now()
  for _ = 1, 5 do
    for _, p in ipairs(hard) do
      if p.positive == positive then
        fn(p.a, p.b)
        n = n + 1
      end
    end
  end
  return (po.now() - t0) / n * 1e6
end
local chars = 0
for _, p in ipairs(hard) do
  chars = chars + #p.a
end
err:write(string.format("  per pair (mean length %d): same_facts %.1f us on rewordings, %.1f us on changes; "
  .. "similarity %.1f us\n", math.floor(chars / #hard), per_pair_us(po.semantic.same_facts, true),
  per_pair_us(po.semantic.same_facts, false), per_pair_us(po.semantic.similarity, true)))

local hp, hr = measure_on(hard, hpos, ours_at(THRESHOLD))
local hjp, hjr = measure_on(hard, hpos, jaccard_at(THRESHOLD))
local hcase = string.format("%d rewordings and %d one-content-word changes of 200-2,000 character prompts, "
  .. "threshold 0.95", hpos, hneg)
lib.record {
  name = "semantic quality",
  case = "precision: " .. hcase,
  subject = { label = "po.semantic.match", value = hp },
  baseline = { label = "word-set Jaccard >= 0.95", value = hjp },
  unit = "precision",
  goal = { min = 0.99 },
}
lib.record {
  name = "semantic quality",
  case = "recall: " .. hcase,
  subject = { label = "po.semantic.match", value = hr },
  baseline = { label = "word-set Jaccard >= 0.95", value = hjr },
  unit = "recall",
  goal = { above_baseline = true },
}
