-- Tuned models and the create operation: the recorded create response, step-by-step progress from
-- elapsed time, ACTIVE with the TunedModel as the operation's response, the [[fail]] marker,
-- FAILED_PRECONDITION before ACTIVE, names, ids, defaults, list/filter/paging, patch, delete.
-- In-process tests drive a fake clock; the HTTP tests poll a real emulator under /v1beta3/ and /v1/.
local helper = require "spec.helpers.emulator"
local App = require "gemini.emulator.app"
local json = require "gemini.emulator.json"

local function numbers_request(display, batch, epochs, n)
  local ex = {}
  for i = 1, n or 15 do
    ex[i] = string.format('{"text_input": "%d", "output": "%d"}', 2 * i - 1, 2 * i)
  end
  return '{"display_name": "' .. display .. '", "base_model": "models/text-bison-001", "tuning_task": {' ..
    '"hyperparameters": {"batch_size": ' .. batch .. ', "learning_rate": 0.001, "epoch_count": ' .. epochs .. '},' ..
    '"training_data": {"examples": {"examples": [' .. table.concat(ex, ",") .. ']}}}}'
end

-- an in-process app on a fake clock
local function fake()
  local clock = { t = 1695153385.999303 }
  local app = App.new{ api_keys = { k1 = "alice@example.com", k2 = "bob@example.com" }, tuning_step_ms = 1000,
                       now = function() return clock.t end }
  local function call(method, path, body, key, query)
    local q = "key=" .. (key or "k1") .. (query and ("&" .. query) or "")
    local r = app:handle{ method = method, path = path, query = q, headers = {}, body = body }
    return r.status, json.decode(r.body), r.body
  end
  return app, clock, call
end

