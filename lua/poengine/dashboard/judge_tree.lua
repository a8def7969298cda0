--- The "evolution" section of a run's judging dashboard: the run as a
--- tree, each candidate under the baseline it was proposed from (the
--- original, or an accepted candidate), the accepted path from the
--- original to the best marked. A node's children that led nowhere are
--- drawn as a wrapped row of chips, so 20 cycles of 8 candidates stay
--- readable; the html page links each chip to its row in the candidates
--- section. Markdown and text draw it as an indented list.
local escape = require "poengine.dashboard.escape"
local judge = require "poengine.dashboard.judge"

local h, md = escape.html, escape.markdown
local concat = table.concat

local function json()
  return require("poengine").json
end

-- The tree of model `m`: { id, label, outcome, path, children }, the root
-- being "original". A parent that no candidate is (a log cut short) is
-- added under the root.
local function tree_of(m)
  local on_path = {}
  for _, id in ipairs(m.chain) do
    on_path[id] = true
  end
  local root = { id = "original", label = "original", outcome = "root", path = true, children = json().array() }
  local nodes = { original = root }
  for _, c in ipairs(m.candidates) do
    nodes[c.id] = { id = c.id, cycle = c.cycle, label = judge.label(c), outcome = judge.outcome(c),
      path = on_path[c.id] == true, children = json().array() }
  end
  for _, c in ipairs(m.candidates) do
    local pid = tostring(c.parent or "original")
    local parent = nodes[pid]
    if not parent then
      parent = { id = pid, label = pid .. " (not in the log)", outcome = "root", path = false,
        children = json().array() }
      nodes[pid] = parent
      root.children[#root.children + 1] = parent
    end
    parent.children[#parent.children + 1] = nodes[c.id]
  end
  return root
end

-- A node's children by cycle, in cycle order: { cycle, leaves, inner }.
local function by_cycle(children)
  local groups, of = {}, {}
  for _, ch in ipairs(children) do
    local k = ch.cycle or 0
    local g = of[k]
    if not g then
      g = { cycle = ch.cycle, leaves = {}, inner = {} }
      of[k] = g
      groups[#groups + 1] = g
    end
    local list = #ch.children == 0 and g.leaves or g.inner
    list[#list + 1] = ch
  end
  table.sort(groups, function(a, b) return (a.cycle or 0) < (b.cycle or 0) end)
  return groups
end

-- A node, and under it each cycle's candidates that led nowhere as one
-- wrapped row of chips, then the ones that led somewhere with theirs.
local function html_node(n, out)
  local cls = "tnode " .. n.outcome .. (n.path and " on-path" or "")
  local label = n.id == "original" and h(n.label) or ('<a href="#cand-' .. h(n.id) .. '">' .. h(n.label) .. "</a>")
  out[#out + 1] = '<li class="' .. (n.path and "path" or "") .. '"><span class="' .. cls .. '">' .. label .. "</span>"
  if #n.children > 0 then
    out[#out + 1] = "<ul>"
    for _, g in ipairs(by_cycle(n.children)) do
      if #g.leaves > 0 then
        out[#out + 1] = '<li class="leaves"><span class="tcycle">' .. h(g.cycle and ("cycle " .. g.cycle) or "")
          .. "</span>"
        for _, l in ipairs(g.leaves) do
          out[#out + 1] = '<a class="chip ' .. l.outcome .. (l.path and " on-path" or "") .. '" href="#cand-'
            .. h(l.id) .. '">' .. h(l.label) .. "</a>"
        end
        out[#out + 1] = "</li>"
      end
      for _, ch in ipairs(g.inner) do
        html_node(ch, out)
      end
    end
    out[#out + 1] = "</ul>"
  end
  out[#out + 1] = "</li>"
end

-- Indented list lines: "- label", the accepted path in bold (Markdown) or
-- marked with a star (text).
local function list_lines(n, depth, out, esc, mark)
  local text = esc(n.label)
  out[#out + 1] = string.rep("  ", depth) .. "- " .. (n.path and mark(text) or text)
  for _, ch in ipairs(n.children) do
    list_lines(ch, depth + 1, out, esc, mark)
  end
end

return judge.section {
  name = "evolution",
  title = "Evolution",
  data = function(m)
    return { tree = tree_of(m) }
  end,
  html = function(d)
    if d.none then
      return '<p class="note">' .. h(d.none) .. "</p>"
    end
    local out = { '<p class="note">each candidate under the baseline it was proposed from; the accepted path '
      .. "outlined</p>", '<ul class="tree">' }
    html_node(d.tree, out)
    out[#out + 1] = "</ul>"
    return concat(out, "\n")
  end,
  markdown = function(d)
    if d.none then
      return md(d.none)
    end
    local out = {}
    list_lines(d.tree, 0, out, md, function(t) return "**" .. t .. "**" end)
    return concat(out, "\n")
  end,
  text = function(d, ctx)
    if d.none then
      return "  " .. escape.text(d.none)
    end
    local out = {}
    list_lines(d.tree, 1, out, escape.text, function(t) return t .. " *" end)
    local fmt = ctx.fmt
    for i, l in ipairs(out) do
      out[i] = fmt.truncate(l, ctx.width or 80)
    end
    return concat(out, "\n")
  end,
}
