-- The emulator's model catalogue over real HTTP: models.get/list with Google's values, field order,
-- default omission, paging with opaque tokens, unknown models, enum encoding and output headers.
local helper = require "spec.helpers.emulator"

local emu

-- status, decoded body (nil when not JSON), raw body, headers; the key defaults to the first --api-key
local function api(method, path, body, key) return emu:api(method, path, body, key) end

describe("emulator models API", function()
  emu = helper.with_emulator{ "--api-key", "k1=alice@example.com", reset = false }

  it("lists the v1beta3 catalogue with Google's values, in Google's order", function()
    local status, body, raw, hdrs = api("GET", "/v1beta3/models")
    assert.equal(200, status)
    assert.equal("application/json; charset=UTF-8", hdrs["content-type"])
    local names = {}
    for i, m in ipairs(body.models) do names[i] = m.name end
    assert.same({ "models/chat-bison-001", "models/text-bison-001", "models/embedding-gecko-001",
                  "models/gemini-1.5-flash-001" }, names)
    assert.is_nil(body.nextPageToken)
    local text = body.models[2]
    assert.same({ "generateText", "countTextTokens", "createTunedTextModel" }, text.supportedGenerationMethods)
    assert.equal(8196, text.inputTokenLimit)
    assert.equal(1024, text.outputTokenLimit)
    assert.equal(0.7, text.temperature)
    assert.equal(0.95, text.topP)
    assert.equal(40, text.topK)
    local chat = body.models[1]
    assert.equal(4096, chat.inputTokenLimit)
    assert.equal(0.25, chat.temperature)
    local gecko = body.models[3]
    assert.same({ "embedText", "countTextTokens" }, gecko.supportedGenerationMethods)
    assert.equal(1, gecko.outputTokenLimit)
    assert.is_nil(gecko.temperature) -- unset proto3 optional: omitted
    assert.is_nil(gecko.baseModelId) -- empty string: omitted
    -- pretty-printed with 2 spaces
    assert.truthy(raw:find('^{\n  "models": %[\n    {\n      "name": "models/chat%-bison%-001"'))
  end)

  it("gets one model exactly as Google printed it (field-number order, no defaults)", function()
    local status, _, raw = api("GET", "/v1beta3/models/text-bison-001")
    assert.equal(200, status)
    assert.equal([[{
  "name": "models/text-bison-001",
  "version": "001",
  "displayName": "Text Bison",
  "description": "Model targeted for text generation.",
  "inputTokenLimit": 8196,
  "outputTokenLimit": 1024,
  "supportedGenerationMethods": [
    "generateText",
    "countTextTokens",
    "createTunedTextModel"
  ],
  "temperature": 0.7,
  "topP": 0.95,
  "topK": 40
}
]], raw)
  end)

  it("serves the gemini-1.5-flash-001 model the seed's examples call", function()
    local status, body = api("GET", "/v1beta3/models/gemini-1.5-flash-001")
    assert.equal(200, status)
    assert.equal("models/gemini-1.5-flash-001", body.name)
    local set = {}
    for _, m in ipairs(body.supportedGenerationMethods) do set[m] = true end
    assert.is_true(set.generateMessage and set.countMessageTokens and set.createTunedTextModel)
  end)

  it("answers an unknown model with Google's 404", function()
    local status, body = api("GET", "/v1beta3/models/nope-001")
    assert.equal(404, status)
    assert.same({ error = { code = 404, status = "NOT_FOUND",
      message = "models/nope-001 is not found for API version v1beta3, or is not supported for getModel. " ..
        "Call ListModels to see the list of available models and their supported methods." } }, body)
  end)

  it("pages with opaque tokens and rejects a token reused with other parameters", function()
    local status, p1 = api("GET", "/v1beta3/models?pageSize=3")
    assert.equal(200, status)
    assert.equal(3, #p1.models)
    assert.is_string(p1.nextPageToken)
    assert.is_nil(tonumber(p1.nextPageToken)) -- opaque, not an offset
    local _, p2 = api("GET", "/v1beta3/models?pageSize=3&pageToken=" .. p1.nextPageToken)
    assert.equal(1, #p2.models)
    assert.equal("models/gemini-1.5-flash-001", p2.models[1].name)
    assert.is_nil(p2.nextPageToken)
    -- a token from another list
    local _, tl = api("GET", "/v1beta3/tunedModels?pageToken=" .. p1.nextPageToken)
    assert.equal("INVALID_ARGUMENT", tl.error.status)
    local st3 = api("GET", "/v1beta3/models?pageToken=garbage")
    assert.equal(400, st3)
    local st4, b4 = api("GET", "/v1beta3/models?pageSize=-1")
    assert.equal(400, st4)
    assert.equal("INVALID_ARGUMENT", b4.error.status)
    local st5, b5 = api("GET", "/v1beta3/models?pageSize=abc")
    assert.equal(400, st5)
    assert.equal("Invalid value at 'page_size' (TYPE_INT32), \"abc\"", b5.error.message)
    -- above the maximum: clamped, not an error
    local st6, b6 = api("GET", "/v1beta3/models?pageSize=5000")
    assert.equal(200, st6)
    assert.equal(4, #b6.models)
  end)

  it("accepts snake_case query names and system parameters", function()
    local status, body = api("GET", "/v1beta3/models?page_size=1&prettyPrint=false&fields=models.name&alt=json")
    assert.equal(200, status)
    assert.equal(1, #body.models)
  end)

  it("prints compact JSON with prettyPrint=false", function()
    local _, _, raw = api("GET", "/v1beta3/models/chat-bison-001?prettyPrint=false")
    assert.falsy(raw:find("\n  "))
    assert.truthy(raw:find('^{"name":"models/chat%-bison%-001","version":"001"'))
  end)

  it("rejects unknown query parameters like Google's front end", function()
    local status, body = api("GET", "/v1beta3/models?foo=1")
    assert.equal(400, status)
    local msg = "Invalid JSON payload received. Unknown name \"foo\": Cannot bind query parameter. " ..
      "Field 'foo' could not be found in request message."
    assert.equal(msg, body.error.message)
    assert.same({ { description = msg } }, body.error.details[1].fieldViolations)
    assert.equal("type.googleapis.com/google.rpc.BadRequest", body.error.details[1]["@type"])
  end)

  it("answers unknown paths with the front end's HTML 404", function()
    local status, hdrs, raw = emu:request{ method = "GET", path = "/v1beta3/nothing/here?key=k1" }
    assert.equal(404, status)
    assert.truthy(hdrs["content-type"]:find("text/html", 1, true))
    assert.truthy(raw:find("The requested URL <code>/v1beta3/nothing/here</code> was not found on this server.",
      1, true))
    local st2 = emu:request{ method = "DELETE", path = "/v1beta3/models/text-bison-001?key=k1" }
    assert.equal(404, st2)
  end)
end)

describe("emulator app (in process): models", function()
  local App = require "gemini.emulator.app"
  it("routes every method to its REST name", function()
    local app = App.new{}
    assert.equal("listModels", app:route("GET", "/v1beta3/models"))
    assert.equal("getModel", app:route("GET", "/v1beta3/models/text-bison-001"))
    assert.equal("generateText", app:route("POST", "/v1beta3/models/text-bison-001:generateText"))
    assert.equal("generateText", app:route("POST", "/v1beta3/tunedModels/x:generateText"))
    assert.equal("generateMessage", app:route("POST", "/v1beta3/models/chat-bison-001:generateMessage"))
    assert.equal("countMessageTokens", app:route("POST", "/v1beta3/models/chat-bison-001:countMessageTokens"))
    assert.equal("countTextTokens", app:route("POST", "/v1beta3/models/text-bison-001:countTextTokens"))
    assert.equal("embedText", app:route("POST", "/v1beta3/models/embedding-gecko-001:embedText"))
    assert.equal("batchEmbedText", app:route("POST", "/v1beta3/models/embedding-gecko-001:batchEmbedText"))
    assert.equal("listTunedModels", app:route("GET", "/v1beta3/tunedModels"))
    assert.equal("createTunedModel", app:route("POST", "/v1beta3/tunedModels"))
    assert.equal("getTunedModel", app:route("GET", "/v1beta3/tunedModels/x"))
    assert.equal("updateTunedModel", app:route("PATCH", "/v1beta3/tunedModels/x"))
    assert.equal("deleteTunedModel", app:route("DELETE", "/v1beta3/tunedModels/x"))
    assert.equal("transferOwnership", app:route("POST", "/v1beta3/tunedModels/x:transferOwnership"))
    for _, parent in ipairs{ "tunedModels/x", "corpora/c" } do
      assert.equal("createPermission", app:route("POST", "/v1beta3/" .. parent .. "/permissions"))
      assert.equal("listPermissions", app:route("GET", "/v1beta3/" .. parent .. "/permissions"))
      assert.equal("getPermission", app:route("GET", "/v1beta3/" .. parent .. "/permissions/p"))
      assert.equal("updatePermission", app:route("PATCH", "/v1beta3/" .. parent .. "/permissions/p"))
      assert.equal("deletePermission", app:route("DELETE", "/v1beta3/" .. parent .. "/permissions/p"))
    end
    for _, v in ipairs{ "v1beta3", "v1" } do
      assert.equal("getOperation", app:route("GET", "/" .. v .. "/tunedModels/x/operations/o"))
      assert.equal("listOperations", app:route("GET", "/" .. v .. "/tunedModels/x/operations"))
    end
    assert.is_nil(app:route("GET", "/v1beta3/foo"))
    assert.is_nil(app:route("PUT", "/v1beta3/models"))
    assert.is_nil(app:route("GET", "/v1/models"))
  end)
end)
