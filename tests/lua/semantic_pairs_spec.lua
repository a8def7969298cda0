-- The semantic tier's precision on long prompts that differ in one content
-- word (tests/fixtures/semantic/pairs.lua): po.semantic.match at its default
-- threshold, and the cache's semantic tier on a sample, never serve a
-- request the answer to another one.
local po = require "poengine"
local pairs_set = require "tests.fixtures.semantic.pairs"

local all = pairs_set.build()

-- A pair, shortened for a failure message.
local function show(p)
  local function cut(s)
    return #s > 300 and (s:sub(1, 300) .. "...") or s
  end
  return ("[%s] %q\n  vs %q"):format(p.kind, cut(p.a), cut(p.b))
end

describe("the semantic pair set", function()
  it("has several hundred long pairs of each sign, of every kind and both domains", function()
    local count = {}
    for _, p in ipairs(all) do
      assert.is_true(#p.a >= 200 and #p.a <= 2000, show(p))
      assert.are_not.equal(p.a, p.b)
      local key = tostring(p.positive) .. " " .. p.kind .. " " .. p.domain
      count[key] = (count[key] or 0) + 1
      count[tostring(p.positive)] = (count[tostring(p.positive)] or 0) + 1
    end
    assert.is_true(count["true"] >= 500 and count["false"] >= 500)
    for _, kind in ipairs(pairs_set.negative_kinds) do
      for _, domain in ipairs { "prose", "code" } do
        assert.is_true((count["false " .. kind .. " " .. domain] or 0) >= 40, kind .. " " .. domain)
      end
    end
    for _, kind in ipairs(pairs_set.positive_kinds) do
      for _, domain in ipairs { "prose", "code" } do
        assert.is_true((count["true " .. kind .. " " .. domain] or 0) >= 40, kind .. " " .. domain)
      end
    end
  end)

  it("is the same set on every build", function()
    local again = pairs_set.build()
    assert.are.equal(#all, #again)
    for i = 1, #all, 97 do
      assert.are.equal(all[i].a, again[i].a)
      assert.are.equal(all[i].b, again[i].b)
    end
  end)

  it("is hard: most different-meaning pairs score above the threshold", function()
    local above, n = 0, 0
    for _, p in ipairs(all) do
      if not p.positive then
        n = n + 1
        above = above + (po.semantic.similarity(p.a, p.b) >= po.semantic.threshold and 1 or 0)
      end
    end
    assert.is_true(above / n >= 0.9, ("%d of %d"):format(above, n))
  end)
end)

describe("po.semantic.match on the pair set", function()
  it("has precision >= 0.99 at the default threshold, and keeps most rewordings", function()
    local tp, fp, npos = 0, 0, 0
    local false_hits = {}
    for _, p in ipairs(all) do
      local accepted = po.semantic.match(p.a, p.b)
      assert.are.equal(accepted, (po.semantic.match(p.b, p.a)), show(p))
      if p.positive then
        npos = npos + 1
        tp = tp + (accepted and 1 or 0)
      elseif accepted then
        fp = fp + 1
        false_hits[#false_hits + 1] = show(p)
      end
    end
    local precision = tp / math.max(1, tp + fp)
    assert.is_true(precision >= 0.99,
      ("precision %.4f (%d false hits), e.g.\n%s"):format(precision, fp, table.concat(false_hits, "\n", 1,
        math.min(3, #false_hits))))
    -- a guard that refuses everything would pass the line above
    assert.is_true(tp / npos >= 0.9, ("recall %.4f"):format(tp / npos))
  end)

  it("refuses every kind of one-word change through same_facts, whatever the score", function()
    for _, p in ipairs(all) do
      if not p.positive then
        assert.is_false(po.semantic.same_facts(p.a, p.b), show(p))
      end
    end
  end)

  it("lets every rewording through same_facts", function()
    for _, p in ipairs(all) do
      if p.positive then
        assert.is_true(po.semantic.same_facts(p.a, p.b), show(p))
      end
    end
  end)
end)

describe("the cache's semantic tier on the pair set", function()
  it("answers only the rewordings, as po.semantic.match decides", function()
    local seen, n = {}, 0
    for _, p in ipairs(all) do
      local key = p.kind .. p.domain
      seen[key] = (seen[key] or 0) + 1
      if seen[key] <= 2 then
        n = n + 1
        local c = assert(po.cache.open { namespace = "semantic-pairs-" .. n, semantic = {} })
        assert.is_true(c:set(p.a, "answer to a"))
        local v, info = c:get(p.b)
        local accepted, score = po.semantic.match(p.b, p.a)
        assert.are.equal(accepted, v ~= nil, show(p))
        if p.positive then
          assert.are.equal("answer to a", v, show(p))
          assert.are.equal("semantic", info.hit)
          assert.are.equal(score, info.score)
        else
          assert.is_nil(v, show(p))
        end
        c:close()
      end
    end
    assert.are.equal(2 * 2 * (#pairs_set.negative_kinds + #pairs_set.positive_kinds), n)
  end)
end)
