-- The rockspec and the schema are generated from the tree and the protos: fail when either is stale.
local function read(cmd)
  local p = assert(io.popen(cmd))
  local out = p:read("*a")
  p:close()
  return out
end

local function file(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

describe("generated files", function()
  it("the rockspec lists every Lua module, every C source and both commands", function()
    local fresh = read("lua5.4 tools/gen_rockspec.lua")
    assert.are.equal(fresh, file("lua-gemini-scm-1.rockspec"),
      "lua-gemini-scm-1.rockspec is stale: run `make rockspec`")
    assert.truthy(fresh:find('["gemini"] = "lua/gemini/init.lua"', 1, true))
    assert.truthy(fresh:find('"src/client.c"', 1, true))
    assert.truthy(fresh:find('["gemini-emulator"] = "bin/gemini-emulator"', 1, true))
  end)

  it("lua/gemini/schema.lua is what tools/gen_schema.lua makes of the protos", function()
    local protos = "../shared/reference/protos"
    if not io.open(protos .. "/text_service.proto") then
      pending("the shared protos are not beside this checkout")
      return
    end
    assert.are.equal(read("lua5.4 tools/gen_schema.lua " .. protos), file("lua/gemini/schema.lua"),
      "lua/gemini/schema.lua is stale: run `make schema`")
  end)
end)
