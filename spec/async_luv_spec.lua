-- The luv adapter (gemini.luv) in standalone lua5.4 with lua-luv: socket polls and one timer, user
-- callbacks after libcurl returns, errors, schedule, blocking calls while attached, detach and close.
local emulator = require("spec.helpers.emulator")
local gemini = require("gemini")
local adapter = require("gemini.luv")
local uv = require("spec.helpers.luv")   -- not require("luv"): see spec/helpers/luv.lua

-- Handles alive in the loop (after closing ones are gone: run the loop once first).
local function handle_count()
  local n = 0
  uv.walk(function(h) if not h:is_closing() then n = n + 1 end end)
  return n
end

-- uv.run with a safety net: a watchdog timer stops the loop after `limit` seconds.
local function run_bounded(limit)
  local dog = uv.new_timer()
  local fired = false
  dog:start(math.floor(limit * 1000), 0, function() fired = true; uv.stop() end)
  uv.unref(dog)
  uv.run()
  dog:close()
  uv.run("nowait")
  return not fired
end

local function prompt(i)
  local words = {}
  for k = 1, i do words[k] = "word" .. k end
  return { prompt = { text = table.concat(words, " ") } }
end

describe("gemini.luv adapter", function()
  local emu = emulator.with_emulator { latency = 200, "--tuning-step-ms", "20" }
  local ref = emulator.with_emulator { reset = false }
  local client, refclient
  setup(function() refclient = ref:client { retry = false } end)
  before_each(function()
    client = emu:client { retry = false }
  end)
  after_each(function()
    client:close()
    uv.run("nowait")
  end)

  it("keeps a 10 ms timer firing while 50 requests at --latency 200 complete, without busy polling #timing",
    function()
    -- requests an earlier test left in the emulator (a client closed with requests in flight) still count
    -- in its inFlight for up to --latency: wait them out, so maxInFlight below is this test's alone
    local settle = uv.hrtime() + 10e9
    local function busy() local _, s = emu:control("GET", "/emulator/v1/stats"); return s.inFlight > 0 end
    while busy() and uv.hrtime() < settle do uv.sleep(20) end
    emu:control("POST", "/emulator/v1/stats/reset")
    local base = handle_count()
    local detach = adapter.attach(client, uv)
    local ticks = 0
    local tick = uv.new_timer()
    tick:start(10, 10, function() ticks = ticks + 1 end)
    local got, errs, left = {}, {}, 50
    local t0, c0 = uv.hrtime(), os.clock()
    for i = 1, 50 do
      client:count_text_tokens("text-bison-001", prompt(i), function(res, err)
        got[i], errs[i] = res, err
        left = left - 1
        if left == 0 then tick:stop() end
      end)
    end
    assert.is_true(run_bounded(30))
    local elapsed = (uv.hrtime() - t0) / 1e9
    local cpu = os.clock() - c0
    tick:close()
    assert.equal(0, left)
    -- every reply arrived, with the content the blocking call gives for the same request
    for i = 1, 50 do
      assert.is_nil(errs[i])
      assert.same(assert(refclient:count_text_tokens("text-bison-001", prompt(i))), got[i])
    end
    -- the loop never stalled: at least a third of the ticks a free 10 ms timer would get
    assert.is_true(ticks >= math.floor(elapsed * 100 / 3), ticks .. " ticks in " .. elapsed .. " s")
    -- overlap: 50 * 200 ms one at a time would take 10 s
    assert.is_true(elapsed < 6, "elapsed " .. elapsed)
    local _, stats = emu:control("GET", "/emulator/v1/stats")
    assert.is_true(stats.maxInFlight >= 8 and stats.maxInFlight <= 16, "maxInFlight " .. stats.maxInFlight)
    -- no busy polling: the process mostly slept while waiting on the emulator
    assert.is_true(cpu < elapsed * 0.5, "cpu " .. cpu .. " s of " .. elapsed .. " s")
    detach()
    uv.run("nowait")
    assert.equal(base, handle_count())
  end)

  it("stops the loop's handles when nothing is in flight, so uv.run returns", function()
    local detach = adapter.attach(client, uv)
    local res
    client:get_model("text-bison-001", function(r) res = r end)
    assert.is_true(run_bounded(10))          -- returned by itself, not by the watchdog
    assert.equal("models/text-bison-001", res.name)
    detach()
  end)

  it("runs user callbacks through opts.schedule", function()
    local queue, scheduled, in_scheduled = {}, 0, false
    local pump = uv.new_check()
    local function schedule(fn) scheduled = scheduled + 1; queue[#queue + 1] = fn end
    pump:start(function()
      while #queue > 0 do
        in_scheduled = true
        table.remove(queue, 1)()
        in_scheduled = false
      end
    end)
    uv.unref(pump)
    local detach = adapter.attach(client, uv, { schedule = schedule })
    local inside = true
    local orig = client._run_callbacks
    local names = {}
    for _, m in ipairs({ "text-bison-001", "chat-bison-001", "embedding-gecko-001" }) do
      client:get_model(m, function(r)
        names[#names + 1] = r.name
        inside = inside and in_scheduled
      end)
    end
    assert.is_true(run_bounded(10))
    pump:close()
    table.sort(names)
    assert.same({ "models/chat-bison-001", "models/embedding-gecko-001", "models/text-bison-001" }, names)
    assert.is_true(inside)
    assert.is_true(scheduled >= 1)
    assert.equal(orig, client._run_callbacks)
    detach()
  end)

  it("an error in a callback goes to on_error with a traceback; the other requests carry on", function()
    local failures = {}
    local detach = adapter.attach(client, uv, { on_error = function(e) failures[#failures + 1] = e end })
    local ok = 0
    client:get_model("text-bison-001", function() error("boom from a user callback") end)
    for _ = 1, 5 do
      client:get_model("chat-bison-001", function(r)
        if r and r.name == "models/chat-bison-001" then ok = ok + 1 end
      end)
    end
    assert.is_true(run_bounded(10))
    assert.equal(1, #failures)
    assert.matches("boom from a user callback", failures[1], 1, true)
    assert.matches("stack traceback", failures[1], 1, true)
    assert.equal(5, ok)
    -- still attached and consistent
    local again
    client:get_model("text-bison-001", function(r) again = r end)
    assert.is_true(run_bounded(10))
    assert.equal("models/text-bison-001", again.name)
    detach()
  end)

  it("without on_error, the error propagates out of the loop's callback with a traceback", function()
    -- the child is lua5.4 whatever runs busted: it loads the 5.4 build of the core
    local root = (debug.getinfo(1, "S").source:match("^@(.*)spec/async_luv_spec%.lua$") or "./")
    if root == "" then root = "./" end
    local script = os.tmpname()
    local f = assert(io.open(script, "w"))
    f:write(([[
      package.path = %q .. package.path
      package.cpath = %q .. package.cpath
      local uv = require("luv")
      local client = require("gemini").new { api_key = "k", base_url = %q, retry = false }
      require("gemini.luv").attach(client, uv)
      client:get_model("text-bison-001", function() error("boom in the loop") end)
      uv.run()
      print("not reached")
    ]]):format(root .. "lua/?.lua;" .. root .. "lua/?/init.lua;", root .. "build/lua5.4/?.so;", emu.url))
    f:close()
    local p = assert(io.popen("lua5.4 " .. script .. " 2>&1; echo EXIT=$?"))
    local out = p:read("*a")
    p:close()
    os.remove(script)
    assert.matches("boom in the loop", out, 1, true)
    assert.matches("stack traceback", out, 1, true)
    assert.not_matches("not reached", out, 1, true)
    assert.not_matches("EXIT=0", out, 1, true)
  end)

  it("a blocking call inside a callback works while other requests are in flight", function()
    local detach = adapter.attach(client, uv)
    local inner, outer = nil, {}
    client:get_model("text-bison-001", function()
      inner = assert(client:count_text_tokens("text-bison-001", prompt(3)))
    end)
    for i = 1, 6 do client:count_text_tokens("text-bison-001", prompt(i), function(r) outer[i] = r end) end
    assert.is_true(run_bounded(10))
    assert.same(assert(refclient:count_text_tokens("text-bison-001", prompt(3))), inner)
    for i = 1, 6 do assert.same(assert(refclient:count_text_tokens("text-bison-001", prompt(i))), outer[i]) end
    -- and a blocking call at top level while attached
    assert.equal("models/chat-bison-001", assert(client:get_model("chat-bison-001")).name)
    local late
    client:get_model("text-bison-001", function(r) late = r end)
    assert.is_true(run_bounded(10))
    assert.equal("models/text-bison-001", late.name)
    detach()
  end)

  it("a request started just before a blocking call (both from a loop callback) still completes", function()
    local detach = adapter.attach(client, uv)
    local n = 0
    for _ = 1, 3 do client:get_model("text-bison-001", function() n = n + 1 end) end
    assert.is_true(run_bounded(10))            -- three pooled connections now
    assert.equal(3, n)
    -- the async one is slower than the blocking one, so it is still in flight when that returns
    emu:control("POST", "/emulator/v1/faults", { rules = { { match = { path = "/v1beta3/models/chat-bison-001" },
      action = "delay", delayMs = 600 } } })
    local res, blocking
    local kick = uv.new_timer()
    kick:start(10, 0, function()
      kick:close()
      client:get_model("chat-bison-001", function(r) res = r end)
      blocking = assert(client:get_model("text-bison-001"))
    end)
    assert.is_true(run_bounded(5))
    assert.equal("models/text-bison-001", blocking.name)
    assert.equal("models/chat-bison-001", res.name)
    detach()
  end)

  -- a luv module whose timers count how often they fire
  local function counting_uv()
    local fires = { n = 0 }
    local proxy = setmetatable({
      new_timer = function()
        local t = uv.new_timer()
        return setmetatable({
          start = function(_, ms, rep, cb)
            return t:start(ms, rep, function(...) fires.n = fires.n + 1; return cb(...) end)
          end,
        }, { __index = function(_, k)
          local v = t[k]
          if type(v) == "function" then return function(_, ...) return v(t, ...) end end
          return v
        end })
      end,
    }, { __index = uv })
    return proxy, fires
  end

  it("after a blocking call while attached, the loop wakes for events only (no fixed-interval polling)", function()
    local cuv, fires = counting_uv()
    local detach = adapter.attach(client, cuv)
    emu:control("POST", "/emulator/v1/faults", { rules = { { match = { path = "/v1beta3/models/chat-bison-001" },
      action = "delay", delayMs = 600 } } })
    local res
    client:get_model("chat-bison-001", function(r) res = r end)
    assert.equal("models/text-bison-001", assert(client:get_model("text-bison-001")).name)
    fires.n = 0
    assert.is_true(run_bounded(5))                 -- the slow one is still in flight: ~0.6 s more
    assert.equal("models/chat-bison-001", res.name)
    assert.is_true(fires.n <= 8, fires.n .. " timer wake-ups while one reply was awaited")
    detach()
    assert.is_false(client._core:event_mode())     -- detached: the core records nothing more
  end)

  it("attaching while requests driven by poll() are in flight picks them up", function()
    for round = 1, 2 do
      local res
      client:get_model("chat-bison-001", function(r) res = r end)
      client:poll(0.1)                         -- on the wire through curl_multi_perform
      local detach = adapter.attach(client, uv)
      assert.is_true(run_bounded(5), "round " .. round)
      assert.equal("models/chat-bison-001", res.name)
      detach()
      uv.run("nowait")
    end
  end)

  it("follows the client's own timers: retry back-off and op:wait polling", function()
    local c = gemini.new { api_key = "k", base_url = emu.url, retry = { initial = 0.05, max_attempts = 3 } }
    local detach = adapter.attach(c, uv)
    emu:control("POST", "/emulator/v1/faults", { rules = { { match = { method = "getModel" }, action = "error",
      status = 503, errorStatus = "UNAVAILABLE", times = 1 } } })
    local res, rerr
    c:get_model("text-bison-001", function(r, e) res, rerr = r, e end)
    local op
    c:create_tuned_model({ baseModel = "models/text-bison-001", tuningTask = { trainingData = { examples = {
      examples = { { textInput = "1", output = "2" }, { textInput = "2", output = "3" } } } } } },
      function(o, e) op = assert(o, tostring(e)) end)
    assert.is_true(run_bounded(10))
    assert.is_nil(rerr)
    assert.equal("models/text-bison-001", res.name)
    local _, journal = emu:control("GET", "/emulator/v1/requests")
    local gets = 0
    for _, r in ipairs(journal) do if r.rpc == "getModel" then gets = gets + 1 end end
    assert.equal(2, gets)                     -- the 503, then the retry after the back-off
    local tuned, terr, progress = nil, nil, 0
    op:wait({ interval = 0.05, on_progress = function() progress = progress + 1 end },
      function(t, e) tuned, terr = t, e end)
    assert.is_true(run_bounded(20))
    assert.is_nil(terr)
    assert.equal("ACTIVE", tuned.state)
    assert.is_true(progress >= 1)
    detach()
    c:close()
  end)

  it("cancel gives CANCELLED and the connection stays usable", function()
    local detach = adapter.attach(client, uv)
    local cerr, after
    local req = client:get_model("text-bison-001", function(r, e) cerr = e; assert.is_nil(r) end)
    local t = uv.new_timer()
    t:start(50, 0, function()
      t:close()
      req:cancel()
      client:get_model("chat-bison-001", function(r) after = r end)
    end)
    assert.is_true(run_bounded(10))
    assert.equal("CANCELLED", cerr.status)
    assert.equal("models/chat-bison-001", after.name)
    detach()
  end)

  it("detach closes its handles; requests in flight finish with run(); blocking calls work", function()
    local base = handle_count()
    local detach = adapter.attach(client, uv)
    local res
    client:get_model("text-bison-001", function(r) res = r end)
    local t = uv.new_timer()
    t:start(20, 0, function() t:close(); detach(); detach() end)
    uv.run()                                  -- returns: nothing of the adapter is left in the loop
    uv.run("nowait")
    assert.equal(base, handle_count())
    assert.is_nil(res)
    client:run()
    assert.equal("models/text-bison-001", res.name)
    assert.equal("models/chat-bison-001", assert(client:get_model("chat-bison-001")).name)
    -- attach again
    local detach2 = adapter.attach(client, uv)
    local again
    client:get_model("chat-bison-001", function(r) again = r end)
    assert.is_true(run_bounded(10))
    assert.equal("models/chat-bison-001", again.name)
    detach2()
  end)

  it("closing the client with requests in flight ends the loop without a crash", function()
    local base = handle_count()
    adapter.attach(client, uv)
    for _ = 1, 5 do client:get_model("text-bison-001", function() end) end
    local t = uv.new_timer()
    t:start(50, 0, function() t:close(); client:close() end)
    assert.is_true(run_bounded(10))
    assert.equal(base, handle_count())
    assert.has_error(function() client:get_model("text-bison-001") end, "gemini: client is closed")
  end)

  it("checks its arguments", function()
    assert.has_error(function() adapter.attach({}, uv) end)
    assert.has_error(function() adapter.attach(client, {}) end)
    assert.has_error(function() adapter.attach(client, uv, { schedule = 1 }) end)
    local detach = adapter.attach(client, uv)
    assert.has_error(function() adapter.attach(client, uv) end)
    detach()
    uv.run("nowait")
  end)
end)
