-- op:wait with a callback and client:close(): the callback is called exactly once, inside close, with
-- CANCELLED, whether close comes between two polls or while a poll is in flight; never after.
local helper = require("spec.helpers.emulator")

local function tuned_body()
  return {
    displayName = "close test",
    baseModel = "models/text-bison-001",
    tuningTask = { trainingData = { examples = { examples = {
      { textInput = "1", output = "2" }, { textInput = "2", output = "3" } } } } },
  }
end

describe("op:wait and client:close()", function()
  -- a tuning step of 60 s: the operation stays running for the whole test
  local emu = helper.with_emulator { "--tuning-step-ms", "60000" }
  local client

  before_each(function() client = emu:client { retry = false } end)
  after_each(function() client:close() end)

  local function polls()
    local n = 0
    for _, r in ipairs(emu:requests()) do if r.rpc == "getOperation" then n = n + 1 end end
    return n
  end

  it("close between two polls calls the callback once with CANCELLED, inside close", function()
    local op = assert(client:create_tuned_model(tuned_body()))
    assert.is_false(op:done())
    local calls, got, gerr = 0, nil, nil
    op:wait({ interval = 2 }, function(t, e) calls = calls + 1; got, gerr = t, e end)
    -- the first poll (after 2 s) goes out and its reply (still running) comes back; the next is 2 s away
    local deadline = os.time() + 30
    while not (polls() >= 1 and client._active == 0) and os.time() < deadline do client:poll(0.05) end
    assert.equal(0, calls)
    local before = polls()
    assert.equal(1, before)
    -- between two polls: nothing in flight, only the timer of the next poll
    assert.equal(0, client._active)
    assert.equal(1, #client._timers)
    client:close()
    assert.equal(1, calls)
    assert.is_nil(got)
    assert.equal("CANCELLED", gerr.status)
    assert.equal("cancelled", gerr.kind)
    assert.matches("closed", gerr.message)
    -- nothing more: no poll, no second call
    require("gemini.core").sleep(0.2)
    assert.equal(before, polls())
    assert.equal(1, calls)
  end)

  it("close before the first poll (interval not over yet) calls the callback once", function()
    local op = assert(client:create_tuned_model(tuned_body()))
    local calls, gerr = 0, nil
    op:wait({ interval = 30 }, function(_, e) calls = calls + 1; gerr = e end)
    client:poll(0)
    client:close()
    assert.equal(1, calls)
    assert.equal("CANCELLED", gerr.status)
    assert.equal(0, polls())
  end)

  it("close while a poll is in flight calls the callback once", function()
    emu:fault { match = { method = "getOperation" }, action = "delay", delayMs = 2000, times = 0 }
    local op = assert(client:create_tuned_model(tuned_body()))
    local calls, gerr = 0, nil
    op:wait({ interval = 0 }, function(_, e) calls = calls + 1; gerr = e end)
    local deadline = os.time() + 10
    while client._active == 0 and os.time() < deadline do client:poll(0.01) end
    assert.equal(1, client._active)
    client:close()
    assert.equal(1, calls)
    assert.equal("CANCELLED", gerr.status)
  end)

  it("a callback error from close is raised once all ran; each callback still ran once", function()
    local a = assert(client:create_tuned_model(tuned_body()))
    local b = assert(client:create_tuned_model(tuned_body()))
    local calls = { 0, 0 }
    a:wait({ interval = 30 }, function() calls[1] = calls[1] + 1; error("boom from a wait callback") end)
    b:wait({ interval = 30 }, function() calls[2] = calls[2] + 1 end)
    assert.has_error(function() client:close() end)
    assert.same({ 1, 1 }, calls)
  end)

  it("op:wait on a closed client raises", function()
    local op = assert(client:create_tuned_model(tuned_body()))
    client:close()
    assert.has_error(function() op:wait({ interval = 0 }, function() end) end, "gemini: client is closed")
    assert.has_error(function() op:wait { interval = 0 } end, "gemini: client is closed")
  end)
end)
