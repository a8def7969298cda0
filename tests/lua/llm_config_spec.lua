-- Configuration the way the vendors' own tools read it: OPENAI_BASE_URL,
-- ANTHROPIC_BASE_URL and OLLAMA_HOST where the keys are read (an explicit
-- base_url wins), and `poengine optimize --provider --model --base-url`,
-- the real binary reaching the test server through the variable and
-- through the flag, with the /v1 hint when the URL lacks it.
local po = require "poengine"
local proc = require "tests.tools.proc"
local llm_server = require "tests.tools.llm_server"

local q = proc.quote
local server = llm_server.for_spec(setup, teardown, before_each)
local dir

before_each(function()
  dir = proc.tempdir()
end)

after_each(function()
  proc.rmdir(dir)
end)

-- Runs the poengine binary with a clean LLM environment plus vars (a shell
-- prefix such as "OPENAI_BASE_URL=..."): status, stdout, stderr.
local function poengine(vars, args)
  return proc.sh("env -u OPENAI_API_KEY -u ANTHROPIC_API_KEY -u OLLAMA_HOST -u OPENAI_BASE_URL -u ANTHROPIC_BASE_URL "
    .. "POENGINE_HOME=" .. q(dir .. "/home") .. " " .. vars .. " " .. q(po.executable()) .. " " .. args)
end

-- A script that asks the kind's provider (no base_url given) and prints
-- the reply's text, or the error.
local function ask(kind, extra)
  local path = dir .. "/ask.lua"
  local f = assert(io.open(path, "w"))
  f:write(([[
local p = po.llm.provider(%q, { model = "m", api_key = "k" %s })
local res, err = p:complete { prompt = "via env" }
print(res and res.text or err)
]]):format(kind, extra or ""))
  f:close()
  return path
end

describe("provider: base URLs from the environment", function()
  local cases = {
    { "openai", "OPENAI_BASE_URL", "/v1" },
    { "anthropic", "ANTHROPIC_BASE_URL", "" },
    { "ollama", "OLLAMA_HOST", "" },
  }
  for _, c in ipairs(cases) do
    it(c[1] .. " reads " .. c[2], function()
      local status, out, err = poengine(c[2] .. "=" .. q(server.url .. c[3]), q(ask(c[1])))
      assert.are.equal(0, status, err)
      assert.are.equal("echo: via env\n", out)
      assert.are.equal(1, server:stats().requests)
    end)
  end

  it("OLLAMA_HOST may be a bare host:port", function()
    local status, out, err = poengine("OLLAMA_HOST=" .. q(server.url:gsub("^http://", "")), q(ask("ollama")))
    assert.are.equal(0, status, err)
    assert.are.equal("echo: via env\n", out)
  end)

  it("OLLAMA_HOST as a bare host gets Ollama's port, as Ollama's own client reads it", function()
    for host, want in pairs { ["gpu-box"] = "http://gpu-box:11434", ["gpu-box:8080"] = "http://gpu-box:8080",
      ["https://ollama.example"] = "https://ollama.example" } do
      local status, out, err = poengine("OLLAMA_HOST=" .. q(host),
        "-e " .. q('print(po.llm.provider("ollama", { model = "m" }).base_url)'))
      assert.are.equal(0, status, err)
      assert.are.equal(want .. "\n", out)
    end
  end)

  it("an explicit base_url wins over the variable", function()
    local status, out, err = poengine("OPENAI_BASE_URL=http://127.0.0.1:9/v1",
      q(ask("openai", (", base_url = %q"):format(server.url .. "/v1"))))
    assert.are.equal(0, status, err)
    assert.are.equal("echo: via env\n", out)
  end)
end)

describe("poengine optimize: the provider from the command line", function()
  -- A task that asks an LLM once (its reply, the server's echo, holds no
  -- code: the cycle has no candidate, which is all this needs).
  local function task()
    assert(os.execute("mkdir -p " .. q(dir .. "/w")) == 0)
    local f = assert(io.open(dir .. "/w/notes.txt", "w"))
    f:write("x\n")
    f:close()
    local path = dir .. "/w/task.lua"
    f = assert(io.open(path, "w"))
    f:write([[
return {
  id = "config-spec", workdir = ".", target_files = { "notes.txt" }, candidates_per_cycle = 1,
  objective = { validator = po.validate.benchmark { argv = { "true" } } },
  budget = { cycles = 1 },
}
]])
    f:close()
    return path
  end

  local function optimize(vars, flags)
    return poengine(vars, "optimize " .. q(task()) .. " --output " .. q(dir .. "/run") .. " " .. flags)
  end

  it("reaches an OpenAI-compatible server through OPENAI_BASE_URL", function()
    local status, out, err = optimize("OPENAI_BASE_URL=" .. q(server.url .. "/v1"), "--model via-env")
    assert.are.equal(0, status, err .. out)
    local st = server:stats()
    assert.are.equal(1, st.requests)
    assert.are.equal(1, st.by_path["/v1/chat/completions"])
    assert.are.equal(1, st.by_model["via-env"])
    assert.is_nil(st.last_headers.authorization) -- no key in the environment: none sent
  end)

  it("reaches it through --provider, --model and --base-url", function()
    local status, out, err = optimize("OPENAI_API_KEY=sk-config-SECRET-1618",
      "--provider openai --model via-flag --base-url " .. q(server.url .. "/v1"))
    assert.are.equal(0, status, err .. out)
    local st = server:stats()
    assert.are.equal(1, st.by_model["via-flag"])
    assert.are.equal("Bearer sk-config-SECRET-1618", st.last_headers.authorization)
  end)

  it("reaches an Azure OpenAI deployment: --provider azure, the deployment as --model", function()
    local status, out, err = optimize("AZURE_OPENAI_API_KEY=az-config-SECRET-2718",
      "--provider azure --model my-dep --base-url " .. q(server.url))
    assert.are.equal(0, status, err .. out)
    local st = server:stats()
    assert.are.equal(1, st.by_path["/openai/deployments/my-dep/chat/completions?api-version=2024-10-21"])
    assert.are.equal("az-config-SECRET-2718", st.last_headers["api-key"])
    assert.is_nil((out .. err):find("SECRET", 1, true)) -- the key in no output
  end)

  it("takes --base-url alone as an OpenAI-compatible server", function()
    local status, out, err = optimize("", "--model alone --base-url " .. q(server.url .. "/v1"))
    assert.are.equal(0, status, err .. out)
    assert.are.equal(1, server:stats().by_model["alone"])
  end)

  it("says 'did you mean …/v1?' when the URL lacks the version", function()
    local _, out, err = optimize("", "--model m --base-url " .. q(server.url))
    assert.matches("HTTP 404[^\n]*%(did you mean " .. server.url:gsub("%p", "%%%0") .. "/v1%?%)", out .. err)
  end)

  it("refuses an unknown provider and a URL that is not one, naming them", function()
    local status, _, err = optimize("", "--provider openia")
    assert.are.equal(2, status)
    assert.matches("unknown provider 'openia' %(openai, anthropic, ollama, azure%)", err)
    status, _, err = optimize("", "--base-url localhost:8000/v1")
    assert.are.equal(2, status)
    assert.matches("%-%-base%-url needs an http:// or https:// URL, got 'localhost:8000/v1'", err)
    assert.are.equal(0, server:stats().requests)
  end)
end)
