-- core.json_decode (src/jsondec.c) against the default codec's cjson: for every text it either declines
-- (nil: the caller decodes with cjson) or returns exactly cjson's value (number subtypes, -0, strings
-- byte for byte). And gemini.json's decode gives the same values and the same error messages with the
-- C reader in use (json.native(true)) or not (json.native(false)).
local core = require("gemini.core")
local json = require("gemini.json")
local emulator = require("spec.helpers.emulator")

local cjson = require("cjson").new()
if cjson.decode_invalid_numbers then cjson.decode_invalid_numbers(false) end
local NULL = cjson.null
local mtype = math.type
local concat, format = table.concat, string.format

local rng = require("spec.helpers.rng")   -- seeded, the same sequence on every interpreter

-- nil when a and b are the same value (number subtype and the sign of zero included), else where not
local function differ(a, b, path)
  path = path or "$"
  if type(a) ~= type(b) then return path .. ": " .. type(a) .. " vs " .. type(b) end
  if type(a) == "number" then
    if mtype and mtype(a) ~= mtype(b) then return path .. ": " .. mtype(a) .. " vs " .. mtype(b) end
    if a ~= b or (a == 0 and 1 / a ~= 1 / b) then return path .. format(": %.17g vs %.17g", a, b) end
    return nil
  end
  if type(a) ~= "table" then
    if a ~= b then return path .. ": " .. tostring(a) .. " vs " .. tostring(b) end
    return nil
  end
  if getmetatable(a) ~= getmetatable(b) then return path .. ": metatables differ" end
  for k, v in pairs(a) do
    local d = differ(v, b[k], path .. "." .. tostring(k))
    if d then return d end
  end
  for k in pairs(b) do
    if a[k] == nil then return path .. "." .. tostring(k) .. ": missing" end
  end
  return nil
end

-- what cjson makes of s: the value, or nil plus its error
local function by_cjson(s)
  local ok, v = pcall(cjson.decode, s)
  if ok then return v end
  return nil, v
end

-- Checks the rule for one text; returns "same" or "declined" (raises with the text when broken).
local function compare(s)
  local mine = core.json_decode(s, NULL)
  if mine == nil then return "declined" end
  local theirs, err = by_cjson(s)
  if theirs == nil then error(format("json_decode accepted what cjson refuses (%s): %q", err, s), 2) end
  local d = differ(mine, theirs)
  if d then error(format("json_decode and cjson differ at %s for %q", d, s), 2) end
  return "same"
end

local function count(texts)
  local n = { same = 0, declined = 0 }
  for _, s in ipairs(texts) do
    local r = compare(s)
    n[r] = n[r] + 1
  end
  return n
end

