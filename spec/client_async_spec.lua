-- The callback form: requests overlap on one client, results equal the blocking ones, poll never blocks.
local emulator = require("spec.helpers.emulator")
local gemini = require("gemini")
local unpack = table.unpack or unpack  -- luacheck: ignore 143

describe("client callbacks", function()
  local emu = emulator.with_emulator { "--api-key", "k1=alice@example.com", "--tuning-step-ms", "0",
                                      stats_reset = true }
  local client
  setup(function() client = emu:client { retry = false, max_in_flight = 4 } end)

  it("overlap up to max_in_flight, the rest queue in order", function()
    local slow = emulator.start { "--api-key", "k1=alice@example.com", "--latency", "200" }
    local c = gemini.new { api_key = "k1", base_url = slow.url, retry = false, max_in_flight = 4 }
    local order = {}
    for i = 1, 10 do
      c:count_text_tokens("text-bison-001", { prompt = { text = string.rep("w ", i) } }, function(res, err)
        assert.is_nil(err)
        order[#order + 1] = { i, res.tokenCount }
      end)
    end
    assert.equal(10, c:poll(0))
    c:run()
    assert.equal(10, #order)
    local stats = slow:stats()
    assert.equal(4, stats.maxInFlight)
    c:close()
    slow:stop()
  end)

  it("give exactly what the blocking calls give, for every method", function()
    local op = assert(client:create_tuned_model({ displayName = "cb", baseModel = "models/text-bison-001",
      tuningTask = { trainingData = { examples = { examples = { { textInput = "a", output = "b" } } } } } },
      { tunedModelId = "cb" }))
    assert(op:wait { interval = 0.01 })
    local perm = assert(client:create_permission("tunedModels/cb",
      { granteeType = "USER", emailAddress = "bob@example.com", role = "READER" }))
    local calls = {
      { "list_models", { pageSize = 2 } },
      { "get_model", "text-bison-001" },
      { "generate_text", "text-bison-001", { prompt = { text = "same" } } },
      { "generate_message", "chat-bison-001", { prompt = { messages = { { content = "hi" } } } } },
      { "count_message_tokens", "chat-bison-001", { prompt = { messages = { { content = "hi" } } } } },
      { "count_text_tokens", "text-bison-001", { prompt = { text = "a b" } } },
      { "embed_text", "embedding-gecko-001", { text = "a" } },
      { "batch_embed_text", "embedding-gecko-001", { texts = { "a", "b" } } },
      { "list_tuned_models", {} },
      { "get_tuned_model", "cb" },
      { "list_permissions", "tunedModels/cb", {} },
      { "get_permission", perm.name },
      { "get_model", "no-such-model" },
    }
    for _, call in ipairs(calls) do
      local id = call[1]
      local args = { unpack(call, 2) }
      local b1, b2 = client[id](client, unpack(args))
      local got, gerr
      args[#args + 1] = function(r, e) got, gerr = r, e end
      local req = client[id](client, unpack(args))
      client:run()
      assert.is_true(req:done())
      if b1 then
        assert.same(b1, got, id)
      else
        assert.is_nil(got)
        assert.equal(b2.status, gerr.status)
        assert.equal(b2.message, gerr.message)
      end
    end
  end)

  it("poll(0) never blocks and close with requests in flight is safe", function()
    local slow = emulator.start { "--api-key", "k1=alice@example.com", "--latency", "300" }
    local c = gemini.new { api_key = "k1", base_url = slow.url, retry = false }
    local fired, ferr = 0, nil
    c:get_model("text-bison-001", function(_, e) fired = fired + 1; ferr = e end)
    for _ = 1, 5 do assert.equal(1, c:poll(0)) end
    c:close()
    assert.equal(1, fired)                     -- called once, from close, with CANCELLED
    assert.equal("CANCELLED", ferr.status)
    assert.has_error(function() c:poll(0) end)
    slow:stop()
  end)
end)
