-- google.longrunning operations of tuned-model creation beyond get and list: CancelOperation (Google's v1
-- rule `POST /v1/{name=tunedModels/*/operations/*}:cancel`, body `*`, also served under /v1beta3 like the
-- polls) with google.longrunning semantics, and no DeleteOperation (no Google service config bound one for
-- generativelanguage: the front end's HTML 404). In-process on a fake clock, then over HTTP.
local helper = require "spec.helpers.emulator"
local App = require "gemini.emulator.app"
local json = require "gemini.emulator.json"
local proto = require "gemini.emulator.proto"

local EXAMPLES = '{"examples": {"examples": [{"text_input": "1", "output": "2"}, {"text_input": "2", "output": "3"},' ..
  '{"text_input": "3", "output": "4"}, {"text_input": "4", "output": "5"}]}}'

-- 4 examples, batch 1, 3 epochs: 12 steps of 1 s each (fake clock)
local function tuning_request(id_output)
  local data = EXAMPLES
  if id_output then data = data:gsub('"output": "5"', '"output": "' .. id_output .. '"') end
  return '{"display_name": "ops", "base_model": "models/text-bison-001", "tuning_task": {' ..
    '"hyperparameters": {"batch_size": 1, "epoch_count": 3}, "training_data": ' .. data .. '}}'
end

local function fake()
  local clock = { t = 1695153385.5 }
  local app = App.new{ api_keys = { k1 = "alice@example.com", k2 = "bob@example.com" }, tuning_step_ms = 1000,
                       now = function() return clock.t end }
  local function call(method, path, body, key)
    local query = "key=" .. (key or "k1")
    local p, q = path:match("^([^?]*)%?(.*)$")
    if p then path, query = p, query .. "&" .. q end
    local r = app:handle{ method = method, path = path, query = query, headers = {}, body = body }
    local ok, decoded = pcall(json.decode, r.body)
    return r.status, ok and decoded or nil, r.body, r.headers
  end
  local _, op = call("POST", "/v1beta3/tunedModels?tunedModelId=ops", tuning_request())
  return app, clock, call, op
end

local function google_error(code, message, canonical)
  return '{\n  "error": {\n    "code": ' .. code .. ',\n    "message": "' .. message .. '",\n    "status": "' ..
    canonical .. '"\n  }\n}\n'
end

describe("emulator operations: cancel (in process, fake clock)", function()
  it("routes POST {operation}:cancel under /v1beta3 and /v1 as cancelOperation, nothing else", function()
    local app = fake()
    local op = "tunedModels/ops/operations/abcdefghijkl"
    assert.equal("cancelOperation", app:route("POST", "/v1beta3/" .. op .. ":cancel"))
    assert.equal("cancelOperation", app:route("POST", "/v1/" .. op .. ":cancel"))
    assert.equal("cancelOperation", app:route("POST", "/v1beta3/" .. op .. ":cancel?key=k1"))
    assert.is_nil(app:route("GET", "/v1beta3/" .. op .. ":cancel"))
    assert.is_nil(app:route("DELETE", "/v1beta3/" .. op))
    assert.is_nil(app:route("DELETE", "/v1/" .. op))
    assert.is_nil(app:route("POST", "/v1beta3/tunedModels/ops:cancel"))
    assert.is_nil(app:route("POST", "/v1beta3/" .. op .. ":delete"))
  end)

  it("ends a running operation at once: done, error CANCELLED (1), tuning frozen, the model FAILED", function()
    local _, clock, call, op = fake()
    clock.t = clock.t + 2.5                                   -- 2 of 12 steps done
    local status, body, raw = call("POST", "/v1beta3/" .. op.name .. ":cancel", "")
    assert.equal(200, status)
    assert.equal("{}\n", raw)
    assert.same({}, body)
    local cancelled_at = clock.t
    clock.t = clock.t + 60                                    -- long after tuning would have finished
    local _, got, text = call("GET", "/v1beta3/" .. op.name)
    assert.is_true(got.done)
    assert.is_nil(got.response)
    assert.same({ code = 1, message = "Operation was cancelled." }, got.error)
    assert.equal(2, got.metadata.completedSteps)
    assert.equal(12, got.metadata.totalSteps)
    assert.equal(2, #got.metadata.snapshots)
    -- field order of an Operation: name, metadata, done, error
    local n, m, d, e = text:find('"name"', 1, true), text:find('"metadata"', 1, true), text:find('"done"', 1, true),
      text:find('"error"', 1, true)
    assert.is_true(n < m and m < d and d < e)
    assert.matches('"error": {\n    "code": 1,\n    "message": "Operation was cancelled."\n  }\n}\n$', text)
    local _, same = call("GET", "/v1/" .. op.name)
    assert.same(got, same)
    local _, model = call("GET", "/v1beta3/tunedModels/ops")
    assert.equal("FAILED", model.state)
    assert.is_nil(model.tuningTask.completeTime)
    assert.equal(2, #model.tuningTask.snapshots)
    assert.equal(proto.timestamp(cancelled_at), model.updateTime)   -- the cancel was its last change
    local st, err = call("POST", "/v1beta3/tunedModels/ops:generateText", '{"prompt": {"text": "1"}}')
    assert.equal(400, st)
    assert.equal("FAILED_PRECONDITION", err.error.status)
    local _, list = call("GET", "/v1beta3/tunedModels/ops/operations")
    assert.same(got, list.operations[1])
  end)

  it("accepts cancel of a finished operation and changes nothing (ACTIVE, FAILED, already cancelled)", function()
    -- ACTIVE
    local _, clock, call, op = fake()
    clock.t = clock.t + 20
    local _, _, before = call("GET", "/v1beta3/" .. op.name)
    local _, _, model_before = call("GET", "/v1beta3/tunedModels/ops")
    local status, _, raw = call("POST", "/v1/" .. op.name .. ":cancel", "{}")
    assert.equal(200, status)
    assert.equal("{}\n", raw)
    local _, got, after = call("GET", "/v1beta3/" .. op.name)
    assert.equal(before, after)
    assert.equal("ACTIVE", got.response.state)
    local _, _, model_after = call("GET", "/v1beta3/tunedModels/ops")
    assert.equal(model_before, model_after)

    -- FAILED by the [[fail]] marker: still error 13, not CANCELLED
    local app2, clock2, call2 = fake()
    local _, fop = call2("POST", "/v1beta3/tunedModels?tunedModelId=bad", tuning_request("[[fail]]"))
    clock2.t = clock2.t + 20
    local _, _, fbefore = call2("GET", "/v1beta3/" .. fop.name)
    assert.equal(200, (call2("POST", "/v1beta3/" .. fop.name .. ":cancel", "")))
    local _, fgot, fafter = call2("GET", "/v1beta3/" .. fop.name)
    assert.equal(fbefore, fafter)
    assert.equal(13, fgot.error.code)
    assert.is_not_nil(app2)

    -- cancelled twice: the second changes nothing, even later
    local _, clock3, call3, op3 = fake()
    clock3.t = clock3.t + 1.5
    assert.equal(200, (call3("POST", "/v1beta3/" .. op3.name .. ":cancel", "")))
    local _, _, once = call3("GET", "/v1beta3/" .. op3.name)
    clock3.t = clock3.t + 3
    assert.equal(200, (call3("POST", "/v1beta3/" .. op3.name .. ":cancel", "")))
    local _, twice, again = call3("GET", "/v1beta3/" .. op3.name)
    assert.equal(once, again)
    assert.equal(1, twice.metadata.completedSteps)
  end)

  it("answers an unknown operation or model with Google's 404", function()
    local _, _, call, op = fake()
    local other = "tunedModels/ops/operations/zzzzzzzzzzzz"
    local status, _, raw = call("POST", "/v1beta3/" .. other .. ":cancel", "")
    assert.equal(404, status)
    assert.equal(google_error(404, "Operation " .. other .. " does not exist.", "NOT_FOUND"), raw)
    local missing = "tunedModels/nope/operations/" .. op.name:match("[^/]+$")
    status, _, raw = call("POST", "/v1/" .. missing .. ":cancel", "")
    assert.equal(404, status)
    assert.equal(google_error(404, "Operation " .. missing .. " does not exist.", "NOT_FOUND"), raw)
    -- the real operation was not touched
    local _, got = call("GET", "/v1beta3/" .. op.name)
    assert.is_nil(got.done)
  end)

  it("lets only the owner cancel", function()
    local _, _, call, op = fake()
    local status, body = call("POST", "/v1beta3/" .. op.name .. ":cancel", "", "k2")
    assert.equal(403, status)
    assert.equal("You do not have permission to access tuned model tunedModels/ops", body.error.message)
    for _, role in ipairs({ "READER", "WRITER" }) do
      local perms = select(2, call("GET", "/v1beta3/tunedModels/ops/permissions")).permissions
      for _, p in ipairs(perms) do
        if p.emailAddress == "bob@example.com" then call("DELETE", "/v1beta3/" .. p.name) end
      end
      assert.equal(200, (call("POST", "/v1beta3/tunedModels/ops/permissions",
        '{"granteeType": "USER", "emailAddress": "bob@example.com", "role": "' .. role .. '"}')))
      status, body = call("POST", "/v1beta3/" .. op.name .. ":cancel", "", "k2")
      assert.equal(403, status)
      assert.equal("PERMISSION_DENIED", body.error.status)
      assert.equal("You do not have permission to manage tuned model tunedModels/ops (your role is " .. role ..
        "; OWNER is required)", body.error.message)
      local _, got = call("GET", "/v1beta3/" .. op.name, nil, "k2")   -- readable, still running
      assert.is_nil(got.done)
    end
    assert.equal(200, (call("POST", "/v1beta3/" .. op.name .. ":cancel", "")))
    local _, got = call("GET", "/v1beta3/" .. op.name, nil, "k2")
    assert.is_true(got.done)
  end)

  it("parses the body as CancelOperationRequest: empty, {} or a name (the path wins); else 400", function()
    local _, _, call, op = fake()
    assert.equal(200, (call("POST", "/v1beta3/" .. op.name .. ":cancel", "  ")))
    assert.equal(200, (call("POST", "/v1beta3/" .. op.name .. ":cancel", '{"name": "tunedModels/x/operations/y"}')))
    local status, _, raw = call("POST", "/v1beta3/" .. op.name .. ":cancel", '{"force": true}')
    assert.equal(400, status)
    local msg = 'Invalid JSON payload received. Unknown name \\"force\\": Cannot find field.'
    assert.equal('{\n  "error": {\n    "code": 400,\n    "message": "' .. msg .. '",\n' ..
      '    "status": "INVALID_ARGUMENT",\n    "details": [\n      {\n' ..
      '        "@type": "type.googleapis.com/google.rpc.BadRequest",\n' ..
      '        "fieldViolations": [\n          {\n            "description": "' .. msg .. '"\n          }\n' ..
      '        ]\n      }\n    ]\n  }\n}\n', raw)
    status = call("POST", "/v1beta3/" .. op.name .. ":cancel", '{"name": 1')
    assert.equal(400, status)
    status = call("POST", "/v1beta3/" .. op.name .. ":cancel", '[]')
    assert.equal(400, status)
  end)

  it("has no DeleteOperation: the front end's HTML 404, and the operation stays", function()
    local _, _, call, op = fake()
    for _, prefix in ipairs({ "/v1beta3/", "/v1/" }) do
      local status, _, raw, headers = call("DELETE", prefix .. op.name)
      assert.equal(404, status)
      assert.equal("text/html; charset=UTF-8", headers["Content-Type"])
      assert.truthy(raw:find("<title>Error 404 (Not Found)!!1</title>", 1, true))
    end
    local status, got = call("GET", "/v1beta3/" .. op.name)
    assert.equal(200, status)
    assert.equal(op.name, got.name)
  end)
end)

describe("emulator operations: cancel over HTTP", function()
  local emu = helper.with_emulator { "--api-key", "k1=alice@example.com", tuning_step_ms = 60000 }

  it("cancels a running tuning the way google-api-core's default rule sends it, and journals cancelOperation",
    function()
      local status, op = emu:api("POST", "/v1beta3/tunedModels", tuning_request())
      assert.equal(200, status)
      local cstatus, _, raw = emu:api("POST", "/v1beta3/" .. op.name .. ":cancel", "{}")
      assert.equal(200, cstatus)
      assert.equal("{}\n", raw)
      local got
      status, got = emu:api("GET", "/v1/" .. op.name)
      assert.equal(200, status)
      assert.is_true(got.done)
      assert.same({ code = 1, message = "Operation was cancelled." }, got.error)
      local _, model = emu:api("GET", "/v1beta3/" .. op.metadata.tunedModel)
      assert.equal("FAILED", model.state)
      local journal = emu:requests()
      assert.equal("cancelOperation", journal[2].rpc)
      assert.equal("POST", journal[2].method)
      assert.equal(200, journal[2].status)
    end)

  it("is subject to fault rules matched by method cancelOperation", function()
    local _, op = emu:api("POST", "/v1beta3/tunedModels", tuning_request())
    emu:fault { match = { method = "cancelOperation" }, action = "error", status = 503 }
    local status, body = emu:api("POST", "/v1/" .. op.name .. ":cancel", "")
    assert.equal(503, status)
    assert.equal("UNAVAILABLE", body.error.status)
    local _, got = emu:api("GET", "/v1beta3/" .. op.name)
    assert.is_nil(got.done)                                   -- the faulted cancel did nothing
    status = emu:api("POST", "/v1/" .. op.name .. ":cancel", "")
    assert.equal(200, status)
    _, got = emu:api("GET", "/v1beta3/" .. op.name)
    assert.is_true(got.done)
  end)
end)
