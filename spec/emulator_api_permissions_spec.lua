-- Permissions over real HTTP, enforced for the caller's identity: the creator is OWNER and listed,
-- READER may get and generate, WRITER may also update, only OWNER deletes, manages permissions and
-- transfers ownership; grantee rules; corpora that exist implicitly; transferOwnership.
local helper = require "spec.helpers.emulator"

local emu

-- status, decoded body (nil when not JSON), raw body, headers; the key defaults to the first --api-key
local function api(method, path, body, key) return emu:api(method, path, body, key) end

local function create_model(id, key)
  local status, op = api("POST", "/v1beta3/tunedModels?tunedModelId=" .. id, {
    baseModel = "models/text-bison-001",
    tuningTask = { trainingData = { examples = { examples = { { textInput = "ping", output = "pong" } } } },
                   hyperparameters = { epochCount = 1, batchSize = 1 } } }, key)
  assert.equal(200, status)
  -- wait until ACTIVE (1 step of 10 ms)
  local deadline = os.time() + 20
  repeat
    local _, o = api("GET", "/v1beta3/" .. op.name, nil, key)
    if o.done then break end
  until os.time() > deadline
  return "tunedModels/" .. id
end

local function grant(parent, perm, key)
  return api("POST", "/v1beta3/" .. parent .. "/permissions", perm, key)
end

