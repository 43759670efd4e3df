-- Pure unit tests of gemini.json: the encoder, the schema codec (unknown fields, arrays, enums,
-- integers) and the decoder.
local jsonmod = require("gemini.json")
local cjson = require("cjson").new()

describe("gemini.json encoder", function()
  local json = jsonmod.new()

  it("writes numbers exactly: integers without fraction, floats in the shortest text that round-trips", function()
    assert.equal("3", jsonmod.number(3))
    assert.equal("3", jsonmod.number(3.0))
    assert.equal("0.1", jsonmod.number(0.1))
    assert.equal("0.3333333333333333", jsonmod.number(1 / 3))
    assert.equal(1 / 3, tonumber(jsonmod.number(1 / 3)))
    if math.type then assert.equal("9007199254740993", jsonmod.number(math.tointeger(9007199254740992) + 1)) end
    assert.equal(0.1 + 0.2, tonumber(jsonmod.number(0.1 + 0.2)))
    assert.has_error(function() jsonmod.number(0 / 0) end)
    assert.has_error(function() jsonmod.number(math.huge) end)
  end)

  it("escapes strings", function()
    assert.equal([["a\"b\\c\n\t\u0001"]], json:encode("a\"b\\c\n\t\1"))
    assert.equal('"é"', json:encode("é"))
  end)

  it("writes free-form tables: sequences as arrays, marked empty arrays, sorted objects, null", function()
    assert.equal('{"a":[1,2],"b":{},"c":[],"d":null}',
      json:encode({ b = {}, a = { 1, 2 }, c = jsonmod.array(), d = json.null }))
    assert.has_error(function() json:encode({ [true] = 1 }) end)
    local cyc = {}; cyc.x = cyc
    assert.has_error(function() json:encode(cyc) end)
  end)

  it("decodes without raising", function()
    local v, err = json:decode("{bad")
    assert.is_nil(v)
    assert.is_string(err)
    assert.same({ a = 1 }, json:decode('{"a":1}'))
  end)
end)

describe("gemini.json schema codec", function()
  local json = jsonmod.new()

  it("sends fields in proto order with camelCase names, snake_case accepted", function()
    local s = json:encode_message("GenerateTextRequest", {
      stop_sequences = { "x" }, candidate_count = 2, prompt = { text = "hi" }, temperature = 0.5 })
    assert.equal('{"prompt":{"text":"hi"},"temperature":0.5,"candidateCount":2,"stopSequences":["x"]}', s)
  end)

  it("sends an empty Lua table in a repeated field as [] and in a message field as {}", function()
    local s = json:encode_message("GenerateTextRequest", { prompt = {}, safetySettings = {}, stopSequences = {} })
    assert.equal('{"prompt":{},"safetySettings":[],"stopSequences":[]}', s)
    local t = cjson.decode(s)
    assert.same({}, t.safetySettings)
  end)

  it("rejects a misspelled field with a suggestion", function()
    local ok, err = pcall(json.encode_message, json, "GenerateTextRequest",
      { prompt = { text = "x" }, temprature = 1 })
    assert.is_false(ok)
    assert.equal("unknown field 'temprature' in GenerateTextRequest; did you mean 'temperature'?", err)
  end)

  it("names the path of a nested unknown field", function()
    local ok, err = pcall(json.encode_message, json, "GenerateMessageRequest",
      { prompt = { messages = { { content = "x", autor = "me" } } } })
    assert.is_false(ok)
    assert.equal("unknown field 'autor' in Message at 'prompt.messages[0]'; did you mean 'author'?", err)
  end)

  it("rejects excluded (path-bound) fields as unknown", function()
    local ok, err = pcall(json.encode_message, json, "EmbedTextRequest", { text = "x", model = "m" },
      { model = true })
    assert.is_false(ok)
    assert.matches("unknown field 'model' in EmbedTextRequest", err, 1, true)
  end)

  it("checks types: strings, integers, lists, enums", function()
    local function fails(msg, v, pattern)
      local ok, err = pcall(json.encode_message, json, msg, v)
      assert.is_false(ok)
      assert.matches(pattern, err, 1, true)
    end
    fails("EmbedTextRequest", { text = {} }, "field 'text' must be a string, got table")
    fails("GenerateTextRequest", { candidateCount = 1.5 }, "field 'candidateCount' must be an integer, got 1.5")
    fails("GenerateTextRequest", { stopSequences = "x" }, "field 'stopSequences' must be a list")
    fails("GenerateTextRequest", { stopSequences = { a = 1 } }, "non-sequence keys")
    fails("Permission", { role = "READR" },
      "invalid value 'READR' for field 'role' (Permission.Role); did you mean 'READER'?")
    fails("TunedModel", { baseModel = "models/x", tunedModelSource = { tunedModel = "tunedModels/y" } },
      "only one of source_model")
  end)

  it("accepts enum numbers and field masks as lists", function()
    assert.equal('{"role":3}', json:encode_message("Permission", { role = 3 }))
    assert.equal('{"updateMask":"a,b"}',
      json:encode_message("UpdatePermissionRequest", { updateMask = { "a", "b" } }))
  end)

  it("decodes integer fields as integers, keeps floats and enums, drops nulls", function()
    local t = json:decode('{"tokenCount": 12}')
    json:decode_message("CountTextTokensResponse", t)
    assert.equal(12, t.tokenCount)
    if math.type then assert.equal("integer", math.type(t.tokenCount)) end
    local tm = json:decode_message("TunedModel", json:decode(
      '{"state":"ACTIVE","topK":40,"temperature":0.7,"description":null,' ..
      '"tuningTask":{"snapshots":[{"step":3,"epoch":1,"meanLoss":0.5}],"hyperparameters":{"batchSize":4}}}'))
    assert.equal("ACTIVE", tm.state)
    assert.is_nil(tm.description)
    assert.equal(0.7, tm.temperature)
    if math.type then
      assert.equal("integer", math.type(tm.topK))
      assert.equal("integer", math.type(tm.tuningTask.snapshots[1].step))
      assert.equal("integer", math.type(tm.tuningTask.hyperparameters.batchSize))
      assert.equal("float", math.type(tm.tuningTask.snapshots[1].meanLoss))
    end
  end)

  it("decodes an Any by its @type", function()
    local md = json:decode_any(json:decode(
      '{"@type":"type.googleapis.com/google.ai.generativelanguage.v1beta3.CreateTunedModelMetadata",' ..
      '"totalSteps":23,"completedPercent":50.5}'))
    assert.equal(23, md.totalSteps)
    if math.type then assert.equal("integer", math.type(md.totalSteps)) end
    assert.equal(50.5, md.completedPercent)
  end)

  it("suggests near names", function()
    assert.equal("temperature", jsonmod.suggest("temprature", { "prompt", "temperature", "topK" }))
    assert.is_nil(jsonmod.suggest("zzzzzz", { "prompt", "temperature" }))
  end)

  it("takes a pluggable codec", function()
    local calls = 0
    local c = jsonmod.new({ decode = function(s) calls = calls + 1; return cjson.decode(s) end,
                             encode = cjson.encode, null = cjson.null })
    assert.same({ 1 }, c:decode("[1]"))
    assert.equal(1, calls)
    assert.has_error(function() jsonmod.new({}) end)
  end)
end)
