-- Authentication as Google's front end does it, over real HTTP: the key in x-goog-api-key or ?key=,
-- a Bearer token looked up like a key, no credentials (403), an unknown key (400 API_KEY_INVALID),
-- identities from --api-key KEY=EMAIL, and the single default identity without --api-key.
local helper = require "spec.helpers.emulator"

local NO_CREDENTIALS = "Method doesn't allow unregistered callers (callers without established identity). " ..
  "Please use API Key or other form of API consumer identity to call this API."

-- status, decoded body (nil when not JSON), raw body, headers
local function request(emu, method, path, headers, body) return emu:json(method, path, headers, body) end

describe("emulator authentication with --api-key", function()
  local emu = helper.with_emulator{ "--api-key", "k1=alice@example.com", "--api-key", "k2=bob@example.com",
                                    reset = false }

  it("accepts the key in the x-goog-api-key header", function()
    assert.equal(200, (request(emu, "GET", "/v1beta3/models", { ["x-goog-api-key"] = "k1" })))
  end)

  it("accepts the key in ?key=", function()
    assert.equal(200, (request(emu, "GET", "/v1beta3/models?key=k2")))
  end)

  it("accepts Authorization: Bearer with a configured key as the token", function()
    assert.equal(200, (request(emu, "GET", "/v1beta3/models", { Authorization = "Bearer k1" })))
  end)

  it("answers no credentials with Google's 403, exactly", function()
    local status, _, raw, hdrs = request(emu, "GET", "/v1beta3/models")
    assert.equal(403, status)
    assert.equal("application/json; charset=UTF-8", hdrs["content-type"])
    assert.equal('{\n  "error": {\n    "code": 403,\n    "message": "' .. NO_CREDENTIALS .. '",\n' ..
      '    "status": "PERMISSION_DENIED"\n  }\n}\n', raw)
    local st2 = request(emu, "GET", "/v1beta3/models?key=")
    assert.equal(403, st2)
  end)

  it("answers an unknown key with 400 INVALID_ARGUMENT and ErrorInfo API_KEY_INVALID", function()
    local status, body = request(emu, "GET", "/v1beta3/models?key=nope")
    assert.equal(400, status)
    assert.same({ error = { code = 400, message = "API key not valid. Please pass a valid API key.",
      status = "INVALID_ARGUMENT", details = { {
        ["@type"] = "type.googleapis.com/google.rpc.ErrorInfo", reason = "API_KEY_INVALID", domain = "googleapis.com",
        metadata = { service = "generativelanguage.googleapis.com" } } } } }, body)
    local st2, b2 = request(emu, "GET", "/v1beta3/models", { ["x-goog-api-key"] = "nope" })
    assert.equal(400, st2)
    assert.equal("API_KEY_INVALID", b2.error.details[1].reason)
  end)

  it("answers an unknown Bearer token with 401 UNAUTHENTICATED", function()
    local status, body = request(emu, "GET", "/v1beta3/models", { Authorization = "Bearer nope" })
    assert.equal(401, status)
    assert.equal("UNAUTHENTICATED", body.error.status)
  end)

  it("checks credentials before parsing the body", function()
    local status = request(emu, "POST", "/v1beta3/models/text-bison-001:generateText", {}, "{not json")
    assert.equal(403, status)
  end)

  it("maps each key to its identity (the owner of what it creates)", function()
    local create = helper.encode{ baseModel = "models/text-bison-001",
      tuningTask = { trainingData = { examples = { examples = { { textInput = "a", output = "b" } } } } } }
    local status, op = request(emu, "POST", "/v1beta3/tunedModels?tunedModelId=auth-owned",
      { ["x-goog-api-key"] = "k2" }, create)
    assert.equal(200, status)
    assert.equal("tunedModels/auth-owned", op.metadata.tunedModel)
    local _, perms = request(emu, "GET", "/v1beta3/tunedModels/auth-owned/permissions?key=k2")
    assert.equal("bob@example.com", perms.permissions[1].emailAddress)
    assert.equal("OWNER", perms.permissions[1].role)
    -- alice cannot see bob's model
    local st2 = request(emu, "GET", "/v1beta3/tunedModels/auth-owned?key=k1")
    assert.equal(403, st2)
  end)
end)

describe("emulator authentication without --api-key", function()
  local emu = helper.with_emulator{ reset = false }

  it("accepts any non-empty key as the one default identity", function()
    assert.equal(200, (request(emu, "GET", "/v1beta3/models?key=anything")))
    assert.equal(200, (request(emu, "GET", "/v1beta3/models", { ["x-goog-api-key"] = "other" })))
    local create = helper.encode{ baseModel = "models/text-bison-001",
      tuningTask = { trainingData = { examples = { examples = { { textInput = "a", output = "b" } } } } } }
    request(emu, "POST", "/v1beta3/tunedModels?tunedModelId=default-id&key=one", {}, create)
    -- another key is the same identity: it owns the model too
    local status, perms = request(emu, "GET", "/v1beta3/tunedModels/default-id/permissions?key=two")
    assert.equal(200, status)
    assert.equal("user@example.com", perms.permissions[1].emailAddress)
  end)

  it("still refuses a request without any key", function()
    assert.equal(403, (request(emu, "GET", "/v1beta3/models")))
  end)
end)
