-- A client that goes away while the emulator is still sending (or waiting to send) its reply slowly:
-- under a `drip` or `delay` fault or `--latency`, the emulator gives the request up at once (its
-- in-flight gauge drops, its timers stop, the connection closes), keeps serving others, still journals
-- the request, and stops promptly afterwards.
local helper = require "spec.helpers.emulator"
local socket = require "socket"

local KEY = "k1"
local MODEL_PATH = "/v1beta3/models/text-bison-001"
local GET_MODEL = "GET " .. MODEL_PATH .. " HTTP/1.1\r\nHost: x\r\nx-goog-api-key: " .. KEY .. "\r\n\r\n"

-- Poll the stats until `pred(stats)` holds or `bound` seconds passed: returns the stats and the time taken.
local function wait_stats(emu, pred, bound)
  local t0 = socket.gettime()
  while true do
    local s = emu:stats()
    local took = socket.gettime() - t0
    if pred(s) or took > bound then return s, took end
    socket.sleep(0.02)
  end
end

local function in_flight(n) return function(s) return s.inFlight == n end end

-- Send GET_MODEL on a new raw connection and wait until the emulator counts it in flight.
local function start_request(emu)
  local c = emu:connect(10)
  assert(c:send(GET_MODEL))
  local s = wait_stats(emu, in_flight(1), 5)
  assert.equal(1, s.inFlight)
  return c
end

local function get_model(emu)
  return emu:request{ path = MODEL_PATH, headers = { ["x-goog-api-key"] = KEY } }
end

-- The request is out of the in-flight gauge well before its slow reply could have ended.
local function assert_freed(emu)
  local s, took = wait_stats(emu, in_flight(0), 1.5)
  assert.equal(0, s.inFlight, "still in flight " .. took .. " s after the client left")
  return s
end

-- The journal still records the request with the status of its real reply, as it always did, and the
-- emulator goes on serving.
local function assert_journaled_and_serving(emu)
  local last = emu:last_request()
  assert.equal(MODEL_PATH, last.path)
  assert.equal(200, last.status)
  assert.equal(200, (get_model(emu)))
  assert.equal(0, emu:stats().inFlight)
end

local DRIP = { match = { method = "getModel" }, action = "drip", dripBytes = 1, dripIntervalMs = 2500 }
local DELAY = { match = { method = "getModel" }, action = "delay", delayMs = 6000 }

describe("emulator: a client leaving mid-reply", function()
  local emu = helper.with_emulator{ "--api-key", KEY .. "=alice@example.com" }

  it("drip: the request leaves the in-flight gauge at once when the client closes after the first bytes #timing",
    function()
      emu:fault(DRIP)   -- the body takes (its length) x 2.5 s to drip out: well over a minute
      local c = start_request(emu)
      local status, headers = helper.read_head(c)
      assert.equal(200, status)
      assert.is_true(tonumber(headers["content-length"]) > 20)
      assert.equal(1, #assert(c:receive(1)))     -- the first piece goes out with the head
      assert.equal(1, emu:stats().inFlight)      -- the rest is still dripping
      c:close()
      assert.equal(1, assert_freed(emu).maxInFlight)
      assert_journaled_and_serving(emu)
    end)

  it("delay: the request leaves the in-flight gauge at once when the client closes while it waits #timing",
    function()
      emu:fault(DELAY)
      start_request(emu):close()
      assert_freed(emu)
      assert_journaled_and_serving(emu)
    end)

  for _, rule in ipairs({ DRIP, DELAY }) do
    it(rule.action .. ": a gemini client giving up on its timeout frees the request #timing", function()
      emu:fault(rule)
      local client = emu:client{ retry = false, timeout = 0.5 }
      local ok, err = client:get_model("text-bison-001")
      assert.is_nil(ok)
      assert.truthy(tostring(err):lower():find("time"), tostring(err))
      client:close()
      assert_freed(emu)
      assert_journaled_and_serving(emu)
    end)
  end

  it("several clients leaving at once leave nothing in flight, and the next requests are answered", function()
    emu:control("POST", "/emulator/v1/faults", { rules = {
      { match = DRIP.match, action = "drip", dripBytes = 1, dripIntervalMs = 2500, times = 2 },
      { match = DELAY.match, action = "delay", delayMs = 6000, times = 2 } } })
    local conns = {}
    for i = 1, 4 do
      conns[i] = emu:connect(10)
      assert(conns[i]:send(GET_MODEL))
    end
    local s = wait_stats(emu, in_flight(4), 5)
    assert.equal(4, s.inFlight)
    for i = 1, 4 do conns[i]:close() end
    s = wait_stats(emu, in_flight(0), 5)
    assert.equal(0, s.inFlight)
    assert.equal(200, (get_model(emu)))
    assert.equal(200, (get_model(emu)))
  end)
end)

-- Run fn(emu) on an emulator of its own (started with `opts`), then check that SIGTERM stops it promptly.
local function then_stop_promptly(opts, fn)
  local emu = helper.start(opts)
  local ok, err = pcall(function()
    fn(emu)
    local t0 = socket.gettime()
    emu:signal("TERM")
    assert.is_true(emu:wait_exit(8))
    local took = socket.gettime() - t0
    assert.is_true(took < 1.5, "stopping took " .. took .. " s")
    assert.equal(0, emu:exit_code(2))
  end)
  emu:stop()
  assert(ok, err)
end

describe("emulator: stopping after a client left", function()
  it("under --latency: the request leaves the gauge at once and the stop is prompt #timing", function()
    then_stop_promptly({ "--api-key", KEY .. "=alice@example.com", latency = 6000 }, function(emu)
      start_request(emu):close()
      assert_freed(emu)
    end)
  end)

  it("mid-drip: the stop is prompt (not the 5 s grace period) #timing", function()
    then_stop_promptly({ "--api-key", KEY .. "=alice@example.com" }, function(emu)
      emu:fault(DRIP)
      local c = start_request(emu)
      assert.equal(200, (helper.read_head(c)))
      assert(c:receive(1))
      c:close()
      socket.sleep(0.2)
    end)
  end)
end)
