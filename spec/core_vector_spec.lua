-- gemini.core: compact float vectors (core.vector, gemini.vector) and core.decode_embeddings.
local core = require("gemini.core")
local cjson = require("cjson").new()

-- float32 has a 24-bit significand: a relative error of 2^-24 per value, a little more for sums
local F32 = 2 ^ -23

local function near(a, b, rel)
  rel = rel or F32
  return math.abs(a - b) <= rel * math.max(1, math.abs(a), math.abs(b))
end

local function lua_dot(a, b)
  local s = 0
  for i = 1, #a do s = s + a[i] * b[i] end
  return s
end

local function lua_cosine(a, b)
  local na, nb = math.sqrt(lua_dot(a, a)), math.sqrt(lua_dot(b, b))
  if na == 0 or nb == 0 then return 0 end
  return lua_dot(a, b) / (na * nb)
end

local function random_values(n, seed)
  local t, x = {}, seed or 1
  for i = 1, n do
    x = (x * 1103515245 + 12345) % 2147483648
    t[i] = (x / 2147483648 - 0.5) * 0.2
  end
  return t
end

local function batch_json(rows)
  local parts = {}
  for i, r in ipairs(rows) do parts[i] = '{"value":[' .. table.concat(r, ",") .. "]}" end
  return '{"embeddings":[' .. table.concat(parts, ",") .. "]}"
end

