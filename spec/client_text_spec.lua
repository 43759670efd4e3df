-- Text, chat, token counting and embeddings: exact requests on the wire and decoded results.
local emulator = require("spec.helpers.emulator")
local cjson = require("cjson").new()

describe("client text methods", function()
  local emu = emulator.with_emulator { "--api-key", "k1=alice@example.com" }
  local client
  setup(function() client = emu:client { retry = false } end)

  it("generate_text sends the body in camelCase, proto order, empty lists as []", function()
    local res, err = client:generate_text("models/text-bison-001", {
      prompt = { text = "Write a haiku" }, temperature = 0.5, candidate_count = 2, stopSequences = {},
    })
    assert.is_nil(err)
    local req = emu:last_request()
    assert.equal("POST", req.method)
    assert.equal("/v1beta3/models/text-bison-001:generateText", req.path)
    assert.equal('{"prompt":{"text":"Write a haiku"},"temperature":0.5,"candidateCount":2,"stopSequences":[]}',
      req.body)
    assert.equal("application/json", req.headers["content-type"])
    assert.equal(2, #res.candidates)
    assert.is_string(res.candidates[1].output)
    assert.is_true(#res.candidates[1].output > 0)
  end)

  it("generate_text accepts a prompt string and the safety shorthand", function()
    local res = assert(client:generate_text("text-bison-001", "Hello"))
    assert.is_string(res.candidates[1].output)
    assert.equal('{"prompt":{"text":"Hello"}}', emu:last_request().body)
    assert(client:generate_text("text-bison-001", { prompt = { text = "Hi" }, safety = { toxicity = "none" } }))
    local body = cjson.decode(emu:last_request().body)
    assert.same({ { category = "HARM_CATEGORY_TOXICITY", threshold = "BLOCK_NONE" } }, body.safetySettings)
  end)

  it("generate_message returns candidates and messages", function()
    local res, err = client:generate_message("chat-bison-001", {
      prompt = { context = "Be brief", messages = { { author = "user", content = "Hello there" } } },
      temperature = 0.25,
    })
    assert.is_nil(err)
    assert.equal('{"prompt":{"context":"Be brief","messages":[{"author":"user","content":"Hello there"}]},' ..
      '"temperature":0.25}', emu:last_request().body)
    assert.equal("/v1beta3/models/chat-bison-001:generateMessage", emu:last_request().path)
    assert.equal(1, #res.candidates)
    assert.is_string(res.candidates[1].content)
    assert.equal("Hello there", res.messages[1].content)
  end)

  it("count_message_tokens and count_text_tokens return integers", function()
    local a = assert(client:count_message_tokens("chat-bison-001",
      { prompt = { messages = { { content = "How many tokens are here?" } } } }))
    assert.equal("/v1beta3/models/chat-bison-001:countMessageTokens", emu:last_request().path)
    assert.is_true(a.tokenCount > 0)
    local b = assert(client:count_text_tokens("text-bison-001", { prompt = { text = "one two three" } }))
    assert.equal('{"prompt":{"text":"one two three"}}', emu:last_request().body)
    assert.equal("/v1beta3/models/text-bison-001:countTextTokens", emu:last_request().path)
    assert.is_true(b.tokenCount > 0)
    if math.type then
      assert.equal("integer", math.type(a.tokenCount))
      assert.equal("integer", math.type(b.tokenCount))
    end
    local longer = assert(client:count_text_tokens("text-bison-001", { prompt = { text = "one two three four five" } }))
    assert.is_true(longer.tokenCount > b.tokenCount)
  end)

  it("embed_text returns 768 floats, the same for the same text", function()
    local a = assert(client:embed_text("embedding-gecko-001", { text = "the cat" }))
    assert.equal('{"text":"the cat"}', emu:last_request().body)
    assert.equal("/v1beta3/models/embedding-gecko-001:embedText", emu:last_request().path)
    assert.equal(768, #a.embedding.value)
    assert.is_number(a.embedding.value[1])
    local b = assert(client:embed_text("embedding-gecko-001", "the cat"))
    assert.same(a.embedding.value, b.embedding.value)
  end)

  it("batch_embed_text returns one embedding per text, in order", function()
    local res = assert(client:batch_embed_text("embedding-gecko-001", { texts = { "a", "b", "a" } }))
    assert.equal('{"texts":["a","b","a"]}', emu:last_request().body)
    assert.equal(3, #res.embeddings)
    assert.same(res.embeddings[1].value, res.embeddings[3].value)
    assert.are_not.same(res.embeddings[1].value, res.embeddings[2].value)
    local single = assert(client:embed_text("embedding-gecko-001", "b"))
    assert.same(single.embedding.value, res.embeddings[2].value)
    local short = assert(client:batch_embed_text("embedding-gecko-001", { "x", "y" }))
    assert.equal(2, #short.embeddings)
  end)

  it("batch_embed_text over 100 texts goes as concurrent chunks, merged in order", function()
    local texts = {}
    for i = 1, 250 do texts[i] = "text number " .. i end
    local progress = {}
    local res = assert(client:batch_embed_text("embedding-gecko-001", { texts = texts },
      { on_progress = function(done, total) progress[#progress + 1] = done .. "/" .. total end }))
    assert.equal(250, #res.embeddings)
    local j = emu:requests()
    assert.equal(3, #j)
    local sizes = {}
    for i, r in ipairs(j) do sizes[i] = #cjson.decode(r.body).texts end
    table.sort(sizes)
    assert.same({ 50, 100, 100 }, sizes)
    assert.same({ "1/3", "2/3", "3/3" }, progress)
    for _, i in ipairs({ 1, 100, 101, 250 }) do
      local one = assert(client:embed_text("embedding-gecko-001", texts[i]))
      assert.same(one.embedding.value, res.embeddings[i].value)
    end
    -- the callback form gives the same
    local got
    client:model("embedding-gecko-001"):batch_embed_text({ texts = texts }, function(r) got = r end)
    client:run()
    assert.same(res, got)
  end)

  it("a failed chunk fails the whole batch", function()
    local texts = {}
    for i = 1, 150 do texts[i] = "t" .. i end
    emu:control("POST", "/emulator/v1/faults", { rules = { { match = { method = "batchEmbedText" },
      action = "error", status = 400, errorStatus = "INVALID_ARGUMENT", message = "bad chunk" } } })
    local res, err = client:batch_embed_text("embedding-gecko-001", texts)
    assert.is_nil(res)
    assert.equal("bad chunk", err.message)
  end)

  it("a misspelled field raises before any request", function()
    local j0 = emu:requests()
    local ok, err = pcall(client.generate_text, client, "text-bison-001", { prompt = { text = "x" }, temprature = 1 })
    assert.is_false(ok)
    assert.matches("bad argument #2 to 'generate_text' (unknown field 'temprature' in GenerateTextRequest; " ..
      "did you mean 'temperature'?)", err, 1, true)
    local j1 = emu:requests()
    assert.equal(#j0, #j1)
  end)

  describe("through a model handle", function()
    it("generate_text, generate_message, count and embed", function()
      local text = client:model("text-bison-001")
      local r = assert(text:generate_text { prompt = { text = "Hi" } })
      assert.is_string(r.candidates[1].output)
      assert.equal("/v1beta3/models/text-bison-001:generateText", emu:last_request().path)
      assert.is_true(assert(text:count_text_tokens { prompt = { text = "a b" } }).tokenCount > 0)
      local chat = client:model("chat-bison-001")
      local m = assert(chat:generate_message { prompt = { messages = { { content = "Hello" } } } })
      assert.is_string(m.candidates[1].content)
      assert.is_true(assert(chat:count_message_tokens { prompt = { messages = { { content = "Hello" } } } })
        .tokenCount > 0)
      local emb = client:model("embedding-gecko-001")
      assert.equal(768, #assert(emb:embed_text { text = "x" }).embedding.value)
      assert.equal(2, #assert(emb:batch_embed_text { texts = { "x", "y" } }).embeddings)
      assert.equal("/v1beta3/models/embedding-gecko-001:batchEmbedText", emu:last_request().path)
    end)

    it("reports misuse with the handle method's own argument positions", function()
      local h = client:model("text-bison-001")
      local ok, err = pcall(h.generate_text, h, 42)
      assert.is_false(ok)
      assert.matches("bad argument #1 to 'generate_text' (table expected (GenerateTextRequest), got number)", err,
        1, true)
    end)
  end)
end)
