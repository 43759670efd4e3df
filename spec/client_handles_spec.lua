-- Resource handles: userdata with .name, tostring, equality, every method, and the callback form.
local emulator = require("spec.helpers.emulator")

describe("client handles", function()
  local emu = emulator.with_emulator { "--api-key", "k1=alice@example.com", "--tuning-step-ms", "5" }
  local client
  setup(function() client = emu:client { retry = false } end)

  local METHODS = {
    model = { "get", "generate_text", "generate_message", "count_message_tokens", "count_text_tokens",
              "embed_text", "batch_embed_text" },
    tuned_model = { "get", "update", "delete", "transfer_ownership", "generate_text", "create_permission",
                    "list_permissions", "permissions", "permission", "operations" },
    corpus = { "create_permission", "list_permissions", "permissions", "permission" },
    permission = { "get", "update", "delete" },
  }

  it("are userdata with the methods of the issue", function()
    local hs = {
      model = client:model("text-bison-001"), tuned_model = client:tuned_model("t"), corpus = client:corpus("c"),
      permission = client:permission("corpora/c/permissions/p"),
    }
    for kind, list in pairs(METHODS) do
      assert.equal("userdata", type(hs[kind]))
      for _, m in ipairs(list) do
        assert.is_function(hs[kind][m], kind .. ":" .. m)
      end
    end
    assert.equal("gemini.tunedModel(tunedModels/t)", tostring(hs.tuned_model))
    assert.equal("corpora/c/permissions/p", hs.permission.name)
  end)

  it("compare equal by name", function()
    assert.equal(client:model("text-bison-001"), client:model("models/text-bison-001"))
    assert.are_not.equal(client:model("text-bison-001"), client:model("chat-bison-001"))
  end)

  it("give the same results as the flat API", function()
    local h = client:model("text-bison-001")
    assert.same(assert(client:get_model("text-bison-001")), assert(h:get()))
    assert.same(assert(client:count_text_tokens("text-bison-001", { prompt = { text = "a b c" } })),
      assert(h:count_text_tokens { prompt = { text = "a b c" } }))
    assert.same(assert(client:generate_text("text-bison-001", { prompt = { text = "same" } })),
      assert(h:generate_text { prompt = { text = "same" } }))
  end)

  it("take a callback as last argument and run it from poll/run", function()
    local h = client:model("text-bison-001")
    local got, gerr
    local req = h:get(function(res, err) got, gerr = res, err end)
    assert.is_false(req:done())
    assert.is_nil(got)
    client:run()
    assert.is_true(req:done())
    assert.is_nil(gerr)
    assert.equal("models/text-bison-001", got.name)
    -- a method whose arguments are all optional takes the callback alone
    local page
    client:list_models(function(res) page = res end)
    client:run()
    assert.is_true(#page.models >= 3)
    -- flat form, several at once; results equal the blocking ones
    local results = {}
    for i = 1, 3 do
      client:count_text_tokens("text-bison-001", { prompt = { text = string.rep("x ", i) } },
        function(res) results[i] = res.tokenCount end)
    end
    while client:poll(0.5) > 0 do end
    for i = 1, 3 do
      local blocking = assert(client:count_text_tokens("text-bison-001", { prompt = { text = string.rep("x ", i) } }))
      assert.equal(blocking.tokenCount, results[i])
    end
  end)

  it("request handles wait and cancel", function()
    local req = client:get_model("chat-bison-001", function() end)
    local res = assert(req:wait())
    assert.equal("models/chat-bison-001", res.name)
    local cancelled
    local r2 = client:get_model("chat-bison-001", function(_, err) cancelled = err end)
    assert.is_true(r2:cancel())
    client:run()
    assert.equal("CANCELLED", cancelled.status)
    assert(client:get_model("chat-bison-001"))
  end)

  it("errors in callbacks propagate out of run with a traceback", function()
    client:get_model("text-bison-001", function() error("boom in callback") end)
    local ok, err = pcall(client.run, client)
    assert.is_false(ok)
    assert.matches("boom in callback", err, 1, true)
    assert.matches("traceback", err, 1, true)
    assert(client:get_model("text-bison-001"))
  end)
end)