-- random JSON text, with the spellings a server may use (whitespace, escapes, number forms)
local function generator(r)
  local gen
  local WS = { "", "", " ", "\n  ", "\t", "\r\n" }
  local function ws() return WS[r(1, #WS)] end
  local function number()
    local k = r(1, 8)
    if k == 1 then return tostring(r(0, 2000000) - 1000000) end
    if k == 2 then return format("%.17g", (r() - 0.5) * 10 ^ r(-30, 30)) end
    if k == 3 then return format("%.9g", (r() - 0.5) * 10 ^ r(-12, 12)) end
    if k == 4 then return format("%.15g", (r() - 0.5) * 10 ^ r(-5, 20)) end
    if k == 5 then return (r(0, 1) == 1 and "-" or "") .. r(0, 999) .. "." .. r(0, 99999) .. "e" ..
      ({ "", "+", "-" })[r(1, 3)] .. r(0, 25) end
    if k == 6 then
      return ({ "0", "-0", "0.0", "-0.0", "0e0", "1E2", "9007199254740993", "9007199254740992", "1e308", "0.1",
                "123456789012345678901234", "1e-320", "2.2250738585072014e-308", "1.7976931348623157e308" })[r(1, 14)]
    end
    if k == 7 then return format("%d", r(0, 2147483646)) .. "." .. format("%d", r(0, 2147483646)) end
    return format("%.6f", (r() - 0.5) * 1000)
  end
  local PIECES = { "a", "text", " ", "é", "\226\130\172", "\240\159\152\128", "\\n", "\\\"", "\\\\", "\\/",
                   "\\t", "\\b", "\\f", "\\r", "\\u00e9", "\\u20AC", "\\ud83d\\ude00", "\\u0000", "\1", "\127",
                   "\255", "HARM_CATEGORY_TOXICITY" }
  local function str()
    local parts = {}
    for i = 1, r(0, 6) do parts[i] = PIECES[r(1, #PIECES)] end
    return '"' .. concat(parts) .. '"'
  end
  function gen(depth)
    local k = r(1, depth > 4 and 5 or 7)
    if k == 1 then return number() end
    if k == 2 then return str() end
    if k == 3 then return ({ "true", "false", "null" })[r(1, 3)] end
    if k == 4 or k == 5 then return k == 4 and number() or str() end
    local items = {}
    if k == 6 then
      for i = 1, r(0, 5) do items[i] = ws() .. gen(depth + 1) .. ws() end
      return "[" .. concat(items, ",") .. "]"
    end
    for i = 1, r(0, 5) do
      items[i] = ws() .. str() .. ws() .. ":" .. ws() .. gen(depth + 1) .. ws()
    end
    return "{" .. concat(items, ",") .. "}"
  end
  return function()
    local v = gen(1)
    if v:sub(1, 1) ~= "[" and v:sub(1, 1) ~= "{" then v = "[" .. v .. "]" end
    return ws() .. v .. ws()
  end
end

describe("core.json_decode", function()
  local emu = emulator.with_emulator { "--api-key", "k1=alice@example.com" }
  it("returns cjson's value for strict JSON, and declines only what it cannot be sure of", function()
    local r = rng(20261128)
    local next_text = generator(r)
    local texts = {}
    for i = 1, 3000 do texts[i] = next_text() end
    local n = count(texts)
    assert.equal(3000, n.same + n.declined)
    -- most random texts hold a number with 17 digits or a far exponent (declined); many do not
    assert.is_true(n.same > 600, "only " .. n.same .. " of 3000 decoded")
  end)

  it("decodes numbers exactly as strtod does (Clinger's fast path), -0 and integers as floats", function()
    local r = rng(7)
    local taken = 0
    for _ = 1, 20000 do
      local t = { tostring(r(1, 9)) }
      for i = 2, r(1, 18) do t[i] = tostring(r(0, 9)) end
      local digits = concat(t)
      local e = r(-30, 30)
      local s = (r(0, 1) == 1 and "-" or "") .. digits .. "e" .. e
      if compare("[" .. s .. "]") == "same" then taken = taken + 1 end
    end
    assert.is_true(taken > 10000, "fast path taken for " .. taken .. " of 20000")
    for _, s in ipairs({ "0", "-0", "0.0", "-0.0", "0e5", "-0e-5", "1", "-1", "1.5", "1e22", "1e-22",
                         "9007199254740992", "4503599627370497.5", "0.000000000000000000001", "123.456e-5",
                         "-0.0010128851", "0.06701344", "5e-324" }) do
      compare("[" .. s .. "]")
      compare("{\"v\":" .. s .. "}")
    end
    -- a long fraction with an exponent that brings it back: still exact (1 / 10)
    assert.equal("same", compare("[0." .. ("0"):rep(1000) .. "1e1000]"))
    assert.equal(0.1, core.json_decode("[0." .. ("0"):rep(1000) .. "1e1000]", NULL)[1])
    assert.is_nil(core.json_decode("[0." .. ("0"):rep(100001) .. "1e100001]", NULL))   -- cjson decides
    local v = core.json_decode("[0, -0, 3, 1e2]", NULL)
    assert.equal(4, #v)
    if mtype then
      for i = 1, 4 do assert.equal("float", mtype(v[i])) end
    end
    assert.equal(-math.huge, 1 / v[2])
    assert.equal(100, v[4])
  end)

  it("decodes escapes and passes other bytes through, as cjson does", function()
    local v = core.json_decode('["\\u00e9\\u20ac\\ud83d\\ude00", "a\\"b\\\\c\\/d\\b\\f\\n\\r\\t", "\\u0000x", ' ..
                               '"raw \1 \31 \127 \255", "", "\\\\"]', NULL)
    assert.equal("\195\169\226\130\172\240\159\152\128", v[1])
    assert.equal("a\"b\\c/d\b\f\n\r\t", v[2])
    assert.equal("\0x", v[3])
    assert.equal("raw \1 \31 \127 \255", v[4])
    assert.equal("", v[5])
    assert.equal("\\", v[6])
    compare('["\\u00e9\\u20ac\\ud83d\\ude00", "a\\"b\\\\c\\/d\\b\\f\\n\\r\\t", "\\u0000x", "raw \1 \31 \127 \255"]')
  end)

  it("gives null as the value it is handed, and keeps the last of a repeated key", function()
    local marker = {}
    local v = core.json_decode('{"a": null, "b": [null], "a": 2, "c": {"d": null}}', marker)
    assert.equal(2, v.a)
    assert.equal(marker, v.b[1])
    assert.equal(marker, v.c.d)
    compare('{"a": null, "b": [null], "a": 2}')
  end)

  it("fills long arrays and objects across its batches (1024 items) in document order", function()
    for _, n in ipairs({ 255, 256, 257, 1023, 1024, 1025, 3000 }) do
      local items, pairs_ = {}, {}
      for i = 1, n do
        items[i] = tostring(i)
        pairs_[i] = format('"k%d": %d', i % 300, i)   -- keys repeat across batches: the last one wins
      end
      local a = core.json_decode("[" .. concat(items, ",") .. "]", NULL)
      assert.equal(n, #a)
      assert.equal(n, a[n])
      compare("[" .. concat(items, ",") .. "]")
      local o = core.json_decode("{" .. concat(pairs_, ",") .. "}", NULL)
      assert.equal(n, o["k" .. (n % 300)])
      compare("{" .. concat(pairs_, ",") .. "}")
      compare("[[" .. concat(items, ",") .. "], {" .. concat(pairs_, ",") .. "}, [" .. concat(items, ",") .. "]]")
    end
  end)

  it("declines what is not strict JSON or not sure, and cjson then decides", function()
    for _, s in ipairs({
      "", "   ", "1", '"s"', "true", "null",                          -- not an object or array at the top
      "[1.]", "[.5]", "[01]", "[-01]", "[-]", "[1e]", "[1e+]", "[+1]", "[0x10]", "[Infinity]", "[NaN]",
      "[1 2]", "[1,]", '{"a":1,}', "[tru]", "[nul]", "[fals]", '{"a" 1}', "{a:1}", "[1]x", "[1] [2]",
      '["\\x"]', '["\\u12"]', '["\\ud800"]', '["\\udc00"]', '["\\ud800\\u0041"]', '["unterminated',
      '["a\0b"]', "[1]\0", "[\"\\u00e9", "{", "[", "]", "}", "[1e400]", "[123456789012345678901234]",
    }) do
      assert.is_nil(core.json_decode(s, NULL), s)
    end
    local deep = string.rep("[", 200) .. string.rep("]", 200)
    assert.is_table(core.json_decode(deep, NULL))
    compare(deep)
    assert.is_nil(core.json_decode("[" .. deep .. "]", NULL))
    assert.is_nil(core.json_decode(string.rep("[", 100000), NULL))
  end)

  it("never disagrees with cjson on a broken copy of a reply (every truncation, many byte changes)", function()
    local base = '{\n  "candidates": [\n    {\n      "output": "A caf\\u00e9 \\"quoted\\" line\\n",\n' ..
      '      "safetyRatings": [{"category": "HARM_CATEGORY_TOXICITY", "probability": "NEGLIGIBLE"}],\n' ..
      '      "score": -0.0010128851, "n": 3, "ok": true, "none": null\n    }\n  ],\n  "e": [1e5, -2.5E-3]\n}\n'
    assert.equal("same", compare(base))
    local texts = {}
    for i = 0, #base - 1 do texts[#texts + 1] = base:sub(1, i) end
    local r = rng(99)
    local BYTES = { '"', "\\", "{", "}", "[", "]", ",", ":", "0", "-", ".", "e", "u", " ", "\0", "\255", "n" }
    for _ = 1, 3000 do
      local i = r(1, #base)
      local b = BYTES[r(1, #BYTES)]
      local k = r(1, 3)
      if k == 1 then texts[#texts + 1] = base:sub(1, i - 1) .. b .. base:sub(i + 1)
      elseif k == 2 then texts[#texts + 1] = base:sub(1, i - 1) .. b .. base:sub(i)
      else texts[#texts + 1] = base:sub(1, i - 1) .. base:sub(i + 1) end
    end
    local n = count(texts)
    assert.is_true(n.same > 300 and n.declined > 1000, n.same .. " same, " .. n.declined .. " declined")
  end)

  it("decodes the emulator's replies, embeddings included, to cjson's tables", function()
    local calls = {
      { "POST", "/v1beta3/models/text-bison-001:generateText", { prompt = { text = "hello" } } },
      { "POST", "/v1beta3/models/chat-bison-001:generateMessage", { prompt = { messages = { { content = "hi" } } } } },
      { "POST", "/v1beta3/models/embedding-gecko-001:batchEmbedText", { texts = { "a", "b", "c" } } },
      { "POST", "/v1beta3/models/embedding-gecko-001:embedText", { text = "a" } },
      { "GET", "/v1beta3/models" },
      { "POST", "/v1beta3/models/text-bison-001:countTextTokens", { prompt = { text = "hello" } } },
      { "GET", "/v1beta3/models/no-such-model" },   -- an error reply
    }
    for _, c in ipairs(calls) do
      local status, _, raw = emu:api(c[1], c[2], c[3])
      assert.is_true(status == 200 or status == 404, c[2])
      assert.equal("same", compare(raw), c[2])
    end
  end)

  it("raises on misuse: text must be a string and null must be given", function()
    assert.has_error(function() core.json_decode(nil, NULL) end)
    assert.has_error(function() core.json_decode("[]") end)
    assert.same({}, core.json_decode("[]", NULL))
  end)
end)

describe("gemini.json decode with and without the C reader", function()
  after_each(function() json.native(true) end)

  local function both(s)
    local out = {}
    for i, on in ipairs({ true, false }) do
      json.native(on)
      local J = json.new()
      local v, err = J:decode(s)
      out[i] = { v = v, err = err }
    end
    return out[1], out[2]
  end

  it("gives the same values and the same error messages", function()
    local r = rng(5)
    local next_text = generator(r)
    local texts = { "[1.]", "[01]", '["\\ud800"]', "[1,]", "", "1", '"x"', '{"a":[1,2,{"b":null}]}', "[1e400]" }
    for _ = 1, 300 do texts[#texts + 1] = next_text() end
    for _, s in ipairs(texts) do
      local on, off = both(s)
      assert.equal(off.err, on.err, s)
      assert.is_nil(differ(on.v, off.v), s)
    end
  end)

  it("uses the C reader only for its own cjson instance", function()
    json.native(true)
    local calls = 0
    local codec = json.default_codec()
    local decode = codec.decode
    codec.decode = function(s) calls = calls + 1; return decode(s) end
    local J = json.new(codec)
    assert.same({ 1 }, J:decode("[1]"))
    assert.equal(0, calls)                    -- the C reader took it
    assert.same({ 1 }, J:decode("[1.]"))
    assert.equal(1, calls)                    -- declined: cjson took it
    local mine = json.new({ decode = function(s) calls = calls + 1; return decode(s) end, null = NULL })
    mine:decode("[1]")
    assert.equal(2, calls)                    -- a codec of the user's: always its own decode
  end)
end)
