-- The emulator's generation, token counting and embedding methods over real HTTP: deterministic
-- readable text, candidateCount, maxOutputTokens, stopSequences, safety ratings, blocked replies,
-- chat echo and authors, the documented tokenizer, 768-dim unit embeddings and their similarity.
local helper = require "spec.helpers.emulator"

local emu

-- status, decoded body (nil when not JSON), raw body, headers; the key defaults to the first --api-key
local function api(method, path, body, key) return emu:api(method, path, body, key) end

local GEN = "/v1beta3/models/text-bison-001:generateText"
local CHAT = "/v1beta3/models/chat-bison-001:generateMessage"
local EMBED = "/v1beta3/models/embedding-gecko-001:embedText"
local BATCH = "/v1beta3/models/embedding-gecko-001:batchEmbedText"

local CATEGORIES = { "HARM_CATEGORY_DEROGATORY", "HARM_CATEGORY_TOXICITY", "HARM_CATEGORY_VIOLENCE",
                     "HARM_CATEGORY_SEXUAL", "HARM_CATEGORY_MEDICAL", "HARM_CATEGORY_DANGEROUS" }

local function dot(a, b)
  local s = 0
  for i = 1, #a do s = s + a[i] * b[i] end
  return s
end

local function count_tokens(text)
  local _, b = api("POST", "/v1beta3/models/text-bison-001:countTextTokens", { prompt = { text = text } })
  return b.tokenCount
end

