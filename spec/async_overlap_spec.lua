-- Requests really overlap (the emulator's own count of concurrent requests), within max_in_flight
-- (the rest queue in order), and a game-style loop calling poll(0) never blocks.
local emulator = require("spec.helpers.emulator")
local C = require("gemini.client")

local function prompt(i)
  return { prompt = { text = "request number " .. i } }
end

describe("non-blocking overlap", function()
  local emu = emulator.with_emulator { latency = 200 }
  local ref = emulator.with_emulator { reset = false }
  local refclient
  setup(function() refclient = ref:client { retry = false } end)

  it("max_in_flight = 8 with 20 requests: the emulator sees exactly 8 at once, the rest queue in order", function()
    local client = emu:client { retry = false, max_in_flight = 8 }
    local got, order = {}, {}
    for i = 1, 20 do
      client:count_text_tokens("text-bison-001", prompt(i), function(res, err)
        assert.is_nil(err)
        got[i] = res
        order[#order + 1] = i
      end)
    end
    -- counted while running: never more than 8 in the emulator
    local peak, polls = 0, 0
    while client:poll(0.05) > 0 and polls < 400 do
      polls = polls + 1
      local s = emu:stats()
      if s.inFlight > peak then peak = s.inFlight end
    end
    assert.is_true(peak <= 8, "peak " .. peak)
    assert.equal(8, emu:stats().maxInFlight)
    for i = 1, 20 do
      assert.same(assert(refclient:count_text_tokens("text-bison-001", prompt(i))), got[i])
    end
    -- queued in order: the first 8 requests the emulator received are requests 1..8
    local journal = emu:requests()
    assert.equal(20, #journal)
    local first = {}
    for k = 1, 8 do first[#first + 1] = journal[k].body end
    table.sort(first)
    local want = {}
    for i = 1, 8 do want[i] = require("cjson").encode(prompt(i)) end
    table.sort(want)
    assert.same(want, first)
    client:close()
  end)

  it("by default 16 requests are in flight together #timing", function()
    local client = emu:client { retry = false }
    local n = 0
    for i = 1, 20 do client:count_text_tokens("text-bison-001", prompt(i), function() n = n + 1 end) end
    local t0 = C.clock()
    client:run()
    local elapsed = C.clock() - t0
    assert.equal(20, n)
    assert.equal(16, emu:stats().maxInFlight)
    -- two rounds (0.4 s) expected; one at a time would take 4 s
    assert.is_true(elapsed < 20 * 0.2 * 0.75, "elapsed " .. elapsed)
    client:close()
  end)

  it("a game loop calling poll(0) never blocks while 30 requests are in flight #timing", function()
    -- over HTTP/1.1 (the emulator) each request in flight needs its own connection
    local client = emu:client { retry = false, max_in_flight = 30, max_connections = 30 }
    -- every reply takes 1.5 s more than the 200 ms latency: a poll(0) that waited for a reply would take
    -- hundreds of ms, far above the bound below, while a loaded machine's scheduling noise stays under it
    emu:control("POST", "/emulator/v1/faults", { rules = { { match = { method = "countTextTokens" },
      action = "delay", delayMs = 1500, times = 0 } } })
    local got, left = {}, 30
    for i = 1, 30 do
      client:count_text_tokens("text-bison-001", prompt(i), function(res, err)
        assert.is_nil(err)
        got[i] = res
        left = left - 1
      end)
    end
    local frames, worst, pending = 0, 0, 30
    local t0 = C.clock()
    while pending > 0 and C.clock() - t0 < 20 do
      local t = C.clock()
      pending = client:poll(0)
      local d = C.clock() - t
      if d > worst then worst = d end
      frames = frames + 1
      C.sleep(0.002)                         -- the rest of the frame
    end
    assert.equal(0, pending)
    assert.equal(0, left)
    assert.is_true(worst < 0.5, "slowest poll(0): " .. worst .. " s")
    assert.is_true(frames >= 20, frames .. " frames")   -- the loop kept going while replies were due
    assert.is_true(emu:stats().maxInFlight >= 20, "maxInFlight " .. emu:stats().maxInFlight)   -- dozens at once
    for i = 1, 30 do
      assert.same(assert(refclient:count_text_tokens("text-bison-001", prompt(i))), got[i])
    end
    client:close()
  end)

  it("max_in_flight = 32 (above the default max_connections, 16) means 32 connections on HTTP/1.1", function()
    local client = emu:client { retry = false, max_in_flight = 32 }
    local before = emu:stats().totalConnections   -- the control requests' own connections count too
    local n = 0
    for i = 1, 32 do
      client:count_text_tokens("text-bison-001", prompt(i), function(res, err)
        assert.is_nil(err)
        assert.is_table(res)
        n = n + 1
      end)
    end
    client:run()
    assert.equal(32, n)
    -- one round: the emulator had all 32 at once, each on its own connection (and one for emu:stats())
    local s = emu:stats()
    assert.equal(32, s.maxInFlight)
    assert.equal(32, s.totalConnections - before - 1)
    client:close()
  end)

  it("poll(timeout) waits at most about timeout and returns the number still in flight #timing", function()
    local client = emu:client { retry = false }
    -- the reply takes 1.7 s: a poll(0.05) that waited for it would take far longer than the bound below
    emu:control("POST", "/emulator/v1/faults", { rules = { { match = { method = "getModel" },
      action = "delay", delayMs = 1500, times = 0 } } })
    local res
    client:get_model("text-bison-001", function(r) res = r end)
    local t = C.clock()
    local n = client:poll(0.05)
    local d = C.clock() - t
    assert.equal(1, n)
    assert.is_nil(res)
    assert.is_true(d < 0.75, "poll(0.05) took " .. d .. " s")
    local polls = 0
    while client:poll(1) > 0 and polls < 20 do polls = polls + 1 end
    assert.equal("models/text-bison-001", res.name)
    assert.equal(0, client:poll(0))
    client:close()
  end)

  -- The C core sets CURLOPT_PIPEWAIT only for https:// (where HTTP/2 can be negotiated): over http://
  -- a request started while earlier connections to the host are unanswered opens its own at once
  -- (with PIPEWAIT, the blocking call below took 400 ms instead of 200 ms at --latency 200).
  for _, http2 in ipairs { true, false } do
    it("blocking and callback calls mix on one client (http2 = " .. tostring(http2) .. ") #timing", function()
      local client = emu:client { retry = false, http2 = http2 }
      -- the callback requests take 1.7 s, the blocking one 0.2 s: waiting for a connection to be
      -- free (PIPEWAIT) would make the blocking call take at least 1.7 s
      emu:control("POST", "/emulator/v1/faults", { rules = { { match = { method = "countTextTokens" },
        action = "delay", delayMs = 1500, times = 0 } } })
      local got = {}
      for i = 1, 5 do
        client:count_text_tokens("text-bison-001", prompt(i), function(r) got[i] = r end)
      end
      -- the blocking call returns its own result; the others' callbacks wait for the next poll
      local t0 = C.clock()
      local mine = assert(client:get_model("chat-bison-001"))
      local took = C.clock() - t0
      assert.equal("models/chat-bison-001", mine.name)
      assert.same({}, got)
      assert.is_true(took < 1.2, "the blocking call took " .. took .. " s (latency 0.2 s, others 1.7 s)")
      client:run()
      for i = 1, 5 do
        assert.same(assert(refclient:count_text_tokens("text-bison-001", prompt(i))), got[i])
      end
      assert.is_true(emu:stats().maxInFlight >= 6)  -- the blocking request overlapped the others
      client:close()
    end)
  end
end)
