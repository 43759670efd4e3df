-- Strict proto3 JSON as Google's front end parses it, over real HTTP: unknown names (all of them,
-- with paths), wrong JSON types, objects vs lists, enums by name or number, camelCase and snake_case,
-- OUTPUT_ONLY fields ignored, malformed JSON, then the backend's semantic checks.
local helper = require "spec.helpers.emulator"

local emu

-- status, decoded body (nil when not JSON), raw body, headers; the key defaults to the first --api-key
local function api(method, path, body, key) return emu:api(method, path, body, key) end

local GEN = "/v1beta3/models/text-bison-001:generateText"
local CHAT = "/v1beta3/models/chat-bison-001:generateMessage"

-- assert a 400 INVALID_ARGUMENT with this message and these BadRequest violations
local function assert_bad(status, body, message, violations)
  assert.equal(400, status)
  assert.equal(400, body.error.code)
  assert.equal("INVALID_ARGUMENT", body.error.status)
  assert.equal(message, body.error.message)
  if violations then
    assert.equal("type.googleapis.com/google.rpc.BadRequest", body.error.details[1]["@type"])
    assert.same(violations, body.error.details[1].fieldViolations)
  end
end

describe("emulator request validation", function()
  emu = helper.with_emulator{ "--api-key", "k1=alice@example.com", reset = false }

  describe("unknown names", function()
    it("rejects a top-level unknown field with Google's message and a description-only violation", function()
      local status, body = api("POST", GEN, '{"prompt":{"text":"hi"},"stream":true}')
      local msg = "Invalid JSON payload received. Unknown name \"stream\": Cannot find field."
      assert_bad(status, body, msg, { { description = msg } })
    end)

    it("reports a nested unknown field at its path", function()
      local status, body = api("POST", GEN, '{"prompt":{"text":"hi","foo":1}}')
      local msg = "Invalid JSON payload received. Unknown name \"foo\" at 'prompt': Cannot find field."
      assert_bad(status, body, msg, { { field = "prompt", description = msg } })
    end)

    it("reports every unknown name, in order, joined by newlines, with snake_case paths and indexes", function()
      local status, body = api("POST", GEN,
        '{"a":1,"prompt":{"text":"hi","b":2},"safetySettings":[{"category":1,"threshold":1},{"c":3}]}')
      local d1 = "Invalid JSON payload received. Unknown name \"a\": Cannot find field."
      local d2 = "Invalid JSON payload received. Unknown name \"b\" at 'prompt': Cannot find field."
      local d3 = "Invalid JSON payload received. Unknown name \"c\" at 'safety_settings[1]': Cannot find field."
      assert_bad(status, body, d1 .. "\n" .. d2 .. "\n" .. d3,
        { { description = d1 }, { field = "prompt", description = d2 },
          { field = "safety_settings[1]", description = d3 } })
    end)
  end)

  describe("wrong JSON types", function()
    it("reproduces the recorded embedText {\"text\":{}} error byte for byte", function()
      local status, _, raw = api("POST", "/v1beta3/models/embedding-gecko-001:embedText", '{"text":{}}')
      assert.equal(400, status)
      assert.equal([[{
  "error": {
    "code": 400,
    "message": "Invalid value (text), Starting an object on a scalar field",
    "status": "INVALID_ARGUMENT",
    "details": [
      {
        "@type": "type.googleapis.com/google.rpc.BadRequest",
        "fieldViolations": [
          {
            "description": "Invalid value (text), Starting an object on a scalar field"
          }
        ]
      }
    ]
  }
}
]], raw)
    end)

    it("names the field and its proto type for a bad scalar", function()
      local status, body = api("POST", GEN, '{"prompt":{"text":"hi"},"temperature":"hot"}')
      local msg = "Invalid value at 'temperature' (TYPE_FLOAT), \"hot\""
      assert_bad(status, body, msg, { { field = "temperature", description = msg } })
      status, body = api("POST", GEN, '{"prompt":{"text":5}}')
      assert_bad(status, body, "Invalid value at 'prompt.text' (TYPE_STRING), 5")
      status, body = api("POST", GEN, '{"prompt":{"text":"x"},"candidateCount":1.5}')
      assert_bad(status, body, "Invalid value at 'candidate_count' (TYPE_INT32), 1.5")
      status, body = api("POST", GEN, '{"prompt":{"text":"x"},"topK":3000000000}')
      assert_bad(status, body, "Invalid value at 'top_k' (TYPE_INT32), 3000000000")
      status, body = api("POST", GEN, '{"prompt":{"text":"x"},"topK":true}')
      assert_bad(status, body, "Invalid value at 'top_k' (TYPE_INT32), true")
      -- numbers in strings: no leading or trailing space (protobuf's DataPiece::StringToNumber)
      status, body = api("POST", GEN, '{"prompt":{"text":"x"},"temperature":" 0.5"}')
      assert_bad(status, body, "Invalid value at 'temperature' (TYPE_FLOAT), \" 0.5\"")
      status, body = api("POST", GEN, '{"prompt":{"text":"x"},"temperature":"0.5 "}')
      assert_bad(status, body, "Invalid value at 'temperature' (TYPE_FLOAT), \"0.5 \"")
    end)

    it("accepts numbers written as strings, as proto3 JSON allows", function()
      local status, body = api("POST", GEN, '{"prompt":{"text":"x"},"temperature":"0.5","candidateCount":"2"}')
      assert.equal(200, status)
      assert.equal(2, #body.candidates)
    end)

    it("rejects a scalar where a message belongs", function()
      local status, body = api("POST", GEN, '{"prompt":"hello"}')
      assert_bad(status, body,
        "Invalid value at 'prompt' (type.googleapis.com/google.ai.generativelanguage.v1beta3.TextPrompt), \"hello\"")
    end)

    it("rejects a list on a non-repeated field and an object where a list belongs", function()
      local status, body = api("POST", GEN, '{"prompt":[{"text":"x"}]}')
      assert_bad(status, body,
        "Invalid JSON payload received. Unknown name \"prompt\": Proto field is not repeating, cannot start list.")
      status, body = api("POST", CHAT, '{"prompt":{"messages":{"content":"x"}}}')
      assert_bad(status, body,
        "Invalid JSON payload received. Unknown name \"messages\" at 'prompt': " ..
        "Proto field is repeated, cannot start object.")
      status, body = api("POST", "/v1beta3/models/embedding-gecko-001:batchEmbedText", '{"texts":"one"}')
      assert_bad(status, body, "Invalid value at 'texts' (TYPE_STRING), \"one\"")
    end)

    it("rejects unknown enum names and numbers", function()
      local status, body = api("POST", GEN,
        '{"prompt":{"text":"x"},"safetySettings":[{"category":"HARM_CATEGORY_FOO","threshold":"BLOCK_NONE"}]}')
      local msg = "Invalid value at 'safety_settings[0].category' " ..
        "(type.googleapis.com/google.ai.generativelanguage.v1beta3.HarmCategory), \"HARM_CATEGORY_FOO\""
      assert_bad(status, body, msg, { { field = "safety_settings[0].category", description = msg } })
      status, body = api("POST", GEN, '{"prompt":{"text":"x"},"safetySettings":[{"category":2,"threshold":99}]}')
      assert_bad(status, body, "Invalid value at 'safety_settings[0].threshold' " ..
        "(type.googleapis.com/google.ai.generativelanguage.v1beta3.SafetySetting.HarmBlockThreshold), 99")
    end)

    it("accepts enums by name or number and snake_case names", function()
      local status = api("POST", GEN,
        '{"prompt":{"text":"x"},"safety_settings":[{"category":"HARM_CATEGORY_TOXICITY","threshold":3},' ..
        '{"category":3,"threshold":"BLOCK_NONE"}],"max_output_tokens":10,"top_p":0.5,"top_k":3,"stop_sequences":["z"]}')
      assert.equal(200, status)
      -- a known number sent as a JSON string is taken too (protobuf's DataPiece::ToEnum); an unknown one is not
      status = api("POST", GEN, '{"prompt":{"text":"x"},"safetySettings":[{"category":"2","threshold":"4"}]}')
      assert.equal(200, status)
      local body
      status, body = api("POST", GEN, '{"prompt":{"text":"x"},"safetySettings":[{"category":"77","threshold":"4"}]}')
      assert_bad(status, body, "Invalid value at 'safety_settings[0].category' " ..
        "(type.googleapis.com/google.ai.generativelanguage.v1beta3.HarmCategory), \"77\"")
    end)

    it("rejects two members of one oneof", function()
      local status, body = api("POST", "/v1beta3/tunedModels",
        '{"baseModel":"models/text-bison-001","tunedModelSource":{"tunedModel":"tunedModels/x"}}')
      assert_bad(status, body, "Invalid value at 'tuned_model_source' (oneof), oneof field 'source_model' " ..
        "is already set. Cannot set 'tuned_model_source'")
    end)

    it("treats null as unset", function()
      local status = api("POST", GEN, '{"prompt":{"text":"x"},"temperature":null}')
      assert.equal(200, status)
    end)
  end)

  describe("malformed JSON", function()
    it("reports the parser's message with the context and a caret", function()
      local status, body = api("POST", GEN, '{"prompt": {"text": "hi"}')
      assert.equal(400, status)
      assert.equal("Invalid JSON payload received. Unexpected end of string. Expected , or } after key:value pair.\n" ..
        "mpt\": {\"text\": \"hi\"}\n" .. string.rep(" ", 20) .. "^", body.error.message)
      local st2, b2 = api("POST", GEN, '{"prompt": }')
      assert.equal(400, st2)
      assert.equal("Invalid JSON payload received. Unexpected token.\n{\"prompt\": }\n           ^", b2.error.message)
      local st3, b3 = api("POST", GEN, '{"prompt": #}')
      assert.equal(400, st3)
      assert.truthy(b3.error.message:find("^Invalid JSON payload received%. Expected a value%."))
    end)

    it("requires the body to be an object", function()
      local status, body = api("POST", GEN, "[1, 2]")
      assert_bad(status, body, "Invalid JSON payload received. Unknown name \"\": Root element must be a message.")
    end)
  end)

  describe("OUTPUT_ONLY fields", function()
    it("ignores them in requests", function()
      local status, body = api("POST", "/v1beta3/tunedModels", { displayName = "out only",
        baseModel = "models/text-bison-001", name = "tunedModels/ignored", state = "ACTIVE",
        createTime = "2020-01-01T00:00:00Z",
        tuningTask = { snapshots = { { step = 99 } },
                       trainingData = { examples = { examples = { { textInput = "a", output = "b" } } } } } })
      assert.equal(200, status)
      assert.truthy(body.metadata.tunedModel:find("^tunedModels/out%-only%-"))
      local _, m = api("GET", "/v1beta3/" .. body.metadata.tunedModel)
      assert.equal("CREATING", m.state)
      assert.are_not.equal("2020-01-01T00:00:00Z", m.createTime)
    end)

    it("still type-checks them", function()
      local status, body = api("POST", "/v1beta3/tunedModels", '{"createTime": 5}')
      assert_bad(status, body, "Invalid value at 'create_time' (type.googleapis.com/google.protobuf.Timestamp), 5")
    end)
  end)

  describe("semantic checks", function()
    it("requires the prompt", function()
      local status, body = api("POST", GEN, "{}")
      assert_bad(status, body, "* GenerateTextRequest.prompt: prompt is required",
        { { field = "prompt", description = "* GenerateTextRequest.prompt: prompt is required" } })
      status, body = api("POST", GEN, '{"prompt":{}}')
      assert_bad(status, body, "* GenerateTextRequest.prompt.text: text must not be empty")
      status, body = api("POST", CHAT, '{"prompt":{"messages":[]}}')
      assert_bad(status, body, "* GenerateMessageRequest.prompt.messages: messages must not be empty")
    end)

    it("checks temperature, candidateCount, topP, topK and maxOutputTokens ranges", function()
      local function check(extra, message)
        local body = '{"prompt":{"text":"x"},' .. extra .. '}'
        local status, b = api("POST", GEN, body)
        assert_bad(status, b, message)
      end
      check('"temperature":1.5', "* GenerateTextRequest.temperature: temperature must be in the range [0.0, 1.0]")
      check('"temperature":-0.1', "* GenerateTextRequest.temperature: temperature must be in the range [0.0, 1.0]")
      check('"candidateCount":9', "* GenerateTextRequest.candidate_count: candidate_count must be in the range [1, 8]")
      check('"candidateCount":0', "* GenerateTextRequest.candidate_count: candidate_count must be in the range [1, 8]")
      check('"topP":2', "* GenerateTextRequest.top_p: top_p must be in the range [0.0, 1.0]")
      check('"topK":-1', "* GenerateTextRequest.top_k: top_k must not be negative")
      check('"maxOutputTokens":2000',
        "* GenerateTextRequest.max_output_tokens: max_output_tokens must be in the range [1, 1024]")
      local status = api("POST", GEN, '{"prompt":{"text":"x"},"candidateCount":8,"temperature":1}')
      assert.equal(200, status)
    end)

    it("reports several semantic violations together", function()
      local status, body = api("POST", GEN, '{"prompt":{"text":"x"},"temperature":3,"candidateCount":10}')
      assert.equal(400, status)
      assert.equal(2, #body.error.details[1].fieldViolations)
      assert.equal("temperature", body.error.details[1].fieldViolations[1].field)
      assert.equal("candidate_count", body.error.details[1].fieldViolations[2].field)
    end)

    it("rejects a prompt beyond the model's input token limit", function()
      local status, body = api("POST", "/v1beta3/models/embedding-gecko-001:embedText",
        { text = string.rep("word ", 1100) })
      assert.equal(400, status)
      assert.truthy(body.error.message:find("exceeds the maximum number of tokens allowed (1024)", 1, true))
    end)
  end)
end)

describe("emulator JSON codec (in process)", function()
  local json = require "gemini.emulator.json"
  local status = require "gemini.emulator.status"

  it("tells objects from arrays and keeps key order, number literals and duplicate keys", function()
    local v = assert(json.decode('{"b": {}, "a": [], "n": 1.0, "i": 7, "b": [1]}'))
    assert.is_true(json.is_object(v))
    assert.is_true(json.is_array(v.a))
    assert.same({ "b", "a", "n", "i" }, json.keys(v))
    assert.equal("1.0", json.literal(v, "n"))
    assert.equal("7", json.literal(v, "i"))
    assert.same({ "b" }, json.duplicates(v))
    assert.is_true(json.is_array(v.b))
    assert.equal(json.null, json.decode('[null]')[1])
    assert.equal("\226\130\172\240\159\152\128\n", json.decode('"\\u20ac\\ud83d\\ude00\\n"'))
  end)

  it("reports errors like protobuf's stream parser", function()
    local _, e = json.decode('{"a" 1}')
    assert.equal('Expected : between key:value pair.\n{"a" 1}\n     ^', e)
    _, e = json.decode("[1 2]")
    assert.equal("Expected , or ] after array value.\n[1 2]\n   ^", e)
    _, e = json.decode("{,}")
    assert.equal("Expected an object key or }.\n{,}\n ^", e)
    _, e = json.decode('"abc')
    assert.truthy(e:find("^Closing quote expected in string%."))
    _, e = json.decode("{} x")
    assert.truthy(e:find("^Parsing terminated before end of input%."))
    _, e = json.decode('"\\uzzzz"')
    assert.truthy(e:find("^Invalid escape sequence%."))
    _, e = json.decode('"\\ud800"')
    assert.equal('Missing low surrogate.\n"\\ud800"\n ^', e)
    _, e = json.decode('"\\ud800\\u0041"')
    assert.truthy(e:find("^Invalid low surrogate%."))
    _, e = json.decode('"\\udc00"')
    assert.truthy(e:find("^Invalid unicode code point%."))
    _, e = json.decode('"\\u12"')
    assert.truthy(e:find("^Illegal hex string%."))
    -- a value position holding a bracket, a separator or a bare word: "Unexpected token."
    _, e = json.decode("[1,,2]")
    assert.equal("Unexpected token.\n[1,,2]\n   ^", e)
    _, e = json.decode('{"a": tru}')
    assert.equal('Unexpected token.\n{"a": tru}\n      ^', e)
    _, e = json.decode("{null: 1}")
    assert.equal("Expected an object key or }.\n{null: 1}\n     ^", e)
    assert.is_nil((json.decode("01")))
    _, e = json.decode('{"t": 01}')
    assert.equal('Octal/hex numbers are not valid JSON values.\n{"t": 01}\n      ^', e)
    _, e = json.decode("[1e]")
    assert.equal("Unable to parse number.\n[1e]\n ^", e)
    _, e = json.decode("[1+2]")
    assert.equal("Unable to parse number.\n[1+2]\n ^", e)
    assert.equal(1.5, json.decode("1.5"))
    assert.equal(1, json.decode("1."))  -- strtod takes "1." whole, as protobuf's ParseDoubleHelper does
  end)

  it("takes what protobuf's stream parser takes: single quotes, bare keys, any escaped character", function()
    local v = assert(json.decode([[{prompt: {text: 'it\'s "x"'}, $k_1: "a\x\/\v"}]]))
    assert.same({ "prompt", "$k_1" }, json.keys(v))
    assert.equal('it\'s "x"', v.prompt.text)
    assert.equal("ax/\v", v["$k_1"])
  end)

  it("accepts trailing commas in objects and arrays, as protobuf's stream parser (and Google) did", function()
    local v = assert(json.decode('{"a": [1, 2,], "b": {"c": true,},}'))
    assert.same({ "a", "b" }, json.keys(v))
    assert.same({ 1, 2 }, { v.a[1], v.a[2] })
    assert.equal(2, #v.a)
    assert.is_true(v.b.c)
  end)

  it("encodes ordered objects pretty-printed like Google, with escapes and float32 printing", function()
    local o = json.object("z", 1, "a", json.array{ json.f32(0.7), json.f32(2.48718451) }, "e", json.object(),
      "l", json.array(), "s", "tab\t\"q\" \1 é")
    assert.equal('{\n  "z": 1,\n  "a": [\n    0.7,\n    2.4871845\n  ],\n  "e": {},\n  "l": [],\n' ..
      '  "s": "tab\\t\\"q\\" \\u0001 é"\n}', json.encode(o, { pretty = true }))
    assert.equal('{"z":1,"a":[0.7,2.4871845],"e":{},"l":[],"s":"tab\\t\\"q\\" \\u0001 é"}', json.encode(o))
    assert.equal("0.1", json.number(json.f32(0.1)))
    assert.equal("-1.1145603e-06", json.number(json.f32(-1.1145603e-06)))
    assert.equal("0.30000000000000004", json.number(0.1 + 0.2))
  end)

  it("decodes a 10 MiB body", function()
    local parts = {}
    for i = 1, 200000 do
      parts[i] = string.format("%q", "text number " .. i .. " with some words to fill the space up")
    end
    local body = '{"texts":[' .. table.concat(parts, ",") .. ']}'
    assert.is_true(#body > 10 * 1024 * 1024)
    local v = assert(json.decode(body))
    assert.equal(200000, #v.texts)
    assert.equal("text number 200000 with some words to fill the space up", v.texts[200000])
  end)

  it("builds Google's error envelope with details omitted when empty", function()
    local r = status.error_response("NOT_FOUND", "gone")
    assert.equal(404, r.status)
    assert.equal("application/json; charset=UTF-8", r.headers["Content-Type"])
    assert.equal('{\n  "error": {\n    "code": 404,\n    "message": "gone",\n    "status": "NOT_FOUND"\n  }\n}\n',
      r.body)
    local r2 = status.error_response("RESOURCE_EXHAUSTED", "slow down", { status.retry_info(2) })
    assert.equal(429, r2.status)
    assert.truthy(r2.body:find('"@type": "type.googleapis.com/google.rpc.RetryInfo",\n        "retryDelay": "2s"', 1,
      true))
    assert.equal(413, status.error_response("INVALID_ARGUMENT", "too big", nil, 413).status)
    assert.equal(400, status.to_http("FAILED_PRECONDITION"))
    assert.equal(9, status.codes.FAILED_PRECONDITION)
  end)
end)
