-- The schema walks in C (gemini.core's codec plan, src/codec.c) against json.lua's Lua fast paths
-- (json.native(false)): the same request bytes, the same decoded replies, the same error messages.
local json = require("gemini.json")
local schema = require("gemini.schema")
local cjson = require("cjson").new()
local emulator = require("spec.helpers.emulator")
local gemini = require("gemini")

local NULL = cjson.null
local mtype = math.type
local unpack = table.unpack or unpack   -- luacheck: ignore

local rng = require("spec.helpers.rng")   -- seeded, the same sequence on every interpreter

local function pick(r, list) return list[r(1, #list)] end

local function copy(v, seen)
  if type(v) ~= "table" then return v end
  seen = seen or {}
  if seen[v] then return seen[v] end
  local t = {}
  seen[v] = t
  for k, x in pairs(v) do t[copy(k, seen)] = copy(x, seen) end
  return setmetatable(t, getmetatable(v))
end

-- nil when a and b are the same (integer subtype included), else where they differ
local function differ(a, b, path, seen)
  path = path or "$"
  if type(a) ~= type(b) then return path .. ": " .. type(a) .. " vs " .. type(b) end
  if type(a) == "number" then
    if mtype and mtype(a) ~= mtype(b) then return path .. ": " .. mtype(a) .. " vs " .. mtype(b) end
    if a == b or (a ~= a and b ~= b) then return nil end
    return path .. ": " .. tostring(a) .. " vs " .. tostring(b)
  end
  if type(a) ~= "table" then
    if rawequal(a, b) then return nil end
    return path .. ": " .. tostring(a) .. " vs " .. tostring(b)
  end
  seen = seen or {}
  if seen[a] then return nil end
  seen[a] = true
  if getmetatable(a) ~= getmetatable(b) then return path .. ": metatables differ" end
  for k, x in pairs(a) do
    local why = differ(x, rawget(b, k), path .. "." .. tostring(k), seen)
    if why then return why end
  end
  for k in pairs(b) do
    if rawget(a, k) == nil then return path .. "." .. tostring(k) .. ": missing on the left" end
  end
  return nil
end

local function noaddr(s)
  return type(s) == "string" and (s:gsub("0x%x+", "0x?")) or s
end

-- both paths: encode_message's result (or error)
local function encode_both(name, value, exclude)
  local out = {}
  for i, on in ipairs({ true, false }) do
    assert.equal(on, json.native(on))
    local J = json.new()
    local ok, s = pcall(J.encode_message, J, name, value, exclude)
    out[i] = { ok = ok, s = noaddr(s) }
  end
  json.native(true)
  return out[1], out[2]
end

local function assert_encode_same(name, value, exclude)
  local c, l = encode_both(name, value, exclude)
  assert.equal(l.ok, c.ok)
  assert.equal(l.s, c.s)
  return c
end

-- both paths: shape_error + decode_message of a reply made by make(J) (fresh each time)
local function decode_both(name, make)
  local out = {}
  for i, on in ipairs({ true, false }) do
    json.native(on)
    local J = json.new()
    local t = make(J)
    local ok, misfit = pcall(J.shape_error, J, name, t)
    local res
    if ok and misfit == nil then ok, res = pcall(J.decode_message, J, name, t) end
    out[i] = { ok = ok, misfit = noaddr(misfit), res = res }
  end
  json.native(true)
  return out[1], out[2]
end

local function assert_decode_same(name, make)
  local c, l = decode_both(name, make)
  assert.equal(l.ok, c.ok)
  assert.equal(l.misfit, c.misfit)
  local why = differ(l.res, c.res)
  assert(why == nil, why)
  return c
end

local function from_text(text)
  return function(J) return assert(J:decode(text)) end
end

local function from_table(t)
  return function() return copy(t) end
end

-- ------------------------------------------------------------------------------------------------
-- messages the real schema lacks: 64-bit integers, Any, a oneof of three, a recursive message, a
-- missing reference, an ambiguous name pair, a json name that needs quoting
local EXTRA = {
  ["CodecSpec.Wide"] = { name = "CodecSpec.Wide", fields = {
    { name = "big", json = "big", type = "int64" },
    { name = "ubig", json = "ubig", type = "uint64" },
    { name = "bigs", json = "bigs", type = "sint64", repeated = true },
    { name = "small", json = "small", type = "sint32" },
    { name = "dbl", json = "dbl", type = "double" },
    { name = "raw", json = "raw", type = "bytes" },
    { name = "any", json = "any", type = "any" },
    { name = "anys", json = "anys", type = "any", repeated = true },
    { name = "mask", json = "mask", type = "fieldmask" },
    { name = "nothing", json = "nothing", type = "empty" },
    { name = "one_a", json = "oneA", type = "string", oneof = "choice" },
    { name = "one_b", json = "oneB", type = "int32", oneof = "choice" },
    { name = "one_c", json = "oneC", type = "message", message = "CodecSpec.Wide", oneof = "choice" },
    { name = "lost", json = "lost", type = "message", message = "CodecSpec.Missing" },
    { name = "mood", json = "mood", type = "enum", enum = "CodecSpec.Missing" },
    { name = "odd", json = "o\"d\\d\1", type = "string" },
    { name = "flag", json = "flag", type = "bool" },
  } },
  ["CodecSpec.Deep"] = { name = "CodecSpec.Deep", fields = {
    { name = "child", json = "child", type = "message", message = "CodecSpec.Deep" },
    { name = "n", json = "n", type = "int32" },
    { name = "kids", json = "kids", type = "message", message = "CodecSpec.Deep", repeated = true },
  } },
  ["CodecSpec.Ambiguous"] = { name = "CodecSpec.Ambiguous", fields = {
    { name = "x_y", json = "xY", type = "string" },
    { name = "xY", json = "other", type = "string" },
  } },
}

local function add_extra()
  for k, m in pairs(EXTRA) do
    for _, f in ipairs(m.fields) do f.repeated = f.repeated or false end
    schema.messages[k] = m
  end
  json.native(true, true)   -- the plan is compiled again, with them
end

local function remove_extra()
  for k in pairs(EXTRA) do schema.messages[k] = nil end
  json.native(true, true)
end

local function sorted_messages()
  local list = {}
  for name in pairs(schema.messages) do list[#list + 1] = name end
  table.sort(list)
  return list
end

local function enum_names(f)
  local e = schema.enums[f.enum]
  local names = {}
  if e then for i, v in ipairs(e.values) do names[i] = v.name end end
  return names
end

local STRINGS = { "", "a", "plain text", "tab\there", 'q"uote', "back\\slash", "nul\0byte", "del\127", "\1\2\31",
                  "caf\195\169", "\128\255 raw", "\b\f\n\r\t", string.rep("long ", 200) }
local INT_GOOD = { 0, 1, -1, 42, 2147483647, -2147483648, 3.0, -7.0, "12", "-5", "0", "-0",
                   "99999999999999999999", "9223372036854775807", "-9223372036854775808", "9223372036854775808",
                   2^53, 1e20, -1e300 }
local FLOAT_GOOD = { 0, 0.5, -2.25, 1e300, 5e-324, 3, 0.1, 1 / 3, "NaN", "Infinity", "-Infinity", -0.0 }
local BAD = { "x", 1.5, true, false, {}, { 1, 2 }, { a = 1 }, NULL, "12a", "-", "", "nan", "1e5", " 1" }

-- Random messages: each field present with chance g.present, under its JSON name (chance g.json) or its
-- proto name; g.scalar makes one value, g.lists the bad values of repeated fields, g.extra adds odd keys.
-- `bad` is the chance of a bad value (a misfit for replies, an error or a doubt for requests).
local function gen_msg(g, r, name, depth, bad)
  local m = schema.messages[name]
  local t = {}
  for _, f in ipairs(m.fields) do
    if r() < g.present then
      local v
      if f.repeated and r() < bad then
        v = pick(r, g.lists)
      elseif f.repeated then
        v = {}
        for i = 1, r(0, 4) do v[i] = g.scalar(r, f, depth, bad) end
      else
        v = g.scalar(r, f, depth, bad)
      end
      t[r() < g.json and f.json or f.name] = v
    end
  end
  g.extra(r, m, t, bad)
  return t
end

local REPLY, REQUEST = { present = 0.7, json = 0.85 }, { present = 0.5, json = 0.8 }

REPLY.lists = { "x", 3, { a = 1 }, NULL, { [1] = 1, x = 2 } }

function REPLY.scalar(r, f, depth, bad)
  if r() < bad then return pick(r, BAD) end
  local t = f.type
  if t == "message" then
    if depth > 3 or not schema.messages[f.message] then return {} end
    return gen_msg(REPLY, r, f.message, depth + 1, bad)
  elseif json.INT_TYPES[t] then
    return pick(r, INT_GOOD)
  elseif t == "float" or t == "double" then
    return pick(r, FLOAT_GOOD)
  elseif t == "enum" then
    local names = enum_names(f)
    if #names == 0 or r() < 0.2 then return pick(r, { 1, 0, "NOT_A_NAME", 2.5 }) end
    return pick(r, names)
  elseif t == "bool" then
    return r() < 0.5
  elseif t == "any" then
    return pick(r, { { ["@type"] = "type.googleapis.com/google.ai.generativelanguage.v1beta3.CitationSource",
                       startIndex = "4", endIndex = 5.0, x = NULL }, { a = { NULL, 1 } }, "s", 3 })
  end
  return pick(r, STRINGS)
end

function REPLY.extra(r, m, t)
  if r() < 0.1 then t["unknown" .. r(1, 3)] = pick(r, { 1, "s", { a = NULL }, { 1, 2 }, NULL, true }) end
  if r() < 0.05 and #m.fields > 0 then t[pick(r, m.fields).json] = NULL end
end

REQUEST.lists = { "x", { a = 1 }, json.array({ 1 }), { [1] = 1, [3] = 3 }, { [1.5] = 1 }, NULL }

function REQUEST.scalar(r, f, depth, bad)
  if r() < bad then
    return pick(r, { "x", 1.5, true, {}, { 1, 2 }, NULL, json.null, 0 / 0, 1 / 0, -1 / 0, 2^63, print,
                     setmetatable({}, {}), json.array(), "12a", io.stdout })
  end
  local t = f.type
  if t == "message" then
    if depth > 3 or not schema.messages[f.message] then return {} end
    return gen_msg(REQUEST, r, f.message, depth + 1, bad)
  elseif json.INT_TYPES[t] then
    return pick(r, { 0, 1, -1, 42, 3.0, 2^53, 2^53 + 2, 1e18, -1e18, math.maxinteger or 2^52, math.mininteger or -2^52,
                     "123", "-9" })
  elseif t == "float" or t == "double" then
    return pick(r, { 0, 0.5, -2.25, 1e300, 5e-324, 3, 0.1, 1 / 3, -0.0, 2^70, 123456789012345.67, 1e15 + 0.5 })
  elseif t == "enum" then
    local names = enum_names(f)
    if #names == 0 or r() < 0.2 then return pick(r, { 1, 0, 2.0, "NOT_A_NAME" }) end
    return pick(r, names)
  elseif t == "bool" then
    return r() < 0.5
  elseif t == "fieldmask" then
    return pick(r, { "a,b", { "a", "b" } })
  elseif t == "any" or t == "empty" then
    return pick(r, { {}, { a = 1 } })
  end
  return pick(r, STRINGS)
end

function REQUEST.extra(r, m, t, bad)
  if r() < bad and #m.fields > 0 then
    local f = pick(r, m.fields)
    if r() < 0.5 then t[f.json], t[f.name] = 1, 2 else t[f.name:upper() .. "x"] = 1 end
  end
  if r() < bad / 2 then t[pick(r, { 1, true, 2.5 })] = "k" end
end

describe("codec: C walks vs the Lua fast paths", function()
  local plan

  setup(function()
    add_extra()
    local on
    on, plan = json.native()
    assert.is_true(on)
  end)
  teardown(function()
    json.native(true)
    remove_extra()
  end)

  it("compiles one plan per schema: a userdata with __gc and __tostring", function()
    assert.equal("userdata", type(plan))
    assert.matches("^gemini%.core%.codec_plan %(%d+ messages, %d+ fields%)$", tostring(plan))
    assert.equal("gemini.core.codec_plan", getmetatable(plan))
    local core = require("gemini.core")
    assert.has_error(function() core.codec_plan({ messages = { { name = "X", fields = { { json = "a" } } } },
                                                  enums = {} }) end)
    assert.has_error(function() core.codec_plan({ messages = { { name = "X", fields = { { json = "a", name = "a",
      kind = "nope" } } } }, enums = {} }) end)
    assert.has_error(function() core.codec_plan({ messages = { { name = "X", fields = { { json = "a", name = "a",
      kind = "message", message = 5 } } } }, enums = {} }) end)
    assert.has_error(function() plan.check(io.stdout, "X", {}) end, "gemini.core: codec plan expected")
    -- a plan of its own, collected: __gc runs once, the methods then refuse it
    local p = core.codec_plan({ messages = { { name = "X", fields = { { json = "a", name = "a", kind = "int" } } } },
                                enums = {} })
    assert.equal('{"a":1}', p:encode("X", { a = 1 }))
    local gc = debug.getmetatable(p).__gc
    gc(p); gc(p)
    assert.equal("gemini.core.codec_plan (closed)", tostring(p))
    assert.has_error(function() p:encode("X", { a = 1 }) end, "gemini.core: codec plan is closed")
    p = nil   -- luacheck: ignore
    collectgarbage()
    collectgarbage()
  end)

  it("json.native(false) is the Lua fast path, json.native(true) the C one", function()
    assert.is_false(json.native(false))
    assert.is_true(json.native(true))
  end)

  it("json.lua alone (no gemini.core to load) keeps the Lua fast paths", function()
    local saved_core, saved_json = package.loaded["gemini.core"], package.loaded["gemini.json"]
    local saved_preload = package.preload["gemini.core"]
    package.loaded["gemini.core"], package.loaded["gemini.json"] = nil, nil
    package.preload["gemini.core"] = function() error("no core here") end
    local ok, err = pcall(function()
      local alone = require("gemini.json")
      assert.are_not.equal(json, alone)
      local J = alone.new()
      assert.equal('{"prompt":{"text":"x"},"candidateCount":2}',
        J:encode_message("GenerateTextRequest", { prompt = { text = "x" }, candidate_count = 2.0 }))
      local t = J:decode('{"tokenCount":"7"}')
      assert.is_nil(J:shape_error("CountTextTokensResponse", t))
      assert.equal(7, J:decode_message("CountTextTokensResponse", t).tokenCount)
      assert.is_false(alone.native())
      assert.is_false(alone.native(true))
    end)
    package.preload["gemini.core"] = saved_preload
    package.loaded["gemini.core"], package.loaded["gemini.json"] = saved_core, saved_json
    assert(ok, err)
  end)

  describe("encoder", function()
    it("writes the same bytes as the Lua fast path for typical bodies (and takes them itself)", function()
      local bodies = {
        { "GenerateTextRequest", { prompt = { text = "Write a haiku" }, temperature = 0.5, candidate_count = 2,
                                   stopSequences = {} },
          '{"prompt":{"text":"Write a haiku"},"temperature":0.5,"candidateCount":2,"stopSequences":[]}' },
        { "GenerateTextRequest", { model = "models/x", prompt = { text = "hi" }, safetySettings = {
            { category = "HARM_CATEGORY_TOXICITY", threshold = "BLOCK_LOW_AND_ABOVE" },
            { category = 3, threshold = 1 } },
            top_k = 40, topP = 0.95, maxOutputTokens = 64, stop_sequences = { "a", "b" } },
          '{"model":"models/x","prompt":{"text":"hi"},"maxOutputTokens":64,"topP":0.95,"topK":40,' ..
          '"safetySettings":[{"category":"HARM_CATEGORY_TOXICITY","threshold":"BLOCK_LOW_AND_ABOVE"},' ..
          '{"category":3,"threshold":1}],"stopSequences":["a","b"]}' },
        { "BatchEmbedTextRequest", { texts = { "a", "b\n" } }, '{"texts":["a","b\\n"]}' },
        { "TunedModel", { baseModel = "models/b", display_name = "d", temperature = 0.25,
            tuningTask = { hyperparameters = { epochCount = 3, batchSize = 4, learningRate = 0.001 },
              trainingData = { examples = { examples = { { textInput = "i", output = "o" } } } } } },
          '{"baseModel":"models/b","displayName":"d","tuningTask":{"trainingData":' ..
          '{"examples":{"examples":[{"textInput":"i","output":"o"}]}},"hyperparameters":{"epochCount":3,' ..
          '"batchSize":4,"learningRate":0.001}},"temperature":0.25}' },
      }
      for _, b in ipairs(bodies) do
        local c = assert_encode_same(b[1], b[2])
        assert.is_true(c.ok)
        if b[3] then assert.equal(b[3], c.s) end
        assert.equal(c.s, plan:encode(b[1], b[2], NULL))   -- not a doubt: C wrote it
      end
    end)

    it("quotes strings byte for byte like quote() (controls, DEL, quotes, NUL; UTF-8 and high bytes raw)", function()
      local all = {}
      for i = 0, 255 do all[#all + 1] = string.char(i) end
      local s = table.concat(all)
      local c = assert_encode_same("TextPrompt", { text = s })
      assert.equal('{"text":' .. json.quote(s) .. '}', c.s)
      assert.equal('{"text":"\\u0000\\u0001\\b\\t\\n\\u000b\\f\\r\\"\\\\\\u007f\\u001f\128"}',
        plan:encode("TextPrompt", { text = "\0\1\b\t\n\11\f\r\"\\\127\31\128" }, NULL))
    end)

    it("formats numbers like number(): integers, integral floats, shortest round trip", function()
      local floats = { 0, -0.0, 0.1, 1 / 3, 2 / 3, 1e300, -1e-300, 5e-324, 2^53, 2^53 + 2, 2^70, 1e15 + 0.5,
                       123456789012345.67, 9007199254740993, 0.30000000000000004, 1.7976931348623157e308, 100, -3 }
      for _, x in ipairs(floats) do
        local c = assert_encode_same("GenerateTextRequest", { temperature = x })
        assert.equal('{"temperature":' .. json.number(x) .. '}', c.s)
      end
      local ints = { 0, 3, -3, 3.0, 2^53, 1e18, -1e18, 2^62, math.maxinteger or 2^53, math.mininteger or -2^53 }
      for _, x in ipairs(ints) do
        local c = assert_encode_same("GenerateTextRequest", { candidateCount = x })
        assert.equal('{"candidateCount":' .. json.number(x) .. '}', c.s)
      end
      -- 64-bit integers are strings on the wire; numeric strings pass as they are
      for _, x in ipairs({ 5, -5, 3.0, 2^60, "123", "-9223372036854775808", "007" }) do
        local c = assert_encode_same("CodecSpec.Wide", { big = x, bigs = { x, x } })
        assert.is_true(c.ok)
        assert.equal(c.s, plan:encode("CodecSpec.Wide", { big = x, bigs = { x, x } }, NULL))
      end
    end)

    it("gives the same errors for what it doubts", function()
      local cases = {
        { "GenerateTextRequest", { temperature = 0 / 0 } },
        { "GenerateTextRequest", { temperature = 1 / 0 } },
        { "GenerateTextRequest", { candidateCount = -1 / 0 } },
        { "GenerateTextRequest", { candidateCount = 2^63 } },
        { "GenerateTextRequest", { candidateCount = 1.5 } },
        { "GenerateTextRequest", { candidateCount = "3" } },
        { "GenerateTextRequest", { temprature = 1 } },
        { "GenerateTextRequest", { [1] = "x" } },
        { "GenerateTextRequest", { [true] = "x" } },
        { "GenerateTextRequest", { topK = 1, top_k = 2 } },
        { "GenerateTextRequest", { stopSequences = { "a", nil, "c" } } },
        { "GenerateTextRequest", { stopSequences = { [1] = "a", x = "b" } } },
        { "GenerateTextRequest", { stopSequences = "a" } },
        { "GenerateTextRequest", { stopSequences = { 1 } } },
        { "GenerateTextRequest", { prompt = "hi" } },
        { "GenerateTextRequest", { prompt = { text = 1 } } },
        { "GenerateTextRequest", { prompt = setmetatable({ text = "x" }, {}) } },
        { "GenerateTextRequest", { prompt = json.array() } },
        { "GenerateTextRequest", { safetySettings = { { category = "HARM_CATEGORY_TOXICTY" } } } },
        { "GenerateTextRequest", { safetySettings = { { category = 1.5 } } } },
        { "GenerateTextRequest", { safetySettings = { { category = 0 / 0 } } } },
        { "GenerateTextRequest", { safetySettings = { { category = true } } } },
        { "GenerateTextRequest", { safetySettings = { {}, json.null } } },
        { "GenerateTextRequest", { model = print } },
        { "GenerateTextRequest", { model = io.stdout } },
        { "TunedModel", { tunedModelSource = { tunedModel = "a" }, baseModel = "b" } },
        { "TunedModel", { base_model = "a", tuned_model_source = {} } },
        { "TunedModel", { createTime = 5 } },
        { "UpdateTunedModelRequest", { updateMask = { "a", "b" }, tunedModel = {} } },
        { "UpdateTunedModelRequest", { updateMask = "a,b" } },
        { "CodecSpec.Wide", { big = "12a" } },
        { "CodecSpec.Wide", { oneA = "a", one_b = 1 } },
        { "CodecSpec.Wide", { one_c = { oneA = "a" }, oneB = 1 } },
        { "CodecSpec.Wide", { any = { a = 1 }, nothing = {} } },
        { "CodecSpec.Wide", { lost = { a = 1 } } },
        { "CodecSpec.Wide", { mood = "WHATEVER", flag = "yes" } },
        { "CodecSpec.Ambiguous", { xY = "a" } },
        { "CodecSpec.Ambiguous", { x_y = "a", other = "b" } },
        { "NoSuchMessage", { a = 1 } },
      }
      for _, b in ipairs(cases) do assert_encode_same(b[1], b[2]) end
      -- excluded fields (path-bound, query) are unknown in the body
      assert_encode_same("GenerateTextRequest", { model = "m", prompt = { text = "x" } }, { model = true })
      assert_encode_same("GenerateTextRequest", { prompt = { text = "x" } }, { model = true })
      assert_encode_same("GenerateTextRequest", { prompt = { text = "x" } },
        setmetatable({}, { __index = function(_, k) return k == "prompt" end }))
    end)

    it("writes both nulls as null, and takes what only encode_fields can (metatables) the same way", function()
      assert_encode_same("GenerateTextRequest", { prompt = json.null, temperature = NULL, stopSequences = { NULL } })
      assert.equal('{"prompt":null,"temperature":null,"stopSequences":[null]}',
        plan:encode("GenerateTextRequest", { prompt = json.null, temperature = NULL, stopSequences = { NULL } }, NULL))
      assert_encode_same("GenerateTextRequest", setmetatable({ prompt = { text = "x" } }, {}))
      assert_encode_same("GenerateTextRequest", { stopSequences = json.array({ "a" }) })
      local always = { __eq = function() return true end }
      assert_encode_same("GenerateTextRequest", { prompt = setmetatable({ text = "x" }, always) })
      assert.is_false(plan:encode("GenerateTextRequest", setmetatable({}, {}), NULL))
      -- a user codec whose null is a table with __eq: Lua may call it on any table value, so C doubts
      local tnull = setmetatable({}, always)
      for _, on in ipairs({ true, false }) do
        json.native(on)
        local J = json.new({ decode = cjson.decode, null = tnull })
        local ok, s = pcall(J.encode_message, J, "GenerateTextRequest", { prompt = { text = "x" }, temperature = 1 })
        assert.is_true(ok)
        assert.equal(_VERSION == "Lua 5.1" and '{"prompt":{"text":"x"},"temperature":1}'
          or '{"prompt":null,"temperature":1}', s)
      end
      json.native(true)
      assert.is_false(plan:encode("GenerateTextRequest", { prompt = { text = "x" } }, tnull))
      assert.is_false(plan:encode("GenerateTextRequest", { model = "m" }, NULL, "not a set"))
    end)

    it("handles deep, cyclic and huge bodies", function()
      local deep = { n = 1 }
      for i = 2, 100 do deep = { child = deep, n = i, kids = { { n = -i } } } end
      local c = assert_encode_same("CodecSpec.Deep", deep)
      assert.is_true(c.ok)
      assert.is_false(plan:encode("CodecSpec.Deep", deep, NULL))   -- past 64 levels: a doubt
      -- a cycle: C stops at 64 levels and doubts (the Lua encoders then name the cycle: spec/json_depth_spec.lua)
      local cyc = { n = 1 }
      cyc.child = cyc
      cyc.kids = { cyc }
      assert.is_false(plan:encode("CodecSpec.Deep", cyc, NULL))
      assert.is_false(plan:encode("CodecSpec.Deep", { kids = cyc.kids }, NULL))
      local texts = {}
      for i = 1, 20000 do texts[i] = "text " .. i end
      c = assert_encode_same("BatchEmbedTextRequest", { model = "m", texts = texts })
      assert.equal(#cjson.encode({ model = "m", texts = texts }) - 0, #c.s)
      assert.equal(c.s, plan:encode("BatchEmbedTextRequest", { model = "m", texts = texts }, NULL))
    end)

    it("agrees with the Lua path on random bodies of every message (seeded)", function()
      local r = rng(20261128)
      local taken, n = 0, 0
      for _, name in ipairs(sorted_messages()) do
        for _ = 1, 40 do
          local body = gen_msg(REQUEST, r, name, 0, r() < 0.5 and 0 or 0.15)
          local exclude = r() < 0.2 and { model = true, name = true } or nil
          local c = assert_encode_same(name, body, exclude)
          n = n + 1
          if c.ok and plan:encode(name, body, NULL, exclude) == c.s then taken = taken + 1 end
        end
      end
      -- the comparison means something only if both outcomes are common
      assert.is_true(taken > n / 4, taken .. " of " .. n .. " taken by C")
      assert.is_true(taken < n * 0.95, taken .. " of " .. n .. " taken by C")
    end)
  end)

  describe("reply check and decode", function()
    local REPLY_TEXT = [[{"candidates":[{"output":"hello","safetyRatings":[{"category":"HARM_CATEGORY_TOXICITY",
      "probability":"LOW"},{"category":1,"probability":2}],"citationMetadata":{"citationSources":[{"startIndex":"3",
      "endIndex":4.0,"uri":"u"},{"startIndex":-0,"endIndex":"99999999999999999999"}]}}],"filters":[],
      "safetyFeedback":[{"rating":{"category":"HARM_CATEGORY_VIOLENCE","probability":"HIGH"}}]}]]

    it("decodes a clean reply in the same pass, integers as the Lua decoder makes them", function()
      local c = assert_decode_same("GenerateTextResponse", from_text(REPLY_TEXT))
      assert.is_nil(c.misfit)
      local src = c.res.candidates[1].citationMetadata.citationSources
      assert.equal(3, src[1].startIndex)
      assert.equal(4, src[1].endIndex)
      if mtype then
        assert.equal("integer", mtype(src[1].startIndex))
        assert.equal("integer", mtype(src[1].endIndex))
        assert.equal("float", mtype(src[2].endIndex))
      end
      local J = json.new()
      local t = J:decode(REPLY_TEXT)
      assert.equal("clean", plan:check("GenerateTextResponse", t, NULL, true))
      assert.equal(3, t.candidates[1].citationMetadata.citationSources[1].startIndex)
      assert.equal("clean", plan:check("GenerateTextResponse", J:decode(REPLY_TEXT), NULL, false))
      -- decode_reply: both steps at once
      local d = assert(J:decode_reply("GenerateTextResponse", J:decode(REPLY_TEXT)))
      assert.is_nil(differ(c.res, d))
      local none, why = J:decode_reply("GenerateTextResponse", J:decode('{"candidates":{"a":1}}'))
      assert.is_nil(none)
      assert.equal("field 'candidates' is an object, not an array", why)
    end)

    it("leaves nulls, Anys, unknown objects and deep nesting to the Lua decoder (same result)", function()
      local cases = {
        { "GenerateTextResponse", '{"candidates":[{"output":null,"citationMetadata":{"citationSources":' ..
          '[{"startIndex":"7","uri":null}]}}],"filters":null}' },
        { "GenerateTextResponse", '{"candidates":[],"extra":{"a":null,"b":[null,1,{"c":null}]},"more":1}' },
        { "CodecSpec.Wide", '{"any":{"@type":"type.googleapis.com/google.ai.generativelanguage.v1beta3.' ..
          'CitationSource","startIndex":"4","uri":null},"anys":[{"x":null},3],"big":"123","bigs":["1",2.0]}' },
        { "CodecSpec.Wide", '{"anys":[{"x":null,"y":[null]},{"@type":"type.googleapis.com/google.ai.' ..
          'generativelanguage.v1beta3.CountTextTokensResponse","tokenCount":"3"}],"small":2}' },
        { "CodecSpec.Wide", '{"lost":{"a":null,"b":"1"},"small":"-3","ubig":1e3}' },
        { "CodecSpec.Wide", '{"oneC":{"oneC":{"oneB":"5"}},"mask":"a,b","nothing":{}}' },
        { "NoSuchMessage", '{"a":null,"b":{"c":null}}' },
      }
      for _, case in ipairs(cases) do
        local c = assert_decode_same(case[1], from_text(case[2]))
        assert.is_nil(c.misfit)
      end
      local J = json.new()
      assert.equal("doubt", plan:check("GenerateTextResponse", J:decode(cases[1][2]), NULL, true))
      local deep = '{"n":"1"}'
      for i = 2, 80 do deep = '{"n":"' .. i .. '","child":' .. deep .. ',"kids":[{"n":' .. i .. '.0}]}' end
      local c = assert_decode_same("CodecSpec.Deep", from_text(deep))
      assert.is_nil(c.misfit)
      assert.equal("doubt", plan:check("CodecSpec.Deep", J:decode(deep), NULL, true))
      local cyc = { n = 1 }
      cyc.child = cyc
      assert.equal("doubt", plan:check("CodecSpec.Deep", cyc, NULL, false))
    end)

    it("names misfits with the same text as before", function()
      local cases = {
        { '{"candidates":[{"output":true}]}', "field 'candidates[0].output' is a JSON boolean (true), not a string" },
        { '{"candidates":{"a":1}}', "field 'candidates' is an object, not an array" },
        { '{"candidates":"x"}', "field 'candidates' is a JSON string, not an array" },
        { '{"candidates":[5]}', "field 'candidates[0]' is a JSON number, not an object" },
        { '{"candidates":[null]}', "field 'candidates[0]' is a JSON null, not an object" },
        { '{"candidates":[{"safetyRatings":[{"category":true}]}]}',
          "field 'candidates[0].safetyRatings[0].category' is a JSON boolean (true), not a enum" },
        { '{"candidates":[{"citationMetadata":{"citationSources":[{"startIndex":"12a"}]}}]}',
          "field 'candidates[0].citationMetadata.citationSources[0].startIndex' is a JSON string (12a), not a int32" },
        { '{"candidates":[{"citationMetadata":[]}]}', nil },
        { '{"candidates":[{"citationMetadata":"x"}]}',
          "field 'candidates[0].citationMetadata' is a JSON string, not an object" },
        { '{"filters":[{"reason":"X","message":7}],"candidates":[]}',
          "field 'filters[0].message' is a JSON number (7" },
      }
      for _, case in ipairs(cases) do
        local c = assert_decode_same("GenerateTextResponse", from_text(case[1]))
        if case[2] then
          assert.is_truthy(c.misfit, case[1])
          assert.equal(case[2], c.misfit:sub(1, #case[2]))
        end
      end
      local c = assert_decode_same("Embedding", from_text('{"value":[1,"NaN","Infinity","-Infinity",2.5,"nan"]}'))
      assert.equal("field 'value[5]' is a JSON string (nan), not a float", c.misfit)
    end)

    it("treats tables not fresh from the codec exactly (metatables, odd keys, NaN, holes)", function()
      local mt = { __index = function() return 1 end }
      local always = { __eq = function() return true end }
      local cases = {
        { "GenerateTextResponse", { candidates = setmetatable({ { output = "x" } }, mt) } },
        { "GenerateTextResponse", setmetatable({ candidates = {} }, mt) },
        { "GenerateTextResponse", { candidates = { setmetatable({ output = "x" }, mt) } } },
        { "GenerateTextResponse", { candidates = { [1] = { output = "x" }, [2.5] = {} } } },
        { "GenerateTextResponse", { candidates = { [1] = { output = "x" }, [3] = { output = "y" } } } },
        { "GenerateTextResponse", { candidates = { [1] = { output = "x" }, n = 1 } } },
        { "GenerateTextResponse", { [1] = { a = NULL }, [true] = 1, candidates = {} } },
        { "CountTextTokensResponse", { tokenCount = 0 / 0 } },
        { "CountTextTokensResponse", { tokenCount = 1 / 0 } },
        { "CountTextTokensResponse", { tokenCount = -1 / 0 } },
        { "CountTextTokensResponse", { token_count = 7.0 } },
        { "CountTextTokensResponse", { tokenCount = "7\0" } },
        { "Embedding", { value = { 1, 0 / 0, 1 / 0, "NaN" } } },
        { "Embedding", { value = { 1, "Infinity\0" } } },
        { "TextPrompt", { text = "nul\0inside" } },
        { "CodecSpec.Wide", { any = setmetatable({}, mt), lost = setmetatable({}, mt) } },
        { "GenerateTextResponse", { candidates = { { output = setmetatable({}, always) } },
          filters = {} } },
      }
      for _, case in ipairs(cases) do assert_decode_same(case[1], from_table(case[2])) end
      -- a table null with __eq (a user codec's): compared the way Lua compares it
      local tnull = setmetatable({}, { __eq = function() return true end })
      local function with_null(on)
        json.native(on)
        local J = json.new({ decode = cjson.decode, null = tnull })
        local t = { candidates = { { output = setmetatable({}, getmetatable(tnull)) } }, filters = {} }
        local misfit = J:shape_error("GenerateTextResponse", t)
        json.native(true)
        return misfit, misfit == nil and J:decode_message("GenerateTextResponse", t) or nil
      end
      local m1, r1 = with_null(true)
      local m2, r2 = with_null(false)
      assert.equal(m2, m1)
      assert.is_nil(differ(r2, r1))
    end)

    it("checks a 100 x 768 embedding reply (and finds the one bad value at the end)", function()
      local parts = {}
      for i = 1, 100 do
        local v = {}
        for j = 1, 768 do v[j] = ((i * 768 + j) % 1000) / 997 - 0.5 end
        parts[i] = '{"value":[' .. table.concat(v, ",") .. ']}'
      end
      local body = '{"embeddings":[' .. table.concat(parts, ",") .. ']}'
      local c = assert_decode_same("BatchEmbedTextResponse", from_text(body))
      assert.is_nil(c.misfit)
      assert.equal(100, #c.res.embeddings)
      local J = json.new()
      assert.equal("clean", plan:check("BatchEmbedTextResponse", J:decode(body), NULL, true))
      local bad = body:sub(1, -5) .. ',"x"]}]}'
      c = assert_decode_same("BatchEmbedTextResponse", from_text(bad))
      assert.equal("field 'embeddings[99].value[768]' is a JSON string (x), not a float", c.misfit)
    end)

    it("agrees with the Lua path on random replies of every message, as text and as plain tables (seeded)", function()
      local r = rng(7)
      local count = { clean = 0, doubt = 0, misfit = 0 }
      for _, name in ipairs(sorted_messages()) do
        for _ = 1, 40 do
          local t = gen_msg(REPLY, r, name, 0, r() < 0.5 and 0 or 0.05)
          local text = cjson.encode(t)
          assert_decode_same(name, from_text(text))
          assert_decode_same(name, from_table(t))
          local J = json.new()
          local outcome = plan:check(name, J:decode(text), NULL, true)
          count[outcome] = count[outcome] + 1
        end
      end
      for k, v in pairs(count) do assert.is_true(v > 100, k .. ": " .. v) end
    end)
  end)
end)

describe("codec: wire bytes through the emulator", function()
  local emu, client

  setup(function()
    emu = emulator.start { "--api-key", "k1=alice@example.com" }
    client = gemini.new { api_key = "k1", base_url = emu.url, retry = false }
  end)
  teardown(function()
    json.native(true)
    client:close()
    emu:stop()
  end)

  local function journal()
    local _, j = emu:control("GET", "/emulator/v1/requests")
    return j
  end

  local function round(on)
    json.native(on)
    emu:control("DELETE", "/emulator/v1/requests")
    local res = {}
    res[1] = assert(client:generate_text("models/text-bison-001", {
      prompt = { text = "tab\t \"quoted\" caf\195\169 \1" }, temperature = 0.25, candidate_count = 2, top_k = 40,
      safety_settings = { { category = "HARM_CATEGORY_TOXICITY", threshold = "BLOCK_LOW_AND_ABOVE" } },
      stopSequences = {} }))
    res[2] = assert(client:batch_embed_text("models/embedding-gecko-001", { texts = { "a", "b\n", "c" } }))
    res[3] = assert(client:count_text_tokens("models/text-bison-001", { prompt = { text = "one two" } }))
    json.native(true)
    local bodies = {}
    for i, r in ipairs(journal()) do bodies[i] = r.path .. " " .. r.body end
    return bodies, res
  end

  it("sends the same bytes and decodes the same results on both paths", function()
    local c, cres = round(true)
    local l, lres = round(false)
    assert.same(l, c)
    assert.equal(3, #c)
    assert.equal('/v1beta3/models/text-bison-001:generateText {"prompt":{"text":"tab\\t \\"quoted\\" caf\195\169 ' ..
      '\\u0001"},"temperature":0.25,"candidateCount":2,"topK":40,"safetySettings":[{"category":' ..
      '"HARM_CATEGORY_TOXICITY","threshold":"BLOCK_LOW_AND_ABOVE"}],"stopSequences":[]}', c[1])
    assert.equal('/v1beta3/models/embedding-gecko-001:batchEmbedText {"texts":["a","b\\n","c"]}', c[2])
    assert.equal('/v1beta3/models/text-bison-001:countTextTokens {"prompt":{"text":"one two"}}', c[3])
    assert.is_nil(differ(lres, cres))
    if mtype then assert.equal("integer", mtype(cres[3].tokenCount)) end
  end)
end)