describe("emulator text API", function()
  emu = helper.with_emulator{ "--api-key", "k1=alice@example.com", reset = false }

  describe("generateText", function()
    it("returns readable, deterministic text with six NEGLIGIBLE ratings in enum order", function()
      local req = { prompt = { text = "Write a tagline for a coffee shop." }, temperature = 0.8 }
      local status, a = api("POST", GEN, req)
      assert.equal(200, status)
      assert.equal(1, #a.candidates)
      local out = a.candidates[1].output
      assert.truthy(out:find("coffee", 1, true) or out:find("shop", 1, true) or out:find("tagline", 1, true))
      assert.truthy(out:find("^%u[%w ,.:']+%.$"))
      local ratings = a.candidates[1].safetyRatings
      assert.equal(6, #ratings)
      for i, r in ipairs(ratings) do
        assert.equal(CATEGORIES[i], r.category)
        assert.equal("NEGLIGIBLE", r.probability)
      end
      assert.is_nil(a.filters)
      assert.is_nil(a.safetyFeedback)
      local _, b = api("POST", GEN, req)
      assert.equal(out, b.candidates[1].output)
    end)

    it("depends on the prompt and the temperature", function()
      local _, a = api("POST", GEN, { prompt = { text = "Tell me about rivers" }, temperature = 0.5 })
      local _, b = api("POST", GEN, { prompt = { text = "Tell me about rivers" }, temperature = 0.9 })
      local _, c = api("POST", GEN, { prompt = { text = "Tell me about mountains" }, temperature = 0.5 })
      assert.are_not.equal(a.candidates[1].output, b.candidates[1].output)
      assert.are_not.equal(a.candidates[1].output, c.candidates[1].output)
    end)

    it("honours candidateCount (accepted as candidate_count too)", function()
      local _, a = api("POST", GEN, { prompt = { text = "Name a color" }, temperature = 1, candidateCount = 3 })
      assert.equal(3, #a.candidates)
      assert.are_not.equal(a.candidates[1].output, a.candidates[2].output)
      local _, b = api("POST", GEN, '{"prompt":{"text":"Name a color"},"temperature":1,"candidate_count":2}')
      assert.equal(2, #b.candidates)
      assert.equal(a.candidates[1].output, b.candidates[1].output)
    end)

    it("truncates to maxOutputTokens, counted with the same tokenizer as countTextTokens", function()
      local prompt = { text = "Explain photosynthesis in detail" }
      local _, full = api("POST", GEN, { prompt = prompt, temperature = 0 })
      local text = full.candidates[1].output
      local n = count_tokens(text)
      assert.is_true(n > 8)
      local _, short = api("POST", GEN, { prompt = prompt, temperature = 0, maxOutputTokens = 5 })
      local s = short.candidates[1].output
      assert.equal(5, count_tokens(s))
      assert.equal(text:sub(1, #s), s)
    end)

    it("stops before the first stop sequence", function()
      local prompt = { text = "Describe a quiet morning" }
      local _, full = api("POST", GEN, { prompt = prompt, temperature = 0 })
      local text = full.candidates[1].output
      local second = text:find("%. ") -- stop at the end of the first sentence
      assert.truthy(second)
      local _, cut = api("POST", GEN, { prompt = prompt, temperature = 0, stopSequences = { ". ", "zzz" } })
      assert.equal(text:sub(1, second - 1), cut.candidates[1].output)
    end)

    it("blocks a [[block:safety]] prompt like Google: 200, no candidates, filters and safetyFeedback", function()
      local status, b, raw = api("POST", GEN, { prompt = { text = "say something [[block:safety]]" } })
      assert.equal(200, status)
      assert.falsy(raw:find('"candidates"', 1, true))
      assert.same({ { reason = "SAFETY" } }, b.filters)
      assert.same({ { rating = { category = "HARM_CATEGORY_TOXICITY", probability = "HIGH" },
                      setting = { category = "HARM_CATEGORY_TOXICITY", threshold = "BLOCK_MEDIUM_AND_ABOVE" } } },
        b.safetyFeedback)
    end)

    it("names the category of [[block:safety:violence]] and reports the request's own setting", function()
      local _, b = api("POST", GEN, { prompt = { text = "[[block:safety:violence]]" },
        safetySettings = { { category = "HARM_CATEGORY_VIOLENCE", threshold = "BLOCK_LOW_AND_ABOVE" } } })
      assert.same({ category = "HARM_CATEGORY_VIOLENCE", threshold = "BLOCK_LOW_AND_ABOVE" },
        b.safetyFeedback[1].setting)
      assert.equal("HARM_CATEGORY_VIOLENCE", b.safetyFeedback[1].rating.category)
    end)

    it("lets a marked prompt through with BLOCK_NONE, rated HIGH", function()
      local _, b = api("POST", GEN, { prompt = { text = "[[block:safety:violence]]" },
        safetySettings = { { category = "HARM_CATEGORY_VIOLENCE", threshold = "BLOCK_NONE" } } })
      assert.equal(1, #b.candidates)
      assert.equal("HIGH", b.candidates[1].safetyRatings[3].probability)
      assert.equal("NEGLIGIBLE", b.candidates[1].safetyRatings[2].probability)
    end)

    it("blocks [[block:other]] with only filters, exactly as recorded", function()
      local status, _, raw = api("POST", GEN, { prompt = { text = "[[block:other]] stock ESPR" } })
      assert.equal(200, status)
      assert.equal('{\n  "filters": [\n    {\n      "reason": "OTHER"\n    }\n  ]\n}\n', raw)
    end)

    it("prints enums as numbers with $alt=json;enum-encoding=int and accepts numeric enums", function()
      local _, b = api("POST", GEN .. "?%24alt=json%3Benum-encoding%3Dint",
        { prompt = { text = "[[block:safety]]" }, safetySettings = { { category = 2, threshold = 3 } } })
      assert.same({ { reason = 1 } }, b.filters)
      assert.same({ rating = { category = 2, probability = 4 }, setting = { category = 2, threshold = 3 } },
        b.safetyFeedback[1])
      local _, c = api("POST", GEN .. "?$alt=json;enum-encoding=int", { prompt = { text = "hello" } })
      assert.equal(1, c.candidates[1].safetyRatings[1].category)
      assert.equal(1, c.candidates[1].safetyRatings[1].probability)
    end)

    it("uses the path's model, not the body's", function()
      local status, b = api("POST", "/v1beta3/models/nope:generateText",
        { model = "models/text-bison-001", prompt = { text = "hi" } })
      assert.equal(404, status)
      assert.equal("models/nope is not found for API version v1beta3, or is not supported for generateText. " ..
        "Call ListModels to see the list of available models and their supported methods.", b.error.message)
    end)
  end)

  describe("generateMessage", function()
    it("echoes the messages with authors 0/1 and answers as author 1 (recorded shape)", function()
      local status, b, raw = api("POST", CHAT, { prompt = { messages = { { content = "hi" } } } })
      assert.equal(200, status)
      assert.same({ { author = "0", content = "hi" } }, b.messages)
      assert.equal(1, #b.candidates)
      assert.equal("1", b.candidates[1].author)
      assert.is_true(#b.candidates[1].content > 10)
      assert.truthy(raw:find('^{\n  "candidates": %[\n    {\n      "author": "1",\n      "content": '))
    end)

    it("answers as the other named author, with context and examples, and candidateCount", function()
      local _, b = api("POST", CHAT, { prompt = {
        context = "Respond as if current year was 1800",
        examples = { { input = { content = "What is the capital of Turkey?" }, output = { content = "Ankara" } } },
        messages = { { author = "user", content = "Hello there" }, { author = "model", content = "Hi" },
                     { author = "user", content = "What is the capital of Thailand?" } } },
        temperature = 0.9, candidate_count = 2 })
      assert.equal(2, #b.candidates)
      assert.equal("model", b.candidates[1].author)
      assert.equal(3, #b.messages) -- only the prompt messages, not examples/context
      assert.equal("user", b.messages[3].author)
    end)

    it("blocks a marked conversation: messages and filters, no candidates", function()
      local status, b = api("POST", CHAT, { prompt = { messages = { { content = "[[block:other]]" } } } })
      assert.equal(200, status)
      assert.is_nil(b.candidates)
      assert.same({ { reason = "OTHER" } }, b.filters)
      assert.equal(1, #b.messages)
    end)

    it("rejects empty content like the PaLM backend", function()
      local status, b = api("POST", CHAT, { prompt = { messages = { { content = "a" }, { author = "0" } } } })
      assert.equal(400, status)
      assert.equal("* GenerateMessageRequest.prompt.messages[1].content: message must include non empty content",
        b.error.message)
    end)

    it("serves the seed's curl example on gemini-1.5-flash-001", function()
      local status, b = api("POST", "/v1beta3/models/gemini-1.5-flash-001:generateMessage", { prompt = {
        messages = { { author = "user", content = "Explain the importance of bees to the ecosystem." } } },
        temperature = 0.7, candidateCount = 1 })
      assert.equal(200, status)
      assert.equal(1, #b.candidates)
    end)
  end)

  describe("token counting", function()
    it("counts the recorded conversation as 23 tokens", function()
      local status, b, raw = api("POST", "/v1beta3/models/chat-bison-001:countMessageTokens",
        { prompt = { messages = { { content = "How many tokens?" }, { content = "For this whole conversation?" } } } })
      assert.equal(200, status)
      assert.equal('{\n  "tokenCount": 23\n}\n', raw)
      assert.equal(23, b.tokenCount)
    end)

    it("counts text with the documented tokenizer", function()
      assert.equal(4, count_tokens("How many tokens?"))
      assert.equal(4, count_tokens("internationalization")) -- 20 letters: one token per 6
      assert.equal(3, count_tokens("a, b"))
      local _, b = api("POST", "/v1beta3/models/embedding-gecko-001:countTextTokens", { prompt = { text = "x y" } })
      assert.equal(2, b.tokenCount)
    end)

    it("serves the seed's countMessageTokens and countTextTokens examples", function()
      local status, b = api("POST", "/v1beta3/models/gemini-1.5-flash-001:countMessageTokens", { prompt = {
        messages = { { author = "user", content = "How many tokens are in this sentence?" } } } })
      assert.equal(200, status)
      assert.equal(3 + 5 + 9, b.tokenCount) -- "sentence" is 2 tokens (8 letters)
      local st2, b2 = api("POST", "/v1beta3/models/text-bison-001:countTextTokens",
        { prompt = { text = "Count the tokens in this sentence." } })
      assert.equal(200, st2)
      assert.equal(8, b2.tokenCount)
    end)

    it("404s for a model without the method", function()
      local status = api("POST", "/v1beta3/models/chat-bison-001:countTextTokens", { prompt = { text = "x" } })
      assert.equal(404, status)
      local st2 = api("POST", "/v1beta3/models/text-bison-001:countMessageTokens",
        { prompt = { messages = { { content = "x" } } } })
      assert.equal(404, st2)
    end)
  end)

  describe("embeddings", function()
    it("embedText returns a deterministic 768-dimensional unit vector", function()
      local status, a, raw = api("POST", EMBED, { text = "say something nice!" })
      assert.equal(200, status)
      assert.truthy(raw:find('^{\n  "embedding": {\n    "value": %[\n      %-?%d'))
      local v = a.embedding.value
      assert.equal(768, #v)
      assert.is_true(math.abs(dot(v, v) - 1) < 1e-4)
      local _, b = api("POST", EMBED, { text = "say something nice!" })
      assert.same(v, b.embedding.value)
      -- float32 values printed shortest (at most 9 significant digits)
      local checked = 0
      for num in raw:gmatch("\n      (%-?[%d.e%-+]+)") do
        local mantissa = num:gsub("^%-", ""):gsub("e.*$", ""):gsub("%.", ""):gsub("^0+", "")
        assert.is_true(#mantissa <= 9, num)
        checked = checked + 1
      end
      assert.equal(768, checked)
    end)

    it("batchEmbedText matches embedText and ranks texts sharing words closer", function()
      local texts = { "the cat sat on the mat", "a cat on a mat", "stock market prices fell sharply",
                      "the cat sat on the mat" }
      local status, b = api("POST", BATCH, { texts = texts })
      assert.equal(200, status)
      assert.equal(4, #b.embeddings)
      local _, single = api("POST", EMBED, { text = texts[1] })
      assert.same(single.embedding.value, b.embeddings[1].value)
      assert.same(b.embeddings[1].value, b.embeddings[4].value)
      local e = b.embeddings
      assert.is_true(dot(e[1].value, e[2].value) > dot(e[1].value, e[3].value) + 0.2)
      -- semantic search: the query about cats ranks the cat texts first
      local _, q = api("POST", EMBED, { text = "where is the cat" })
      local s1, s2, s3 = dot(q.embedding.value, e[1].value), dot(q.embedding.value, e[2].value),
                         dot(q.embedding.value, e[3].value)
      assert.is_true(s1 > s3 and s2 > s3)
    end)

    it("refuses more than 100 texts and empty ones", function()
      local many = {}
      for i = 1, 101 do many[i] = "t" .. i end
      local status, b = api("POST", BATCH, { texts = many })
      assert.equal(400, status)
      assert.equal("INVALID_ARGUMENT", b.error.status)
      assert.truthy(b.error.message:find("100", 1, true))
      many[101] = nil
      assert.equal(200, (api("POST", BATCH, { texts = many })))
      local st2, b2 = api("POST", EMBED, { text = "" })
      assert.equal(400, st2)
      assert.equal("* EmbedTextRequest.text: text must not be empty", b2.error.message)
    end)

    it("404s embedText on text-bison-001 with Google's message", function()
      local status, b = api("POST", "/v1beta3/models/text-bison-001:embedText", { text = "x" })
      assert.equal(404, status)
      assert.same({ error = { code = 404, status = "NOT_FOUND",
        message = "models/text-bison-001 is not found for API version v1beta3, or is not supported for embedText. " ..
          "Call ListModels to see the list of available models and their supported methods." } }, b)
    end)
  end)
end)

describe("emulator app (in process): text", function()
  local App = require "gemini.emulator.app"
  local json = require "gemini.emulator.json"
  local function gen(app, text)
    local r = app:handle{ method = "POST", path = GEN, query = "key=x", headers = {},
                          body = '{"prompt":{"text":"' .. text .. '"},"temperature":0.5}' }
    return json.decode(r.body).candidates[1].output
  end
  it("depends on the seed", function()
    local a, b, a2 = App.new{ seed = 0 }, App.new{ seed = 1 }, App.new{ seed = 0 }
    assert.are_not.equal(gen(a, "Tell me a story"), gen(b, "Tell me a story"))
    assert.equal(gen(a, "Tell me a story"), gen(a2, "Tell me a story"))
  end)
end)
