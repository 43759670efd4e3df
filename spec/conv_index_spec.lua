-- Semantic search index against the emulator: batching, ranking, save/load, errors.
local gemini = require("gemini")
local helper = require("spec.helpers.emulator")
local cjson = require("cjson").new()

local DOCS = {
  { id = "lua", text = "Lua is a small scripting language embedded in editors and games for plugins." },
  { id = "paris", text = "Paris is the capital of France, with the Eiffel Tower and the Louvre museum." },
  { id = "coffee", text = "Coffee is brewed from roasted beans; espresso uses finely ground beans." },
  { id = "tuning", text = "Tuning adapts a model with training examples over several epochs." },
}

describe("gemini.index", function()
  local emu = helper.with_emulator{}
  local client
  setup(function() client = emu:client{ api_key = "index-key" } end)

  local function embed_calls()
    local journal = emu:requests()
    local sizes = {}
    for _, r in ipairs(journal) do
      if r.path:find(":batchEmbedText", 1, true) then sizes[#sizes + 1] = #cjson.decode(r.body).texts end
    end
    return sizes
  end

  it("ranks the texts sharing the query's meaning first, with scores best first", function()
    local idx = gemini.index.new(client, { model = "models/embedding-gecko-001" })
    assert.are.same({ "lua", "paris", "coffee", "tuning" }, assert(idx:add(DOCS)))
    assert.are.equal(4, idx:size())
    local hits = assert(idx:search("which scripting language do editors use for plugins", 4))
    assert.are.equal(4, #hits)
    assert.are.equal("lua", hits[1].id)
    assert.are.equal(DOCS[1].text, hits[1].text)
    for i = 2, #hits do assert.is_true(hits[i - 1].score >= hits[i].score) end
    assert.is_true(hits[1].score > hits[2].score)
    assert.is_true(hits[1].score <= 1 + 1e-9 and hits[4].score >= -1 - 1e-9)
    hits = assert(idx:search("the capital of France", 1))
    assert.are.equal(1, #hits)
    assert.are.equal("paris", hits[1].id)
  end)

  it("gives plain strings ids 1, 2, ... and accepts one string", function()
    local idx = gemini.index.new(client)
    assert.are.same({ 1, 2 }, assert(idx:add({ "first text", "second text" })))
    assert.are.same({ 3 }, assert(idx:add("third text")))
    local hits = assert(idx:search("third text", 1))
    assert.are.equal(3, hits[1].id)
    assert.is_true(math.abs(hits[1].score - 1) < 1e-6)
  end)

  it("embeds in batches of at most 100 texts", function()
    local texts = {}
    for i = 1, 230 do texts[i] = "text number " .. i end
    local idx = gemini.index.new(client)
    assert.are.equal(230, #assert(idx:add(texts)))
    assert.are.same({ 100, 100, 30 }, embed_calls())
    local hits = assert(idx:search("text number 230", 1))
    assert.are.equal(230, hits[1].id)
  end)

  it("saves and loads an index that answers the same without re-embedding", function()
    local idx = gemini.index.new(client)
    assert(idx:add(DOCS))
    assert.are.same({ 1 }, assert(idx:add("an extra text without an id")))
    local path = os.tmpname()
    assert.is_true(idx:save(path))
    local before = assert(idx:search("roasted coffee beans", 4))
    emu:reset()
    local loaded = assert(gemini.index.load(client, path))
    os.remove(path)
    assert.are.equal(5, loaded:size())
    assert.are.equal("models/embedding-gecko-001", loaded.model)
    local after = assert(loaded:search("roasted coffee beans", 4))
    for i = 1, 4 do
      assert.are.equal(before[i].id, after[i].id)
      assert.is_true(math.abs(before[i].score - after[i].score) < 1e-6)
    end
    assert.are.same({}, embed_calls())
    -- new texts keep getting fresh ids after a load
    assert.are.same({ 2 }, assert(loaded:add({ "another one" })))
  end)

  it("reports unreadable and foreign files", function()
    local idx, err = gemini.index.load(client, "/nonexistent/index.json")
    assert.is_nil(idx)
    assert.matches("/nonexistent/index.json", err, 1, true)
    local path = os.tmpname()
    local f = assert(io.open(path, "w"))
    f:write('{"hello": "world"}')
    f:close()
    idx, err = gemini.index.load(client, path)
    os.remove(path)
    assert.is_nil(idx)
    assert.are.equal(path .. ": not a lua-gemini index file", err)
  end)

  it("returns the API error and adds nothing when the model cannot embed", function()
    local idx = gemini.index.new(client, { model = "models/text-bison-001" })
    local ids, err = idx:add({ "a", "b" })
    assert.is_nil(ids)
    assert.are.equal("NOT_FOUND", err.status)
    assert.are.equal(0, idx:size())
  end)

  it("adds all texts or none when a later batch fails", function()
    emu:control("POST", "/emulator/v1/faults", { rules = {
      { match = { method = "batchEmbedText" }, action = "delay", delayMs = 1, times = 1 },
      { match = { method = "batchEmbedText" }, action = "error", status = 400, errorStatus = "INVALID_ARGUMENT",
        message = "injected", times = 1 },
    } })
    local texts = {}
    for i = 1, 150 do texts[i] = "t" .. i end
    local idx = gemini.index.new(client)
    local ids, err = idx:add(texts)
    assert.is_nil(ids)
    assert.are.equal("INVALID_ARGUMENT", err.status)
    assert.are.equal(0, idx:size())
    assert.are.same({}, assert(idx:search("anything")))
  end)

  it("raises on misuse", function()
    assert.has_error(function() gemini.index.new(nil) end)
    assert.has_error(function() gemini.index.new(client, { batch = 101 }) end)
    local idx = gemini.index.new(client)
    assert.has_error(function() idx:add(5) end)
    assert.has_error(function() idx:search(nil) end)
  end)
end)
