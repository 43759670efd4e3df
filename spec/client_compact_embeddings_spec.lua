-- compact_embeddings: embed_text / batch_embed_text results with gemini.vector values, against the emulator,
-- equal to the table path within float32 tolerance.
local gemini = require("gemini")
local helper = require("spec.helpers.emulator")

local MODEL = "embedding-gecko-001"

local function near(a, b)
  return math.abs(a - b) <= 2 ^ -23 * math.max(1, math.abs(a), math.abs(b))
end

local function same_values(tbl, vec)
  assert.are.equal("userdata", type(vec))
  assert.are.equal("table", type(tbl))
  assert.are.equal(#tbl, #vec)
  for i = 1, #tbl do
    if not near(tbl[i], vec[i]) then error(("value %d: %.17g vs %.17g"):format(i, tbl[i], vec[i]), 2) end
  end
end

describe("compact_embeddings", function()
  local emu = helper.with_emulator{}
  local plain, compact

  setup(function()
    plain = emu:client{}
    compact = emu:client{ compact_embeddings = true }
  end)

  it("embed_text: the client option gives a gemini.vector equal to the table", function()
    local t = assert(plain:embed_text(MODEL, "the cat"))
    local v = assert(compact:embed_text(MODEL, "the cat"))
    assert.are.equal("gemini.vector(768)", tostring(v.embedding.value))
    same_values(t.embedding.value, v.embedding.value)
    assert.is_true(near(1, v.embedding.value:cosine(v.embedding.value)))
  end)

  it("the call option overrides the client option either way", function()
    local v = assert(plain:embed_text(MODEL, "the cat", { compact_embeddings = true }))
    assert.are.equal("userdata", type(v.embedding.value))
    local t = assert(compact:embed_text(MODEL, "the cat", { compact_embeddings = false }))
    assert.are.equal("table", type(t.embedding.value))
    local b = assert(plain:batch_embed_text(MODEL, { "a", "b" }, { compact_embeddings = true }))
    assert.are.equal("userdata", type(b.embeddings[2].value))
  end)

  it("batch_embed_text: one vector per text, in order, equal to the tables", function()
    local texts = { "a", "b", "the cat", "a" }
    local t = assert(plain:batch_embed_text(MODEL, { texts = texts }))
    local v = assert(compact:batch_embed_text(MODEL, { texts = texts }))
    assert.are.equal(#texts, #v.embeddings)
    for i = 1, #texts do same_values(t.embeddings[i].value, v.embeddings[i].value) end
    assert.is_true(near(1, v.embeddings[1].value:cosine(v.embeddings[4].value)))
  end)

  it("batch_embed_text split into concurrent chunks merges vectors in order", function()
    local texts = {}
    for i = 1, 250 do texts[i] = "text number " .. i end
    local t = assert(plain:batch_embed_text(MODEL, { texts = texts }, { max_texts = 100 }))
    local v = assert(compact:batch_embed_text(MODEL, { texts = texts }, { max_texts = 100 }))
    assert.are.equal(250, #v.embeddings)
    for _, i in ipairs({ 1, 100, 101, 250 }) do same_values(t.embeddings[i].value, v.embeddings[i].value) end
  end)

  it("works with callbacks and poll", function()
    local got
    compact:embed_text(MODEL, "the cat", function(res, err) got = res or err end)
    compact:run()
    assert.are.equal("userdata", type(got.embedding.value))
  end)

  it("errors are the same objects as without it", function()
    local _, e1 = plain:embed_text("text-bison-001", "x")
    local _, e2 = compact:embed_text("text-bison-001", "x")
    assert.truthy(e1)
    assert.truthy(e2)
    assert.are.equal(e1.status, e2.status)
    assert.are.equal(e1.code, e2.code)
  end)

  it("a body the C decoder does not take goes the general way", function()
    emu:control("POST", "/emulator/v1/faults", { rules = { { match = { method = "embedText" },
      action = "invalid_json" } } })
    local res, err = compact:embed_text(MODEL, "x", { retry = false })
    assert.is_nil(res)
    assert.truthy(tostring(err):find("JSON", 1, true))
  end)

  it("rejects a wrong type, and the call option on other methods", function()
    assert.has_error(function() gemini.new{ base_url = emu.url, compact_embeddings = "yes" } end)
    assert.has_error(function() plain:embed_text(MODEL, "x", { compact_embeddings = 1 }) end)
    assert.has_error(function()
      plain:generate_text("text-bison-001", "x", { compact_embeddings = true })
    end)
  end)
end)

describe("gemini.index with compact vectors", function()
  local emu = helper.with_emulator{ reset = false }
  local client
  local TEXTS = { "Lua is a small scripting language.", "Paris is the capital of France.",
                  "Coffee is brewed from roasted beans.", "Tuning adapts a model with examples." }

  setup(function() client = emu:client{} end)

  it("ranks and scores as the table index does; save and load convert both ways", function()
    assert.is_true(gemini.index.compact)
    local c = gemini.index.new(client)
    local t = gemini.index.new(client, { compact = false })
    assert.truthy(c:add(TEXTS))
    assert.truthy(t:add(TEXTS))
    assert.are.equal("userdata", type(c.items[1].vector))
    assert.are.equal("table", type(t.items[1].vector))
    local hc = assert(c:search("a scripting language", 4))
    local ht = assert(t:search("a scripting language", 4))
    for i = 1, 4 do
      assert.are.equal(ht[i].id, hc[i].id)
      assert.is_true(math.abs(ht[i].score - hc[i].score) < 1e-6)
    end
    -- a table query against a compact index
    local q = assert(client:embed_text("models/embedding-gecko-001", "a scripting language")).embedding.value
    assert.are.equal(hc[1].id, c:search_vector(q, 1)[1].id)

    local path = os.tmpname()
    assert.truthy(c:save(path))
    local back = assert(gemini.index.load(client, path))
    assert.are.equal("userdata", type(back.items[2].vector))
    local as_tables = assert(gemini.index.load(client, path, { compact = false }))
    assert.are.equal("table", type(as_tables.items[2].vector))
    local hb = assert(back:search("a scripting language", 4))
    for i = 1, 4 do assert.is_true(math.abs(hb[i].score - hc[i].score) < 1e-6) end
    os.remove(path)
  end)
end)