describe("emulator tuning (in process, fake clock)", function()
  it("answers create like the recorded tutorial: operation name, metadata, no done", function()
    local _, _, call = fake()
    local status, op, raw = call("POST", "/v1beta3/tunedModels", numbers_request("number generator model", 2, 3))
    assert.equal(200, status)
    local id, opid = op.name:match("^tunedModels/(number%-generator%-model%-[a-z0-9]+)/operations/([a-z0-9]+)$")
    assert.truthy(id)
    assert.equal(12, #id - #"number-generator-model-")
    assert.equal(12, #opid)
    assert.equal('{\n  "name": "' .. op.name .. '",\n  "metadata": {\n' ..
      '    "@type": "type.googleapis.com/google.ai.generativelanguage.v1beta3.CreateTunedModelMetadata",\n' ..
      '    "totalSteps": 23,\n    "tunedModel": "tunedModels/' .. id .. '"\n  }\n}\n', raw)
  end)

  it("computes totalSteps = ceil(examples * epochs / batch) like every recording", function()
    local _, _, call = fake()
    local cases = { { 2, 3, 23 }, { 4, 3, 12 }, { 4, 100, 375 }, { 2, 5, 38 } }
    for i, c in ipairs(cases) do
      local _, op = call("POST", "/v1beta3/tunedModels", numbers_request("m" .. i, c[1], c[2]))
      assert.equal(c[3], op.metadata.totalSteps)
    end
  end)

  it("advances step by step with elapsed time, then is ACTIVE and the operation done", function()
    local _, clock, call = fake()
    local _, op = call("POST", "/v1beta3/tunedModels", numbers_request("number generator", 4, 3))
    local name = op.metadata.tunedModel
    local st, m, raw = call("GET", "/v1beta3/" .. name)
    assert.equal(200, st)
    assert.equal("CREATING", m.state)
    assert.equal("2023-09-19T19:56:25.999303Z", m.createTime)
    assert.equal(m.createTime, m.updateTime)
    assert.same({ epochCount = 3, batchSize = 4, learningRate = 0.001 }, m.tuningTask.hyperparameters)
    assert.is_nil(m.tuningTask.snapshots)
    assert.is_nil(m.tuningTask.completeTime)
    assert.is_nil(m.tuningTask.trainingData) -- INPUT_ONLY
    assert.equal(0.7, m.temperature); assert.equal(0.95, m.topP); assert.equal(40, m.topK)
    assert.truthy(raw:find('"state": "CREATING",\n  "createTime"', 1, true))
    -- generateText before ACTIVE
    local gs, g = call("POST", "/v1beta3/" .. name .. ":generateText", '{"prompt":{"text":"3"}}')
    assert.equal(400, gs)
    assert.equal("FAILED_PRECONDITION", g.error.status)
    -- 5 steps later
    clock.t = clock.t + 5.5
    local _, o = call("GET", "/v1/" .. op.name)
    assert.is_nil(o.done)
    assert.equal(12, o.metadata.totalSteps)
    assert.equal(5, o.metadata.completedSteps)
    assert.near(5 / 12 * 100, o.metadata.completedPercent, 1e-4)
    assert.equal(5, #o.metadata.snapshots)
    assert.is_nil(o.metadata.snapshots[1].epoch) -- epoch 0 omitted
    assert.equal(1, o.metadata.snapshots[4].epoch) -- floor(4 * 4 / 15)
    assert.equal(5, o.metadata.snapshots[5].step)
    assert.is_true(o.metadata.snapshots[5].meanLoss < o.metadata.snapshots[1].meanLoss)
    -- nanosecond digits, as Google printed computeTime and startTime (createTime etc. have 6)
    assert.equal("2023-09-19T19:56:26.999303017Z", o.metadata.snapshots[1].computeTime)
    assert.matches("^2023%-09%-19T19:56:25%.999303%d%d%dZ$", m.tuningTask.startTime)
    -- done
    clock.t = clock.t + 10
    local _, fin = call("GET", "/v1beta3/" .. op.name)
    assert.is_true(fin.done)
    assert.is_nil(fin.error)
    assert.equal(12, fin.metadata.completedSteps)
    assert.equal(100, fin.metadata.completedPercent)
    assert.equal("type.googleapis.com/google.ai.generativelanguage.v1beta3.TunedModel", fin.response["@type"])
    assert.equal("ACTIVE", fin.response.state)
    assert.equal(name, fin.response.name)
    local _, active = call("GET", "/v1beta3/" .. name)
    assert.equal("ACTIVE", active.state)
    assert.equal("2023-09-19T19:56:37.999303Z", active.tuningTask.completeTime)
    assert.equal(active.tuningTask.completeTime, active.updateTime)
    assert.equal(12, #active.tuningTask.snapshots)
    -- the tuned model answers with what it learned
    local gs2, g2 = call("POST", "/v1beta3/" .. name .. ":generateText", '{"prompt":{"text":"3"},"candidate_count":2}')
    assert.equal(200, gs2)
    assert.equal(2, #g2.candidates)
    assert.equal("4", g2.candidates[1].output)
  end)

  it("ends FAILED with the operation's error set for a [[fail]] example", function()
    local _, clock, call = fake()
    local body = '{"base_model":"models/text-bison-001","tuning_task":{"hyperparameters":{"batch_size":1,' ..
      '"epoch_count":4},"training_data":{"examples":{"examples":[{"text_input":"a","output":"[[fail]]"}]}}}}'
    local _, op = call("POST", "/v1beta3/tunedModels", body)
    clock.t = clock.t + 100
    local _, o = call("GET", "/v1beta3/" .. op.name)
    assert.is_true(o.done)
    assert.is_nil(o.response)
    assert.equal(13, o.error.code)
    assert.is_string(o.error.message)
    local _, m = call("GET", "/v1beta3/" .. op.metadata.tunedModel)
    assert.equal("FAILED", m.state)
    assert.is_nil(m.tuningTask.completeTime)
    local gs, g = call("POST", "/v1beta3/" .. op.metadata.tunedModel .. ":generateText", '{"prompt":{"text":"a"}}')
    assert.equal(400, gs)
    assert.equal("FAILED_PRECONDITION", g.error.status)
  end)

  it("uses defaults, derives names from displayName and honours tunedModelId", function()
    local _, _, call = fake()
    local body = '{"displayName":"test_number_generator","baseModel":"models/text-bison-001",' ..
      '"tuningTask":{"trainingData":{"examples":{"examples":[{"textInput":"1","output":"2"}]}}}}'
    local _, op = call("POST", "/v1beta3/tunedModels", body)
    assert.truthy(op.metadata.tunedModel:match("^tunedModels/testnumbergenerator%-[a-z0-9]+$"))
    assert.equal(1, op.metadata.totalSteps) -- ceil(1 * 10 / 16)
    local _, m = call("GET", "/v1beta3/" .. op.metadata.tunedModel)
    assert.same({ epochCount = 10, batchSize = 16, learningRate = 0.002 }, m.tuningTask.hyperparameters)
    local st, op2 = call("POST", "/v1beta3/tunedModels", body, nil, "tunedModelId=my-model-1")
    assert.equal(200, st)
    assert.equal("tunedModels/my-model-1", op2.metadata.tunedModel)
    local st3, e3 = call("POST", "/v1beta3/tunedModels", body, nil, "tunedModelId=my-model-1")
    assert.equal(409, st3)
    assert.equal("ALREADY_EXISTS", e3.error.status)
    for _, bad in ipairs{ "1abc", "Abc", "abc-", string.rep("a", 41), "a_b" } do
      local s, e = call("POST", "/v1beta3/tunedModels", body, nil, "tunedModelId=" .. bad)
      assert.equal(400, s)
      assert.equal("tuned_model_id", e.error.details[1].fieldViolations[1].field)
    end
  end)

  it("rejects bad training data with INVALID_ARGUMENT", function()
    local _, _, call = fake()
    local function create(task)
      return call("POST", "/v1beta3/tunedModels", '{"baseModel":"models/text-bison-001","tuningTask":' .. task .. '}')
    end
    local s1, e1 = create('{"trainingData":{"examples":{"examples":[]}}}')
    assert.equal(400, s1)
    assert.equal("INVALID_ARGUMENT", e1.error.status)
    local s2, e2 = create('{"trainingData":{"examples":{"examples":[{"textInput":"a"}]}}}')
    assert.equal(400, s2)
    assert.equal("* CreateTunedModelRequest.tuned_model.tuning_task.training_data.examples.examples[0].output: " ..
      "output must not be empty", e2.error.message)
    local s3 = create('{"hyperparameters":{"epochCount":3}}')
    assert.equal(400, s3)
    local s4 = create('{"trainingData":{"examples":{"examples":[{"textInput":"a","output":"b"}]}},' ..
      '"hyperparameters":{"batchSize":0}}')
    assert.equal(400, s4)
    local s5, e5 = call("POST", "/v1beta3/tunedModels", '{"baseModel":"models/embedding-gecko-001","tuningTask":' ..
      '{"trainingData":{"examples":{"examples":[{"textInput":"a","output":"b"}]}}}}')
    assert.equal(404, s5)
    assert.equal("NOT_FOUND", e5.error.status)
  end)

  it("tunes from another tuned model (tunedModelSource)", function()
    local _, clock, call = fake()
    call("POST", "/v1beta3/tunedModels", numbers_request("first", 16, 1, 2), nil, "tunedModelId=first")
    clock.t = clock.t + 5
    local st, op = call("POST", "/v1beta3/tunedModels", '{"tunedModelSource":{"tunedModel":"tunedModels/first"},' ..
      '"tuningTask":{"trainingData":{"examples":{"examples":[{"textInput":"a","output":"b"}]}}}}')
    assert.equal(200, st)
    local _, m = call("GET", "/v1beta3/" .. op.metadata.tunedModel)
    assert.same({ tunedModel = "tunedModels/first", baseModel = "models/text-bison-001" }, m.tunedModelSource)
    assert.is_nil(m.baseModel)
  end)

  it("lists with paging and the owner:me / readers:everyone filters", function()
    local _, _, call = fake()
    for i = 1, 3 do call("POST", "/v1beta3/tunedModels", numbers_request("a" .. i, 16, 1, 1), "k1") end
    call("POST", "/v1beta3/tunedModels", numbers_request("bob", 16, 1, 1), "k2", "tunedModelId=bobs")
    call("POST", "/v1beta3/tunedModels/bobs/permissions", '{"granteeType":"EVERYONE","role":"READER"}', "k2")
    local _, all = call("GET", "/v1beta3/tunedModels")
    assert.equal(4, #all.tunedModels)
    local _, p1 = call("GET", "/v1beta3/tunedModels", nil, nil, "pageSize=3")
    assert.equal(3, #p1.tunedModels)
    local _, p2 = call("GET", "/v1beta3/tunedModels", nil, nil, "pageSize=3&pageToken=" .. p1.nextPageToken)
    assert.equal(1, #p2.tunedModels)
    assert.equal("tunedModels/bobs", p2.tunedModels[1].name)
    local _, mine = call("GET", "/v1beta3/tunedModels", nil, nil, "filter=owner:me")
    assert.equal(3, #mine.tunedModels)
    local _, everyone = call("GET", "/v1beta3/tunedModels", nil, nil, "filter=readers:everyone")
    assert.equal(1, #everyone.tunedModels)
    -- a token is bound to the filter
    local _, f1 = call("GET", "/v1beta3/tunedModels", nil, nil, "filter=owner:me&pageSize=1")
    local s, e = call("GET", "/v1beta3/tunedModels", nil, nil, "pageSize=1&pageToken=" .. f1.nextPageToken)
    assert.equal(400, s)
    assert.equal("INVALID_ARGUMENT", e.error.status)
    local s2 = call("GET", "/v1beta3/tunedModels", nil, nil, "filter=bogus")
    assert.equal(400, s2)
    -- bob sees only his own (alice's are private)
    local _, bobs = call("GET", "/v1beta3/tunedModels", nil, "k2")
    assert.equal(1, #bobs.tunedModels)
  end)

  it("patches with a required, valid updateMask", function()
    local _, clock, call = fake()
    call("POST", "/v1beta3/tunedModels", numbers_request("p", 16, 1, 1), nil, "tunedModelId=p")
    clock.t = clock.t + 3
    local st, m = call("PATCH", "/v1beta3/tunedModels/p", '{"description":"new","displayName":"ignored"}', nil,
      "updateMask=description")
    assert.equal(200, st)
    assert.equal("new", m.description)
    assert.equal("p", m.displayName)
    assert.equal("2023-09-19T19:56:28.999303Z", m.updateTime)
    local s2, e2 = call("PATCH", "/v1beta3/tunedModels/p", '{"description":"x"}')
    assert.equal(400, s2)
    assert.equal("* UpdateTunedModelRequest.update_mask: update_mask is required", e2.error.message)
    local s3 = call("PATCH", "/v1beta3/tunedModels/p", '{"baseModel":"models/x"}', nil, "updateMask=baseModel")
    assert.equal(400, s3)
    local s4 = call("PATCH", "/v1beta3/tunedModels/p", '{}', nil, "updateMask=nonsense")
    assert.equal(400, s4)
    local s5, m5 = call("PATCH", "/v1beta3/tunedModels/p", '{"temperature":0.3,"top_k":5}', nil,
      "update_mask=temperature,topK")
    assert.equal(200, s5)
    assert.equal(0.3, m5.temperature)
    assert.equal(5, m5.topK)
  end)

  it("deletes, after which the model and its operation are gone", function()
    local _, _, call = fake()
    local _, op = call("POST", "/v1beta3/tunedModels", numbers_request("d", 16, 1, 1), nil, "tunedModelId=gone")
    local st, body, raw = call("DELETE", "/v1beta3/tunedModels/gone")
    assert.equal(200, st)
    assert.is_nil(next(body))
    assert.equal("{}\n", raw)
    local s2, e2 = call("GET", "/v1beta3/tunedModels/gone")
    assert.equal(404, s2)
    assert.equal("Tuned model tunedModels/gone does not exist.", e2.error.message)
    assert.equal(404, (call("GET", "/v1/" .. op.name)))
  end)
end)

describe("emulator tuning over HTTP", function()
  local emu = helper.with_emulator{ "--api-key", "k1=alice@example.com", tuning_step_ms = 20, reset = false }
  local function api(method, path, body) return emu:api(method, path, body) end

  it("runs the seed's create example to ACTIVE, polled under /v1/, and lists its operation", function()
    local status, op = api("POST", "/v1beta3/tunedModels", [[{
      "displayName": "My Custom Translator",
      "description": "A model fine-tuned for English to French translation.",
      "baseModel": "models/gemini-1.5-flash-001",
      "tuningTask": {
        "trainingData": { "examples": { "examples": [
          { "textInput": "Hello", "output": "Bonjour" }, { "textInput": "Goodbye", "output": "Au revoir" } ] } },
        "hyperparameters": { "epochCount": 5 } } }]])
    assert.equal(200, status)
    assert.truthy(op.name:find("^tunedModels/my%-custom%-translator%-[a-z0-9]+/operations/[a-z0-9]+$"))
    local deadline = os.time() + 20
    local o
    repeat
      local _, got = api("GET", "/v1/" .. op.name)
      o = got
    until o.done or os.time() > deadline
    assert.is_true(o.done)
    assert.equal("ACTIVE", o.response.state)
    assert.equal("models/gemini-1.5-flash-001", o.response.baseModel)
    local _, list = api("GET", "/v1beta3/" .. op.metadata.tunedModel .. "/operations")
    assert.equal(1, #list.operations)
    assert.equal(op.name, list.operations[1].name)
    local _, list1 = api("GET", "/v1/" .. op.metadata.tunedModel .. "/operations")
    assert.equal(op.name, list1.operations[1].name)
    local gs, g = api("POST", "/v1beta3/" .. op.metadata.tunedModel .. ":generateText",
      { prompt = { text = "Goodbye" }, temperature = 0.2, candidateCount = 1 })
    assert.equal(200, gs)
    assert.equal("Au revoir", g.candidates[1].output)
    local s404 = api("GET", "/v1beta3/" .. op.metadata.tunedModel .. "/operations/nope")
    assert.equal(404, s404)
  end)

  it("prints the state as a number with enum-encoding=int", function()
    local _, op = api("POST", "/v1beta3/tunedModels?tunedModelId=enum-int", { baseModel = "models/text-bison-001",
      tuningTask = { trainingData = { examples = { examples = { { textInput = "a", output = "b" } } } } } })
    assert.equal("tunedModels/enum-int", op.metadata.tunedModel)
    local _, m = api("GET", "/v1beta3/tunedModels/enum-int?$alt=json;enum-encoding=int")
    assert.is_number(m.state)
    assert.is_true(m.state == 1 or m.state == 2)
  end)
end)