describe("core.vector", function()
  it("stores float32 values, 1-based, with # and tostring", function()
    local v = core.vector{ 1, -2.5, 0.1, 3 }
    assert.are.equal(4, #v)
    assert.are.equal("gemini.vector(4)", tostring(v))
    assert.are.equal(1, v[1])
    assert.are.equal(-2.5, v[2])
    assert.are.equal(3, v[4])
    assert.are_not.equal(0.1, v[3])            -- float32 rounding, not the double 0.1
    assert.is_true(near(0.1, v[3]))
    assert.are.equal("number", type(v[3]))
    assert.are.equal("userdata", type(v))
    assert.are.equal("gemini.vector", getmetatable(v))
  end)

  it("reads nil outside 1..#v and for other keys, like a table", function()
    local v = core.vector{ 1, 2, 3 }
    assert.is_nil(v[0])
    assert.is_nil(v[4])
    assert.is_nil(v[-1])
    assert.is_nil(v[1.5])
    assert.is_nil(v[2 ^ 40])
    assert.is_nil(v[true])
    assert.is_nil(v.nosuchmethod)
    assert.are.equal(0, #core.vector{})
  end)

  it("is read-only", function()
    local v = core.vector{ 1, 2 }
    assert.has_error(function() v[1] = 5 end, nil)
    assert.has_error(function() v[3] = 5 end)
    assert.has_error(function() v.x = 5 end)
    assert.are.equal(1, v[1])
  end)

  it("rejects non-numbers and values beyond float32", function()
    assert.has_error(function() core.vector{ 1, "2" } end)
    assert.has_error(function() core.vector{ 1, {} } end)
    assert.has_error(function() core.vector("1,2") end)
    assert.has_error(function() core.vector{ 1e39 } end)
    assert.has_error(function() core.vector{ -1e300 } end)
    local inf = core.vector{ math.huge }
    assert.are.equal(math.huge, inf[1])
  end)

  it("dot, cosine and norm match a Lua reference within float32 tolerance", function()
    for _, n in ipairs({ 1, 3, 768, 4096 }) do
      local a, b = random_values(n, n), random_values(n, n + 7)
      local va, vb = core.vector(a), core.vector(b)
      local ra, rb = va:totable(), vb:totable()     -- the float32 values, for an exact reference
      assert.is_true(near(lua_dot(ra, rb), va:dot(vb), 1e-12))
      assert.is_true(near(lua_dot(a, b), va:dot(vb), 1e-5))
      assert.is_true(near(lua_cosine(ra, rb), va:cosine(vb), 1e-12))
      assert.is_true(near(lua_cosine(a, b), va:cosine(vb), 1e-5))
      assert.is_true(near(math.sqrt(lua_dot(ra, ra)), va:norm(), 1e-12))
      assert.is_true(near(1, va:cosine(va), 1e-12))
    end
  end)

  it("cosine of a zero vector is 0; vectors of different lengths raise", function()
    local z, v = core.vector{ 0, 0, 0 }, core.vector{ 1, 2, 3 }
    assert.are.equal(0, z:cosine(v))
    assert.are.equal(0, z:norm())
    assert.has_error(function() v:dot(core.vector{ 1, 2 }) end)
    assert.has_error(function() v:cosine(core.vector{}) end)
    assert.has_error(function() v:dot({ 1, 2, 3 }) end)
    assert.has_error(function() v.dot(nil, v) end)
  end)

  it("totable returns a fresh table of the stored values", function()
    local v = core.vector{ 0.5, -0.25, 1e-30 }
    local t = v:totable()
    assert.are.same({ 0.5, -0.25, v[3] }, t)
    t[1] = 9
    assert.are.equal(0.5, v[1])
  end)
end)

describe("core.decode_embeddings", function()
  it("decodes an embedText reply", function()
    local r = assert(core.decode_embeddings('{"embedding":{"value":[0.5,-1,2e-3,0]}}'))
    local v = r.embedding.value
    assert.are.equal("gemini.vector(4)", tostring(v))
    assert.are.equal(0.5, v[1])
    assert.are.equal(-1, v[2])
    assert.is_true(near(2e-3, v[3]))
    assert.are.equal(0, v[4])
  end)

  it("decodes a batchEmbedText reply like cjson within float32 tolerance", function()
    local rows = {}
    for i = 1, 5 do rows[i] = random_values(768, i) end
    for i = 1, 5 do for j = 1, 768 do rows[i][j] = string.format("%.9g", rows[i][j]) end end
    local body = batch_json(rows)
    local ref = cjson.decode(body)
    local r = assert(core.decode_embeddings(body))
    assert.are.equal(5, #r.embeddings)
    for i = 1, 5 do
      local v = r.embeddings[i].value
      assert.are.equal(768, #v)
      for j = 1, 768 do
        assert.is_true(near(ref.embeddings[i].value[j], v[j]), ("row %d value %d"):format(i, j))
      end
    end
  end)

  it("accepts whitespace, any key order, unknown keys (nested) and empty lists", function()
    local body = ' \n{ "model" : "x", "meta": {"a": [1, {"b": [true, false, null, "s\\"\\u00e9\\ud83d\\ude00"]}],'
      .. ' "c": -1.5e+3}, "embeddings" :\t[ { "extra": {"value": [9]}, "value" : [ 1 , 2 ] },'
      .. ' {"value":[]} ], "tail": [[[]]] }\r\n'
    local r = assert(core.decode_embeddings(body))
    assert.are.equal(2, #r.embeddings)
    assert.are.same({ 1, 2 }, r.embeddings[1].value:totable())
    assert.are.equal(0, #r.embeddings[2].value)
    assert.is_nil(r.embeddings[1].extra)
    assert.are.same({}, assert(core.decode_embeddings('{"embeddings":[]}')).embeddings)
    -- an escaped key is still the key
    assert.are.equal(1, #assert(core.decode_embeddings('{"embedding":{"\\u0076alue":[1]}}')).embedding.value)
  end)

  it("parses numbers exactly as JSON writes them", function()
    local r = assert(core.decode_embeddings('{"embedding":{"value":[0,-0,1E2,1e-2,-0.000123,'
      .. '123456789012345678901234567890e-20,0.00000000000000000000000000000000000000000000001,'
      .. '3.4028234e38,1.17549435e-38,100000000000000000000000000000000000000e-30]}}'))
    local expect = { 0, 0, 100, 1e-2, -0.000123, 1234567890.1234567, 0, 3.4028234e38, 1.17549435e-38, 1e8 }
    local v = r.embedding.value
    for i, x in ipairs(expect) do assert.is_true(near(x, v[i]), "value " .. i) end
  end)

  it("returns nil and a message for anything but the two shapes", function()
    local bad = {
      "", " ", "null", "[]", "{}", '{"embedding":null}', '{"embedding":{}}', '{"embedding":{"value":null}}',
      '{"embedding":{"value":[1,"2"]}}', '{"embedding":{"value":[1,]}}', '{"embedding":{"value":[,1]}}',
      '{"embedding":{"value":[01]}}', '{"embedding":{"value":[1.]}}', '{"embedding":{"value":[.5]}}',
      '{"embedding":{"value":[+1]}}', '{"embedding":{"value":[1e]}}', '{"embedding":{"value":[-]}}',
      '{"embedding":{"value":[NaN]}}', '{"embedding":{"value":[Infinity]}}', '{"embedding":{"value":[0x10]}}',
      '{"embedding":{"value":[1e39]}}', '{"embedding":{"value":[-3.5e38]}}', '{"embedding":{"value":[1e999999999]}}',
      '{"embedding":{"value":[1]}', '{"embedding":{"value":[1]}} x', '{"embedding":{"value":[1]}}{}',
      '{"embedding":{"value":[1],"value":[2]}}', '{"embedding":{"value":[1]},"embedding":{"value":[1]}}',
      '{"embeddings":{"value":[1]}}', '{"embeddings":[{"value":[1]},]}', '{"embeddings":[[1]]}',
      '{"embeddings":[{"value":[1]}], "x": tru}', '{"x":"unterminated', '{"x":"bad \\q escape"}',
      '{"x":"\\ud800 lone"}', '{"x":"\\u12"}', '{"x":"ctl \1 char"}', "{'embedding':1}",
      '{"embedding":{"value":[1]},}', '{"embedding" {"value":[1]}}',
      '{"embedding":{"value":[1]}}\0', '\0{"embedding":{"value":[1]}}',
    }
    for _, s in ipairs(bad) do
      local r, msg = core.decode_embeddings(s)
      assert.is_nil(r, s)
      assert.are.equal("string", type(msg), s)
      assert.truthy(msg:find("^not an embedding reply: .* at byte %d+$"), msg)
    end
    assert.has_error(function() core.decode_embeddings() end)
    assert.has_error(function() core.decode_embeddings({}) end)
  end)

  it("bounds nesting when skipping unknown values", function()
    local ok = '{"x":' .. ("["):rep(60) .. ("]"):rep(60) .. ',"embedding":{"value":[1]}}'
    assert.truthy(core.decode_embeddings(ok))
    for _, depth in ipairs({ 100, 100000 }) do
      local s = '{"x":' .. ("["):rep(depth) .. ("]"):rep(depth) .. ',"embedding":{"value":[1]}}'
      local r, msg = core.decode_embeddings(s)
      assert.is_nil(r)
      assert.truthy(msg:find("nested too deep", 1, true))
      r, msg = core.decode_embeddings('{"x":' .. ('{"a":'):rep(depth) .. "1" .. ("}"):rep(depth) .. "}")
      assert.is_nil(r)
      assert.truthy(msg:find("nested too deep", 1, true))
    end
  end)

  it("decodes huge arrays and long inputs", function()
    local n = 1000000
    local t = {}
    for i = 1, n do t[i] = i % 7 - 3 end
    local r = assert(core.decode_embeddings('{"embedding":{"value":[' .. table.concat(t, ",") .. "]}}"))
    local v = r.embedding.value
    assert.are.equal(n, #v)
    assert.are.equal(t[1], v[1])
    assert.are.equal(t[n], v[n])
    -- many small vectors
    local rows = {}
    for i = 1, 20000 do rows[i] = { i } end
    local b = assert(core.decode_embeddings(batch_json(rows)))
    assert.are.equal(20000, #b.embeddings)
    assert.are.equal(20000, b.embeddings[20000].value[1])
    -- a very long number and a very long unknown string
    local long = "1" .. ("0"):rep(100000) .. "e-100000"
    assert.are.equal(1, assert(core.decode_embeddings('{"embedding":{"value":[' .. long .. "]}}")).embedding.value[1])
    local s = '{"x":"' .. ("a"):rep(1000000) .. '","embedding":{"value":[]}}'
    assert.truthy(core.decode_embeddings(s))
  end)

  it("never reads past a truncated body", function()
    local body = '{"embeddings":[{"value":[1.5e-3,-2,3]},{"k":"\\u00e9","value":[4]}]}'
    for i = 0, #body - 1 do
      assert.is_nil(core.decode_embeddings(body:sub(1, i)), i)
    end
    assert.truthy(core.decode_embeddings(body))
  end)

  it("uses about a quarter of the memory of tables of numbers", function()
    local rows = {}
    for i = 1, 50 do rows[i] = random_values(768, i) end
    local body = batch_json(rows)
    local function heap(fn)
      collectgarbage("collect"); collectgarbage("collect"); collectgarbage("collect")
      local before = collectgarbage("count")
      local keep = fn(body)
      collectgarbage("collect"); collectgarbage("collect")
      local used = collectgarbage("count") - before
      assert.truthy(keep)
      return used
    end
    heap(cjson.decode); heap(core.decode_embeddings)   -- warm-up: settle earlier garbage and finalizers
    local tables, compact = heap(cjson.decode), heap(core.decode_embeddings)
    assert.is_true(compact * 2 < tables, ("compact %.0f KiB, tables %.0f KiB"):format(compact, tables))
  end)
end)
