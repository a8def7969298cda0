-- The first hour of a new user: a fresh copy of the tree runs the README's
-- first command, and scripts/install puts poengine on the PATH with its man
-- page, bash completion, pkg-config file and stock-LuaJIT module.
local proc = require "tests.tools.proc"
local q = proc.quote

local source = os.getenv("POENGINE_SOURCE_DIR") or "."
local build = os.getenv("POENGINE_BUILD_DIR") or "build"

local function sh_ok(cmd)
  local status, out, err = proc.sh(cmd)
  assert(status == 0, cmd .. "\nexit " .. tostring(status) .. "\n" .. out .. err)
  return out, err
end

describe("a fresh copy of the tree", function()
  local dir

  setup(function()
    dir = proc.tempdir()
    -- What a clone would hold: tracked files and new ones git does not ignore.
    sh_ok("cd " .. q(source) .. " && git ls-files -z --cached --others --exclude-standard"
      .. " | tar --null --ignore-failed-read -T - -cf - 2>/dev/null | tar -xf - -C " .. q(dir))
  end)

  teardown(function()
    proc.rmdir(dir)
  end)

  it("runs the README's first command offline and says where the LLM answers came from", function()
    local env = "env -u OPENAI_API_KEY -u ANTHROPIC_API_KEY -u OLLAMA_HOST -u POENGINE_LUA_PATH POENGINE_HOME="
      .. q(dir .. "/home") .. " "
    local out = sh_ok("cd " .. q(dir) .. " && " .. env .. "scripts/run examples/quickstart.lua 1")
    assert.matches("LLM: the bundled sample replies", out)
    assert.matches("cycle 1 of 1: ", out)
    assert.matches("measured side by side", out)
  end)

  it("installs with scripts/install so that poengine is on the PATH", function()
    local prefix = dir .. "/prefix"
    local out = sh_ok("cd " .. q(dir) .. " && scripts/install --prefix " .. q(prefix) .. " --build " .. q(dir .. "/build"))
    assert.matches("installed poengine into " .. prefix:gsub("%p", "%%%0"), out)
    assert.matches("export PATH=", out) -- the prefix is not on the PATH yet, and it says how
    local path = "PATH=" .. q(prefix .. "/bin") .. ":$PATH "
    local version = sh_ok(path .. "poengine -v")
    assert.matches("^poengine %d+%.%d+%.%d+\n", version)
    assert.are.equal(prefix .. "/bin/poengine\n", sh_ok(path .. "command -v poengine"))

    -- The man page renders, with its sections.
    local man = sh_ok("MANWIDTH=80 man -l " .. q(prefix .. "/share/man/man1/poengine.1") .. " 2>/dev/null | col -b")
    assert.matches("NAME", man)
    assert.matches("poengine%s+%-%s+run Lua optimization flows", man)
    assert.matches("%-%-traceback", man)

    -- Bash completion offers the subcommands (asked of the binary) and a
    -- subcommand's options (read from its --help).
    local completion = q(prefix .. "/share/bash-completion/completions/poengine")
    local function complete(words)
      local n = select(2, words:gsub("%S+", "")) - 1
      return sh_ok(path .. "bash -c " .. q("source " .. completion .. "; COMP_WORDS=(" .. words
        .. "); COMP_CWORD=" .. n .. "; _poengine; printf '%s\\n' \"${COMPREPLY[@]}\""))
    end
    assert.matches("optimize\n", complete("poengine op"))
    assert.matches("dashboard\n", complete("poengine da"))
    assert.matches("%-%-cycles\n", complete("poengine optimize --cy"))

    -- pkg-config finds the C core from the prefix it was installed into, and
    -- a program linked against it runs.
    local pc = "PKG_CONFIG_PATH=" .. q(prefix .. "/lib/pkgconfig") .. " pkg-config"
    local flags = sh_ok(pc .. " --cflags --libs --static poengine"):gsub("\n", "")
    local prog = dir .. "/core_user.c"
    local f = assert(io.open(prog, "w"))
    f:write('#include "error.h"\n#include <stdio.h>\n#include <string.h>\n'
      .. 'int main(void) { const char *s = po_strerror(PO_ENOMEM); puts(s); return s == NULL; }\n')
    f:close()
    sh_ok("cc " .. q(prog) .. " " .. flags .. " -o " .. q(dir .. "/core_user"))
    local said = sh_ok(q(dir .. "/core_user"))
    assert.is_true(#said > 1)

    -- Stock LuaJIT loads the same engine from the installed module (which
    -- brings the searcher for the embedded Lua modules).
    local lua = sh_ok("LUA_CPATH=" .. q(prefix .. "/lib/lua/5.1/?.so") .. " luajit -e "
      .. q('require "poengine_core"; local po = require "poengine"; print(po.json.encode({ a = 1 }))'))
    assert.are.equal('{"a":1}\n', lua)
  end)

  it("refuses an unknown option with a clear message", function()
    local status, _, err = proc.sh(q(dir .. "/scripts/install") .. " --prefx /tmp/x")
    assert.are.equal(2, status)
    assert.matches("scripts/install: unknown option '%-%-prefx'", err)
  end)
end)
