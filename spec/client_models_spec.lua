-- Models through the flat API and through model handles, against the emulator over HTTP.
local emulator = require("spec.helpers.emulator")
local gemini = require("gemini")

describe("client models", function()
  local emu = emulator.with_emulator { "--api-key", "k1=alice@example.com" }
  local client
  setup(function() client = emu:client { retry = false } end)

  it("list_models returns one decoded page and sends the key only in x-goog-api-key", function()
    local page, err = client:list_models { pageSize = 2 }
    assert.is_nil(err)
    assert.equal(2, #page.models)
    assert.equal("models/chat-bison-001", page.models[1].name)
    assert.is_string(page.nextPageToken)
    local req = emu:requests()[1]
    assert.equal("GET", req.method)
    assert.equal("/v1beta3/models", req.path)
    assert.equal("pageSize=2", req.query)
    assert.equal("k1", req.headers["x-goog-api-key"])
    assert.equal("", req.body)
    assert.matches("^lua%-gemini/" .. gemini.VERSION:gsub("%.", "%%.") .. " libcurl/", req.headers["user-agent"])
    assert.equal(require("gemini.client").default_user_agent(), req.headers["user-agent"])
  end)

  it("sends extra headers and the user agent given to gemini.new", function()
    local c = gemini.new { api_key = "k1", base_url = emu.url .. "/", headers = { ["x-extra"] = "1" },
                           user_agent = "my-app/2", retry = false }
    assert(c:get_model("text-bison-001"))
    local req = emu:requests()[1]
    assert.equal("1", req.headers["x-extra"])
    assert.equal("my-app/2", req.headers["user-agent"])
    assert.equal("/v1beta3/models/text-bison-001", req.path)
    c:close()
  end)

  it("client:call reaches any method by name, and a json codec can be plugged in", function()
    assert.equal("models/text-bison-001", assert(client:call("get_model", "text-bison-001")).name)
    assert.has_error(function() client:call("no_such_method") end)
    local cjson = require("cjson").new()
    local decoded = 0
    local c = gemini.new { api_key = "k1", base_url = emu.url, retry = false,
      json = { encode = cjson.encode, null = cjson.null,
               decode = function(s) decoded = decoded + 1; return cjson.decode(s) end } }
    local m = assert(c:get_model("text-bison-001"))
    assert.equal(1, decoded)
    assert.equal(8196, m.inputTokenLimit)
    if math.type then assert.equal("integer", math.type(m.inputTokenLimit)) end
    c:close()
  end)

  it("list_models without arguments sends no query", function()
    local page = assert(client:list_models())
    assert.is_true(#page.models >= 3)
    assert.equal("", emu:requests()[1].query)
  end)

  it("get_model decodes integers and floats and expands a short name", function()
    local m, err = client:get_model("text-bison-001")
    assert.is_nil(err)
    assert.equal("models/text-bison-001", m.name)
    assert.equal(8196, m.inputTokenLimit)
    assert.equal(1024, m.outputTokenLimit)
    if math.type then
      assert.equal("integer", math.type(m.inputTokenLimit))
      assert.equal("integer", math.type(m.topK))
    end
    assert.equal(40, m.topK)
    assert.is_true(math.abs(m.temperature - 0.7) < 1e-6)
    assert.same({ "generateText", "countTextTokens", "createTunedTextModel" }, m.supportedGenerationMethods)
    assert.equal("/v1beta3/models/text-bison-001", emu:requests()[1].path)
    local full = assert(client:get_model("models/chat-bison-001"))
    assert.equal("models/chat-bison-001", full.name)
  end)

  it("models iterates over every model across pages", function()
    local seen = {}
    for m in client:models { pageSize = 1 } do seen[#seen + 1] = m.name end
    local all = assert(client:list_models { pageSize = 1000 })
    assert.equal(#all.models, #seen)
    for i, m in ipairs(all.models) do assert.equal(m.name, seen[i]) end
    -- one request per page (plus the list above)
    assert.equal(#seen + 1, #emu:requests())
  end)

  it("get_model of an unknown model returns NOT_FOUND", function()
    local m, err = client:get_model("no-such-model")
    assert.is_nil(m)
    assert.equal(404, err.code)
    assert.equal("NOT_FOUND", err.status)
    assert.equal("GET", err.method)
    assert.equal("/v1beta3/models/no-such-model", err.path)
  end)

  describe("model handle", function()
    it("has the full name and gets the model", function()
      local h = client:model("text-bison-001")
      assert.equal("models/text-bison-001", h.name)
      assert.equal("gemini.model(models/text-bison-001)", tostring(h))
      local m = assert(h:get())
      assert.equal("models/text-bison-001", m.name)
      assert.equal(8196, m.inputTokenLimit)
    end)

    it("refuses a name of another collection", function()
      assert.has_error(function() client:model("tunedModels/x") end)
    end)
  end)
end)
