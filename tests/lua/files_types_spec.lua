-- po.files.stat and po.files.list name every kind of entry: a device is
-- "other", a link is a link (never followed).
local po = require "poengine"

describe("po.files entry types", function()
  it("calls a device 'other' and a link 'link'", function()
    assert.are.equal("other", po.files.stat("/dev/null").type)
    local dir = os.tmpname()
    os.remove(dir)
    assert(po.run_sync { argv = { "sh", "-c", 'mkdir "$1" && ln -s /dev/null "$1/l" && mkfifo "$1/p"', "sh", dir } }.status == "ok")
    local types = {}
    for _, e in ipairs(assert(po.files.list(dir))) do
      types[e.name] = e.type
    end
    assert.are.same({ l = "link", p = "other" }, types)
    assert(po.run_sync { argv = { "rm", "-rf", dir } }.status == "ok")
  end)
end)
