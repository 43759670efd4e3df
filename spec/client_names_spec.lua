-- Resource names and query values as they reach the wire.
local emulator = require("spec.helpers.emulator")

describe("client names", function()
  local emu = emulator.with_emulator { "--api-key", "k1=alice@example.com" }
  local client
  setup(function() client = emu:client { retry = false } end)

  it("short names get their collection on the wire", function()
    assert(client:get_model("text-bison-001"))
    client:get_tuned_model("my-model")
    client:list_permissions("tunedModels/my-model")
    local j = emu:requests()
    assert.equal("/v1beta3/models/text-bison-001", j[1].path)
    assert.equal("/v1beta3/tunedModels/my-model", j[2].path)
    assert.equal("/v1beta3/tunedModels/my-model/permissions", j[3].path)
  end)

  it("handles expand short names", function()
    assert.equal("models/text-bison-001", client:model("text-bison-001").name)
    assert.equal("tunedModels/abc", client:tuned_model("abc").name)
    assert.equal("corpora/c-1", client:corpus("c-1").name)
    assert.equal("tunedModels/abc/permissions/p", client:tuned_model("abc"):permission("p").name)
  end)

  local hostile = {
    "models/../tunedModels/x", "models/x/../../y", "models/x?alt=media", "models/x#frag", "models/x y",
    "models/x\r\nHost: evil", "models/x%2F..", "models/x:generateText", "models/x/permissions", "models//x",
    "/models/x", "http://evil/models/x", "models/x\0",
  }
  for _, name in ipairs(hostile) do
    it("refuses " .. string.format("%q", name) .. " before any request", function()
      local ok, err = pcall(client.get_model, client, name)
      assert.is_false(ok)
      assert.matches("bad argument #1 to 'get_model'", err, 1, true)
      local ok2 = pcall(client.model, client, name)
      assert.is_false(ok2)
      local ok3 = pcall(client.generate_text, client, name, { prompt = { text = "x" } })
      assert.is_false(ok3)
      assert.equal(0, #emu:requests())
    end)
  end

  it("refuses hostile permission ids under a handle", function()
    local tm = client:tuned_model("abc")
    for _, id in ipairs({ "../x", "a?b", "a b", "" }) do
      assert.is_false((pcall(tm.permission, tm, id)))
    end
  end)

  it("percent-encodes query values", function()
    client:list_tuned_models { filter = "owner:me & readers:everyone", pageToken = "a/b+c=" }
    local q = emu:requests()[1].query
    assert.equal("pageToken=a%2Fb%2Bc%3D&filter=owner%3Ame%20%26%20readers%3Aeveryone", q)
  end)

  it("keeps an operation name whole", function()
    local _, err = client:get_operation("tunedModels/abc/operations/xyz")
    assert.equal("/v1beta3/tunedModels/abc/operations/xyz", emu:requests()[1].path)
    assert.equal("NOT_FOUND", err.status)
    assert.is_false((pcall(client.get_operation, client, "tunedModels/abc")))
    assert.is_false((pcall(client.get_operation, client, "operations/xyz")))
  end)
end)