describe("emulator permissions", function()
  emu = helper.with_emulator{ "--api-key", "alice=alice@example.com", "--api-key", "bob=bob@example.com",
                              "--api-key", "carol=carol@example.com", "--api-key", "dave=dave@example.com",
                              tuning_step_ms = 10 }

  it("lists the creator's OWNER permission like any other", function()
    local m = create_model("owned")
    local status, body = api("GET", "/v1beta3/" .. m .. "/permissions")
    assert.equal(200, status)
    assert.equal(1, #body.permissions)
    local p = body.permissions[1]
    assert.truthy(p.name:find("^tunedModels/owned/permissions/[a-z0-9]+$"))
    assert.equal("USER", p.granteeType)
    assert.equal("alice@example.com", p.emailAddress)
    assert.equal("OWNER", p.role)
    local st2, got = api("GET", "/v1beta3/" .. p.name)
    assert.equal(200, st2)
    assert.same(p, got)
  end)

  it("creates, gets, updates and deletes a permission (seed examples' bodies)", function()
    local m = create_model("crud")
    local status, p, raw = grant(m, { granteeType = "USER", emailAddress = "bob@example.com", role = "READER" })
    assert.equal(200, status)
    assert.truthy(raw:find('^{\n  "name": "tunedModels/crud/permissions/[a-z0-9]+",\n  "granteeType": "USER",\n' ..
      '  "emailAddress": "bob@example.com",\n  "role": "READER"\n}\n$'))
    local st2, up = api("PATCH", "/v1beta3/" .. p.name .. "?updateMask=role", { role = "WRITER" })
    assert.equal(200, st2)
    assert.equal("WRITER", up.role)
    local _, list = api("GET", "/v1beta3/" .. m .. "/permissions")
    assert.equal(2, #list.permissions)
    local st3, _, raw3 = api("DELETE", "/v1beta3/" .. p.name)
    assert.equal(200, st3)
    assert.equal("{}\n", raw3)
    local st4, e4 = api("GET", "/v1beta3/" .. p.name)
    assert.equal(404, st4)
    assert.equal("NOT_FOUND", e4.error.status)
  end)

  it("enforces READER < WRITER < OWNER", function()
    local m = create_model("roles")
    grant(m, { granteeType = "USER", emailAddress = "bob@example.com", role = "READER" })
    grant(m, { granteeType = "USER", emailAddress = "carol@example.com", role = "WRITER" })
    -- READER: get and generate, nothing else
    assert.equal(200, (api("GET", "/v1beta3/" .. m, nil, "bob")))
    local gs, g = api("POST", "/v1beta3/" .. m .. ":generateText", { prompt = { text = "ping" } }, "bob")
    assert.equal(200, gs)
    assert.equal("pong", g.candidates[1].output)
    local us, ue = api("PATCH", "/v1beta3/" .. m .. "?updateMask=description", { description = "x" }, "bob")
    assert.equal(403, us)
    assert.equal("PERMISSION_DENIED", ue.error.status)
    -- WRITER: also update, but not delete or manage permissions
    local ws, w = api("PATCH", "/v1beta3/" .. m .. "?updateMask=description", { description = "by carol" }, "carol")
    assert.equal(200, ws)
    assert.equal("by carol", w.description)
    assert.equal(403, (api("DELETE", "/v1beta3/" .. m, nil, "carol")))
    assert.equal(403, (api("GET", "/v1beta3/" .. m .. "/permissions", nil, "carol")))
    assert.equal(403, (grant(m, { granteeType = "EVERYONE", role = "READER" }, "carol")))
    assert.equal(403, (api("POST", "/v1beta3/" .. m .. ":transferOwnership", { emailAddress = "carol@example.com" },
      "carol")))
    -- strangers: 403 with Google's recorded wording; the model is not listed for them
    local ds, de = api("GET", "/v1beta3/" .. m, nil, "dave")
    assert.equal(403, ds)
    assert.equal("You do not have permission to access tuned model " .. m, de.error.message)
    local _, dl = api("GET", "/v1beta3/tunedModels", nil, "dave")
    assert.is_nil(dl.tunedModels)
    assert.equal(403, (api("POST", "/v1beta3/" .. m .. ":generateText", { prompt = { text = "x" } }, "dave")))
    -- OWNER deletes
    assert.equal(200, (api("DELETE", "/v1beta3/" .. m)))
    assert.equal(404, (api("GET", "/v1beta3/" .. m, nil, "bob")))
  end)

  it("EVERYONE takes no emailAddress and makes the model readable by anyone", function()
    local m = create_model("public")
    local st, p = grant(m, { granteeType = "EVERYONE", role = "READER" })
    assert.equal(200, st)
    assert.is_nil(p.emailAddress)
    assert.equal(200, (api("GET", "/v1beta3/" .. m, nil, "dave")))
    local _, l = api("GET", "/v1beta3/tunedModels?filter=readers:everyone", nil, "dave")
    assert.equal(m, l.tunedModels[1].name)
    local bs, be = grant(m, { granteeType = "EVERYONE", emailAddress = "x@example.com", role = "READER" })
    assert.equal(400, bs)
    assert.equal("permission.email_address", be.error.details[1].fieldViolations[1].field)
  end)

  it("USER and GROUP need an emailAddress; role and granteeType are required; OWNER is not grantable", function()
    local m = create_model("rules")
    local s1, e1 = grant(m, { granteeType = "USER", role = "READER" })
    assert.equal(400, s1)
    assert.equal("* CreatePermissionRequest.permission.email_address: email_address is required for grantee_type USER",
      e1.error.message)
    assert.equal(400, (grant(m, { granteeType = "GROUP", role = "READER" })))
    assert.equal(200, (grant(m, { granteeType = "GROUP", emailAddress = "team@example.com", role = "READER" })))
    assert.equal(400, (grant(m, { emailAddress = "bob@example.com", role = "READER" })))
    assert.equal(400, (grant(m, { granteeType = "USER", emailAddress = "bob@example.com" })))
    assert.equal(400, (grant(m, { granteeType = "USER", emailAddress = "bob@example.com", role = "OWNER" })))
    assert.equal(400, (grant(m, { granteeType = "FRIEND", emailAddress = "bob@example.com", role = "READER" })))
    -- enums as numbers
    local s2, p2 = grant(m, '{"granteeType":1,"emailAddress":"bob@example.com","role":3}')
    assert.equal(200, s2)
    assert.equal("READER", p2.role)
    assert.equal(409, (grant(m, { granteeType = "USER", emailAddress = "bob@example.com", role = "WRITER" })))
    -- updateMask is required and only role may change
    assert.equal(400, (api("PATCH", "/v1beta3/" .. p2.name, { role = "WRITER" })))
    assert.equal(400, (api("PATCH", "/v1beta3/" .. p2.name .. "?updateMask=emailAddress", { role = "WRITER" })))
    -- the owner's permission cannot be edited or deleted directly
    local _, list = api("GET", "/v1beta3/" .. m .. "/permissions")
    local owner = list.permissions[1]
    assert.equal("OWNER", owner.role)
    local ds, de = api("DELETE", "/v1beta3/" .. owner.name)
    assert.equal(400, ds)
    assert.equal("FAILED_PRECONDITION", de.error.status)
  end)

  it("transferOwnership makes the grantee OWNER and the old owner WRITER", function()
    local m = create_model("moving")
    local st, body, raw = api("POST", "/v1beta3/" .. m .. ":transferOwnership", { emailAddress = "bob@example.com" })
    assert.equal(200, st)
    assert.same({}, body)
    assert.equal("{}\n", raw)
    local _, list = api("GET", "/v1beta3/" .. m .. "/permissions", nil, "bob")
    local roles = {}
    for _, p in ipairs(list.permissions) do roles[p.emailAddress] = p.role end
    assert.same({ ["alice@example.com"] = "WRITER", ["bob@example.com"] = "OWNER" }, roles)
    assert.equal(403, (api("DELETE", "/v1beta3/" .. m)))
    assert.equal(200, (api("PATCH", "/v1beta3/" .. m .. "?updateMask=description", { description = "d" })))
    local _, mine = api("GET", "/v1beta3/tunedModels?filter=owner:me", nil, "bob")
    assert.equal(m, mine.tunedModels[1].name)
    assert.equal(400, (api("POST", "/v1beta3/" .. m .. ":transferOwnership", {}, "bob")))
  end)

  it("pages permissions", function()
    local m = create_model("many")
    for _, who in ipairs{ "bob", "carol", "dave" } do
      grant(m, { granteeType = "USER", emailAddress = who .. "@example.com", role = "READER" })
    end
    local _, p1 = api("GET", "/v1beta3/" .. m .. "/permissions?pageSize=3")
    assert.equal(3, #p1.permissions)
    local _, p2 = api("GET", "/v1beta3/" .. m .. "/permissions?pageSize=3&pageToken=" .. p1.nextPageToken)
    assert.equal(1, #p2.permissions)
    assert.equal("dave@example.com", p2.permissions[1].emailAddress)
    assert.is_nil(p2.nextPageToken)
  end)

  it("404s for permissions of a tuned model that does not exist", function()
    local st, e = api("GET", "/v1beta3/tunedModels/none/permissions")
    assert.equal(404, st)
    assert.equal("Tuned model tunedModels/none does not exist.", e.error.message)
  end)

  describe("on corpora", function()
    it("creates the corpus implicitly, owned by the first identity that grants on it", function()
      local st, p = grant("corpora/my-corpus-id", { granteeType = "USER", emailAddress = "bob@example.com",
                                                     role = "READER" })
      assert.equal(200, st)
      assert.truthy(p.name:find("^corpora/my%-corpus%-id/permissions/[a-z0-9]+$"))
      local _, list = api("GET", "/v1beta3/corpora/my-corpus-id/permissions")
      assert.equal(2, #list.permissions)
      assert.equal("OWNER", list.permissions[1].role)
      assert.equal("alice@example.com", list.permissions[1].emailAddress)
      -- bob is only a reader: cannot manage permissions
      assert.equal(403, (api("GET", "/v1beta3/corpora/my-corpus-id/permissions", nil, "bob")))
      assert.equal(403, (grant("corpora/my-corpus-id", { granteeType = "EVERYONE", role = "READER" }, "bob")))
      -- update and delete like tuned models
      local us, up = api("PATCH", "/v1beta3/" .. p.name .. "?updateMask=role", { role = "WRITER" })
      assert.equal(200, us)
      assert.equal("WRITER", up.role)
      assert.equal(200, (api("GET", "/v1beta3/" .. p.name)))
      assert.equal(200, (api("DELETE", "/v1beta3/" .. p.name)))
      assert.equal(404, (api("GET", "/v1beta3/" .. p.name)))
    end)

    it("404s for a corpus nobody granted on, even after an invalid grant", function()
      local st, e = api("GET", "/v1beta3/corpora/unknown/permissions")
      assert.equal(404, st)
      assert.equal("NOT_FOUND", e.error.status)
      assert.equal(400, (grant("corpora/unknown", { granteeType = "USER", role = "READER" })))
      assert.equal(404, (api("GET", "/v1beta3/corpora/unknown/permissions")))
      -- so bob can still become its owner
      assert.equal(200, (grant("corpora/unknown", { granteeType = "EVERYONE", role = "READER" }, "bob")))
      local _, list = api("GET", "/v1beta3/corpora/unknown/permissions", nil, "bob")
      assert.equal("bob@example.com", list.permissions[1].emailAddress)
    end)
  end)
end)
