-- Tuned models and their long-running create operation, against the emulator.
local emulator = require("spec.helpers.emulator")
local gemini = require("gemini")
local cjson = require("cjson").new()

local function examples(n)
  local list = {}
  for i = 1, n do list[i] = { textInput = tostring(i), output = tostring(i + 1) } end
  return list
end

local function tuned_body(name)
  return {
    displayName = name or "number generator",
    baseModel = "models/text-bison-001",
    tuningTask = {
      hyperparameters = { epochCount = 3, batchSize = 2, learningRate = 0.001 },
      trainingData = { examples = { examples = examples(4) } },
    },
  }
end

describe("client tuning", function()
  local emu = emulator.with_emulator { "--api-key", "k1=alice@example.com", "--tuning-step-ms", "5" }
  local client
  setup(function() client = emu:client { retry = false } end)

  it("create_tuned_model returns an operation handle that waits to ACTIVE with progress", function()
    local op, err = client:create_tuned_model(tuned_body(), { tunedModelId = "numgen" })
    assert.is_nil(err)
    local req = emu:requests()[1]
    assert.equal("POST", req.method)
    assert.equal("/v1beta3/tunedModels", req.path)
    assert.equal("tunedModelId=numgen", req.query)
    assert.same(tuned_body(), cjson.decode(req.body))
    assert.equal('{"baseModel":"models/text-bison-001","displayName":"number generator","tuningTask":{' ..
      '"trainingData":{"examples":{"examples":[{"textInput":"1","output":"2"},{"textInput":"2","output":"3"},' ..
      '{"textInput":"3","output":"4"},{"textInput":"4","output":"5"}]}},' ..
      '"hyperparameters":{"epochCount":3,"batchSize":2,"learningRate":0.001}}}', req.body)

    assert.matches("^tunedModels/numgen/operations/[a-z0-9]+$", op.name)
    assert.equal("tunedModels/numgen", op.metadata.tunedModel)
    assert.equal(6, op.metadata.totalSteps)      -- ceil(4 examples * 3 epochs / batch 2)
    if math.type then assert.equal("integer", math.type(op.metadata.totalSteps)) end

    local seen = {}
    local tuned, werr = op:wait { interval = 0.01,
      on_progress = function(md) seen[#seen + 1] = md.completedSteps or 0 end }
    assert.is_nil(werr)
    assert.equal("tunedModels/numgen", tuned.name)
    assert.equal("ACTIVE", tuned.state)
    assert.equal("models/text-bison-001", tuned.baseModel)
    assert.is_true(op:done())
    assert.is_nil(op.error)
    assert.equal(tuned, op:result())
    assert.is_true(#seen >= 2)
    for i = 2, #seen do assert.is_true(seen[i] > seen[i - 1]) end   -- fired on change only
    assert.equal(6, seen[#seen])
    assert.equal(100, op.metadata.completedPercent)
    -- polled with GET /v1beta3/{operation name}
    local j = emu:requests()
    assert.equal("GET", j[2].method)
    assert.equal("/v1beta3/" .. op.name, j[2].path)
  end)

  it("op:wait with a callback does not block and reports progress", function()
    local op = assert(client:create_tuned_model(tuned_body("async"), { tunedModelId = "async" }))
    local got, gerr, calls = nil, nil, 0
    local steps = {}
    op:wait({ interval = 0.01, on_progress = function(md) steps[#steps + 1] = md.completedSteps or 0 end },
      function(tm, err) calls = calls + 1; got, gerr = tm, err end)
    assert.is_nil(got)                       -- nothing happened yet: it returned at once
    client:run()
    assert.equal(1, calls)
    assert.is_nil(gerr)
    assert.equal("ACTIVE", got.state)
    assert.equal("tunedModels/async", got.name)
    assert.equal(6, steps[#steps])
    assert.is_true(op:done())
  end)

  it("refresh, result, get_operation and operations", function()
    local op = assert(client:create_tuned_model(tuned_body("op test"), { tunedModelId = "optest" }))
    assert.is_nil(op:result())
    assert.is_true(op:refresh())
    assert.is_table(op.metadata)
    assert(op:wait { interval = 0.01 })
    local again = assert(client:get_operation(op.name))
    assert.equal(op.name, again.name)
    assert.is_true(again:done())
    assert.equal("ACTIVE", again:result().state)
    local names = {}
    for o in client:operations("tunedModels/optest") do names[#names + 1] = o.name end
    assert.same({ op.name }, names)
    local page = assert(client:list_operations("optest", { pageSize = 5 }))
    assert.equal(op.name, page.operations[1].name)
    assert.equal("/v1beta3/tunedModels/optest/operations", emu:last_request().path)
  end)

  it("wait with a timeout returns DEADLINE_EXCEEDED while tuning runs", function()
    local slow = emulator.start { "--api-key", "k1=alice@example.com", "--tuning-step-ms", "5000" }
    local c = gemini.new { api_key = "k1", base_url = slow.url, retry = false }
    local op = assert(c:create_tuned_model(tuned_body("slow")))
    local tuned, err = op:wait { interval = 0.02, timeout = 0.1 }
    c:close()
    slow:stop()
    assert.is_nil(tuned)
    assert.equal("DEADLINE_EXCEEDED", err.status)
    assert.matches("timeout = 0.1", err.message, 1, true)
    assert.is_false(op:done())
  end)

  it("get, list (with filter), update, generate_text and delete a tuned model", function()
    assert(assert(client:create_tuned_model(tuned_body("life cycle"), { tunedModelId = "cycle" }))
      :wait { interval = 0.01 })
    local tm = assert(client:get_tuned_model("cycle"))
    assert.equal("tunedModels/cycle", tm.name)
    assert.equal("ACTIVE", tm.state)
    if math.type then assert.equal("integer", math.type(tm.tuningTask.hyperparameters.epochCount)) end
    assert.equal("/v1beta3/tunedModels/cycle", emu:last_request().path)

    local page = assert(client:list_tuned_models { pageSize = 10, filter = "owner:me" })
    assert.equal("pageSize=10&filter=owner%3Ame", emu:last_request().query)
    assert.equal("tunedModels/cycle", page.tunedModels[1].name)
    local n = 0
    for m in client:tuned_models() do n = n + 1; assert.equal("tunedModels/cycle", m.name) end
    assert.equal(1, n)

    local up = assert(client:update_tuned_model("cycle", { description = "new words", temperature = 0.5 }))
    local req = emu:last_request()
    assert.equal("PATCH", req.method)
    assert.equal("updateMask=description%2Ctemperature", req.query)
    assert.equal('{"description":"new words","temperature":0.5}', req.body)
    assert.equal("new words", up.description)
    local up2 = assert(client:update_tuned_model("tunedModels/cycle", { displayName = "x" },
      { updateMask = "displayName" }))
    assert.equal("x", up2.displayName)
    assert.equal("updateMask=displayName", emu:last_request().query)

    local out = assert(client:generate_text("tunedModels/cycle", { prompt = { text = "5" } }))
    assert.equal("/v1beta3/tunedModels/cycle:generateText", emu:last_request().path)
    assert.is_string(out.candidates[1].output)

    assert.is_true(client:delete_tuned_model("cycle"))
    assert.equal("DELETE", emu:last_request().method)
    local gone, err = client:get_tuned_model("cycle")
    assert.is_nil(gone)
    assert.equal("NOT_FOUND", err.status)
  end)

  it("through a tuned model handle", function()
    local h = client:tuned_model("viahandle")
    assert.equal("tunedModels/viahandle", h.name)
    assert(assert(client:create_tuned_model(tuned_body("handle"), { tunedModelId = "viahandle" }))
      :wait { interval = 0.01 })
    assert.equal("ACTIVE", assert(h:get()).state)
    assert.equal("d", assert(h:update { description = "d" }).description)
    assert.is_string(assert(h:generate_text { prompt = { text = "1" } }).candidates[1].output)
    local ops = {}
    for o in h:operations() do ops[#ops + 1] = o end
    assert.equal(1, #ops)
    assert.is_true(ops[1]:done())
    assert.is_true(h:delete())
    local _, err = h:get()
    assert.equal("NOT_FOUND", err.status)
  end)

  it("a create retried after 429 that meets ALREADY_EXISTS recognises its own model", function()
    local c = gemini.new { api_key = "k1", base_url = emu.url, retry = { initial = 0.01 } }
    local first = assert(c:create_tuned_model(tuned_body("mine"), { tunedModelId = "mine" }))
    -- as if the first attempt had created it but its reply was lost as a 429
    emu:control("POST", "/emulator/v1/faults", { rules = { { match = { method = "createTunedModel" },
      action = "error", status = 429, errorStatus = "RESOURCE_EXHAUSTED" } } })
    local op, err = c:create_tuned_model(tuned_body("mine"), { tunedModelId = "mine" })
    assert.is_nil(err)
    assert.equal(first.name, op.name)
    local j = emu:requests()
    assert.equal("listOperations", j[#j].rpc)
    -- without a retry, ALREADY_EXISTS stays an error
    local _, err2 = client:create_tuned_model(tuned_body("mine"), { tunedModelId = "mine" })
    assert.equal("ALREADY_EXISTS", err2.status)
    c:close()
  end)

  it("a failed create returns the API error", function()
    local body = tuned_body()
    body.baseModel = "models/no-such-model"
    local op, err = client:create_tuned_model(body)
    assert.is_nil(op)
    assert.is_table(err)
    assert.is_true(err.code >= 400)
  end)
end)
