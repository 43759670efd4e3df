-- Permissions on tunedModels/* and corpora/*, and transfer_ownership, against the emulator.
local emulator = require("spec.helpers.emulator")

describe("client permissions", function()
  local emu = emulator.with_emulator { "--api-key", "k1=alice@example.com", "--api-key", "k2=bob@example.com",
                                      "--tuning-step-ms", "5" }
  local alice, bob
  setup(function()
    alice = emu:client { retry = false }
    bob = emu:client { api_key = "k2", retry = false }
  end)
  before_each(function()
    local op = assert(alice:create_tuned_model({
      displayName = "shared", baseModel = "models/text-bison-001",
      tuningTask = { trainingData = { examples = { examples = { { textInput = "a", output = "b" } } } } },
    }, { tunedModelId = "shared" }))
    assert(op:wait { interval = 0.01 })
  end)

  it("create, get, list, update and delete on a tuned model", function()
    local _, err0 = bob:get_tuned_model("shared")
    assert.equal("PERMISSION_DENIED", err0.status)

    local p = assert(alice:create_permission("tunedModels/shared",
      { granteeType = "USER", emailAddress = "bob@example.com", role = "READER" }))
    local req = emu:last_request()
    assert.equal("POST", req.method)
    assert.equal("/v1beta3/tunedModels/shared/permissions", req.path)
    assert.equal('{"granteeType":"USER","emailAddress":"bob@example.com","role":"READER"}', req.body)
    assert.matches("^tunedModels/shared/permissions/[%w-]+$", p.name)
    assert.equal("READER", p.role)
    assert.equal("USER", p.granteeType)

    assert.equal("tunedModels/shared", assert(bob:get_tuned_model("shared")).name)

    local got = assert(alice:get_permission(p.name))
    assert.equal("bob@example.com", got.emailAddress)

    local page = assert(alice:list_permissions("tunedModels/shared", { pageSize = 1 }))
    assert.equal("pageSize=1", emu:last_request().query)
    assert.equal(1, #page.permissions)
    assert.is_string(page.nextPageToken)
    local all = {}
    for x in alice:permissions("tunedModels/shared", { pageSize = 1 }) do all[#all + 1] = x.role end
    table.sort(all)
    assert.same({ "OWNER", "READER" }, all)

    local up = assert(alice:update_permission(p.name, { role = "WRITER" }))
    assert.equal("PATCH", emu:last_request().method)
    assert.equal("updateMask=role", emu:last_request().query)
    assert.equal('{"role":"WRITER"}', emu:last_request().body)
    assert.equal("WRITER", up.role)

    assert.is_true(alice:delete_permission(p.name))
    assert.equal("DELETE", emu:last_request().method)
    local gone, err = alice:get_permission(p.name)
    assert.is_nil(gone)
    assert.equal("NOT_FOUND", err.status)
    local _, err2 = bob:get_tuned_model("shared")
    assert.equal("PERMISSION_DENIED", err2.status)
  end)

  it("works the same on corpora", function()
    local p = assert(alice:create_permission("corpora/my-corpus",
      { granteeType = "GROUP", emailAddress = "team@example.com", role = "READER" }))
    assert.equal("/v1beta3/corpora/my-corpus/permissions", emu:last_request().path)
    assert.matches("^corpora/my%-corpus/permissions/", p.name)
    assert.equal("READER", assert(alice:get_permission(p.name)).role)
    local n = 0
    for _ in alice:permissions("corpora/my-corpus") do n = n + 1 end
    assert.is_true(n >= 1)
    assert.equal("WRITER", assert(alice:update_permission(p.name, { role = "WRITER" }, { updateMask = "role" })).role)
    assert.is_true(alice:delete_permission(p.name))
  end)

  it("through tuned model, corpus and permission handles", function()
    local tm = alice:tuned_model("shared")
    local p = assert(tm:create_permission { granteeType = "USER", emailAddress = "bob@example.com", role = "READER" })
    local id = p.name:match("([^/]+)$")
    local ph = tm:permission(id)
    assert.equal(p.name, ph.name)
    assert.equal("READER", assert(ph:get()).role)
    assert.equal("WRITER", assert(ph:update { role = "WRITER" }).role)
    assert.is_true(#assert(tm:list_permissions()).permissions >= 2)
    local n = 0
    for _ in tm:permissions() do n = n + 1 end
    assert.equal(2, n)
    assert.is_true(ph:delete())

    local corpus = alice:corpus("c1")
    assert.equal("corpora/c1", corpus.name)
    local cp = assert(corpus:create_permission { granteeType = "EVERYONE", role = "READER" })
    local listed = #assert(corpus:list_permissions()).permissions
    assert.is_true(listed >= 1)
    local m = 0
    for _ in corpus:permissions() do m = m + 1 end
    assert.equal(listed, m)
    local cph = corpus:permission(cp.name)
    assert.equal("READER", assert(cph:get()).role)
    assert.is_true(cph:delete())
    assert.has_error(function() corpus:permission("tunedModels/shared/permissions/x") end)
    assert.equal(cp.name, alice:permission(cp.name).name)
  end)

  it("transfer_ownership moves ownership and returns true", function()
    assert(alice:create_permission("tunedModels/shared",
      { granteeType = "USER", emailAddress = "bob@example.com", role = "READER" }))
    assert.is_true(alice:transfer_ownership("tunedModels/shared", { emailAddress = "bob@example.com" }))
    assert.equal("/v1beta3/tunedModels/shared:transferOwnership", emu:last_request().path)
    assert.equal('{"emailAddress":"bob@example.com"}', emu:last_request().body)
    -- alice is no longer the owner: she cannot delete it; bob can
    local ok, err = alice:delete_tuned_model("shared")
    assert.is_nil(ok)
    assert.equal("PERMISSION_DENIED", err.status)
    assert.is_true(bob:tuned_model("shared"):transfer_ownership { emailAddress = "alice@example.com" })
    assert.is_true(alice:delete_tuned_model("shared"))
  end)
end)
