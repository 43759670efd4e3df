-- client:cancel_operation and op:cancel(): the exact request on the wire (POST {operation}:cancel, no body),
-- what a running and a finished tuning operation look like afterwards, and errors for unknown operations.
local helper = require("spec.helpers.emulator")

local function tuned_body(name)
  return {
    displayName = name,
    baseModel = "models/text-bison-001",
    tuningTask = { trainingData = { examples = { examples = {
      { textInput = "1", output = "2" }, { textInput = "2", output = "3" } } } } },
  }
end

local function cancels(emu)
  local out = {}
  for _, r in ipairs(emu:requests()) do if r.rpc == "cancelOperation" then out[#out + 1] = r end end
  return out
end

describe("cancelling a tuning operation", function()
  -- a tuning step of 60 s: a new operation stays running for the whole test
  local emu = helper.with_emulator { "--tuning-step-ms", "60000" }
  local client

  before_each(function() client = emu:client { retry = false } end)
  after_each(function() client:close() end)

  it("client:cancel_operation sends POST {name}:cancel and the operation ends CANCELLED, the model FAILED", function()
    local op = assert(client:create_tuned_model(tuned_body("cancel me")))
    assert.is_false(op:done())
    assert.is_true(client:cancel_operation(op.name))
    local sent = cancels(emu)
    assert.equal(1, #sent)
    assert.equal("POST", sent[1].method)
    assert.equal("/v1beta3/" .. op.name .. ":cancel", sent[1].path)
    assert.is_true(sent[1].body == nil or sent[1].body == "")
    assert.is_true(op:refresh())
    assert.is_true(op:done())
    local result, err = op:result()
    assert.is_nil(result)
    assert.equal("CANCELLED", err.status)
    assert.equal(1, err.rpc_code)
    assert.equal("Operation was cancelled.", err.message)
    local model = assert(client:get_tuned_model(op.name:match("^(tunedModels/[^/]+)/")))
    assert.equal("FAILED", model.state)
  end)

  it("op:cancel() cancels and refreshes the handle; a second cancel changes nothing", function()
    local op = assert(client:create_tuned_model(tuned_body("cancel via handle")))
    assert.is_true(op:cancel())
    assert.is_true(op:done())
    assert.equal("CANCELLED", op.error.status)
    local first = op.error.message
    assert.is_true(op:cancel())
    assert.is_true(op:done())
    assert.equal(first, op.error.message)
    assert.equal(2, #cancels(emu))
  end)

  it("an unknown operation gives NOT_FOUND; a malformed name raises before anything is sent", function()
    local ok, err = client:cancel_operation("tunedModels/nope/operations/abc")
    assert.is_nil(ok)
    assert.equal("NOT_FOUND", err.status)
    assert.equal(404, err.code)
    local before = #emu:requests()
    assert.has_error(function() client:cancel_operation("models/text-bison-001") end)
    assert.equal(before, #emu:requests())
  end)

  it("the callback form calls back once with true", function()
    local op = assert(client:create_tuned_model(tuned_body("cancel async")))
    local calls, got
    client:cancel_operation(op.name, function(ok, err) calls = (calls or 0) + 1; got = ok or err end)
    client:run()
    assert.equal(1, calls)
    assert.is_true(got)
  end)
end)
