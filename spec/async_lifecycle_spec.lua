-- Request handles and the client's life cycle in callback form: cancel (in flight, queued, during a
-- retry back-off, after the end), wait, errors raised by callbacks, closing with requests in flight,
-- and operations waited on asynchronously while other requests run.
local emulator = require("spec.helpers.emulator")
local gemini = require("gemini")
local C = require("gemini.client")

local KEY = "lifecycle-key-1"

describe("request life cycle", function()
  local emu = emulator.with_emulator { "--api-key", KEY .. "=alice@example.com", latency = 200,
                                      "--tuning-step-ms", "30" }

  -- a client with the key KEY, retry = false unless given
  local function new(opts)
    opts = opts or {}
    if opts.retry == nil then opts.retry = false end
    return emu:client(opts)
  end

  describe("cancel", function()
    it("in flight: the callback gets nil, CANCELLED; the connection stays usable", function()
      local client = new { max_connections = 1 }
      local calls, res, err = 0, "unset", nil
      local req = client:get_model("text-bison-001", function(r, e) calls = calls + 1; res, err = r, e end)
      client:poll(0.05)                        -- on the wire, reply not there yet (latency 200 ms)
      assert.is_false(req:done())
      assert.is_true(req:cancel())
      assert.is_true(req:done())
      assert.is_false(req:cancel())            -- once only
      client:run()
      assert.equal(1, calls)
      assert.is_nil(res)
      assert.equal("CANCELLED", err.status)
      assert.equal("/v1beta3/models/text-bison-001", err.path)
      assert.matches("CANCELLED", tostring(err), 1, true)
      -- the same client (one connection at most) goes on working, blocking and with callbacks
      assert.equal("models/chat-bison-001", assert(client:get_model("chat-bison-001")).name)
      local again
      client:get_model("text-bison-001", function(r) again = r end)
      client:run()
      assert.equal("models/text-bison-001", again.name)
      client:close()
    end)

    it("queued: it never goes out, the others complete in order", function()
      local client = new { max_in_flight = 1 }
      local got, errs = {}, {}
      local reqs = {}
      for i = 1, 3 do
        reqs[i] = client:count_text_tokens("text-bison-001", { prompt = { text = "queued " .. i } },
          function(_, e) got[#got + 1] = i; errs[i] = e end)
      end
      assert.is_true(reqs[2]:cancel())
      client:run()
      table.sort(got)
      assert.same({ 1, 2, 3 }, got)
      assert.equal("CANCELLED", errs[2].status)
      assert.is_nil(errs[1])
      assert.is_nil(errs[3])
      local j = emu:requests()
      assert.equal(2, #j)
      assert.equal('{"prompt":{"text":"queued 1"}}', j[1].body)
      assert.equal('{"prompt":{"text":"queued 3"}}', j[2].body)
      client:close()
    end)

    it("during a retry back-off: no further attempt", function()
      local client = new { retry = { initial = 1, max_attempts = 3 } }
      -- the server asks for 5 s between attempts (RetryInfo): the back-off cannot end during this test,
      -- whatever jitter draws (jitter alone could draw a delay shorter than the poll below)
      emu:control("POST", "/emulator/v1/faults", { rules = { { match = { method = "getModel" }, action = "error",
        status = 503, errorStatus = "UNAVAILABLE", retryAfter = 5, times = 0 } } })
      local err
      local req = client:get_model("text-bison-001", function(_, e) err = e end)
      local polls = 0
      while #emu:requests() < 1 and polls < 100 do client:poll(0.05); polls = polls + 1 end
      client:poll(0.3)                         -- the 503 is in; the retry waits its back-off (5 s)
      assert.is_false(req:done())
      local t0 = C.clock()
      assert.is_true(req:cancel())
      client:run()
      assert.is_true(C.clock() - t0 < 2.5)     -- nothing left to wait for (not the 5 s back-off)
      assert.equal("CANCELLED", err.status)
      assert.equal(1, #emu:requests())
      client:close()
    end)

    it("after the end: returns false and the callback gets the real result", function()
      local client = new()
      local res, err
      local req = client:get_model("text-bison-001", function(r, e) res, err = r, e end)
      assert(req:wait())
      assert.is_false(req:cancel())
      client:run()
      assert.is_nil(err)
      assert.equal("models/text-bison-001", res.name)
      client:close()
    end)
  end)

  describe("wait", function()
    it("drives until this request ends, returns its result; the callback still runs once", function()
      local client = new()
      local calls, others = 0, 0
      for _ = 1, 3 do client:get_model("chat-bison-001", function() others = others + 1 end) end
      local cbres
      local req = client:count_text_tokens("text-bison-001", { prompt = { text = "a b c" } },
        function(r) calls = calls + 1; cbres = r end)
      local res, err = req:wait()
      assert.is_nil(err)
      assert.same(assert(client:count_text_tokens("text-bison-001", { prompt = { text = "a b c" } })), res)
      assert.equal(0, calls)                   -- callbacks run from poll/run, not from wait
      client:run()
      assert.equal(1, calls)
      assert.equal(res, cbres)
      assert.equal(3, others)
      client:run()
      assert.equal(1, calls)
      client:close()
    end)

    it("returns nil, err for a failed request, the same err the callback gets", function()
      local client = new()
      local cberr
      local req = client:get_model("no-such-model", function(_, e) cberr = e end)
      local res, err = req:wait()
      assert.is_nil(res)
      assert.equal("NOT_FOUND", err.status)
      client:run()
      assert.equal(err, cberr)
      client:close()
    end)
  end)

  describe("errors raised by callbacks", function()
    it("propagate out of poll with a traceback; the other requests complete at the next polls", function()
      local client = new()
      local done = {}
      for i = 1, 6 do
        client:count_text_tokens("text-bison-001", { prompt = { text = "n " .. i } }, function(r)
          assert(r)
          done[#done + 1] = i
          if i == 2 or i == 5 then error("callback " .. i .. " failed") end
        end)
      end
      local failures, polls, left = {}, 0, 6
      while polls < 200 do
        polls = polls + 1
        local ok, n = pcall(client.poll, client, 0.1)
        if not ok then failures[#failures + 1] = n
        elseif n == 0 and #done == 6 then left = n; break end
      end
      assert.equal(0, left)
      table.sort(done)
      assert.same({ 1, 2, 3, 4, 5, 6 }, done)
      assert.equal(2, #failures)
      table.sort(failures)
      assert.matches("callback 2 failed", failures[1], 1, true)
      assert.matches("callback 5 failed", failures[2], 1, true)
      for _, f in ipairs(failures) do
        assert.matches("stack traceback", f, 1, true)
        assert.matches("async_lifecycle_spec.lua", f, 1, true)   -- points at the user's code
      end
      client:close()
    end)

    it("when several replies are ready at once, the callbacks after the failing one run at the next poll", function()
      local client = new()
      local ran = {}
      for i = 1, 4 do
        -- whichever callback runs first fails (completion order is libcurl's business)
        client:get_model("text-bison-001", function() ran[#ran + 1] = i; if #ran == 1 then error("first fails") end end)
      end
      -- drive until the emulator has all four (each reply takes 200 ms) ...
      local polls, s = 0
      repeat
        client:poll(0.02)
        s = emu:stats()
        polls = polls + 1
      until s.requests == 4 or polls > 200
      assert.equal(4, s.requests)
      assert.same({}, ran)                     -- ... before any reply came back
      -- ... then wait, without driving, until it has answered them all: the replies are in the socket buffers
      repeat
        C.sleep(0.05)
        s = emu:stats()
        polls = polls + 1
      until s.inFlight == 0 or polls > 400
      assert.equal(0, s.inFlight)
      local ok, e = pcall(client.poll, client, 0)
      assert.is_false(ok)
      assert.matches("first fails", e, 1, true)
      assert.equal(1, #ran)                    -- the others wait for the next poll
      assert.equal(0, client:poll(0))          -- the next poll runs the three others
      table.sort(ran)
      assert.same({ 1, 2, 3, 4 }, ran)
      client:close()
    end)

    it("propagate out of run, and run can be called again to finish the rest", function()
      local client = new()
      local n = 0
      client:get_model("text-bison-001", function() error("stop here") end)
      for _ = 1, 3 do client:get_model("chat-bison-001", function() n = n + 1 end) end
      local ok, e = pcall(client.run, client)
      assert.is_false(ok)
      assert.matches("stop here", e, 1, true)
      assert.matches("stack traceback", e, 1, true)
      client:run()
      assert.equal(3, n)
      client:close()
    end)
  end)

  describe("closing the client with requests in flight", function()
    it("does not crash; later use raises 'client is closed'", function()
      local client = new()
      local calls = 0
      for _ = 1, 5 do client:get_model("text-bison-001", function() calls = calls + 1 end) end
      client:poll(0.05)
      client:close()
      client:close()                            -- twice is harmless
      assert.has_error(function() client:poll(0) end, "gemini: client is closed")
      assert.has_error(function() client:get_model("text-bison-001") end, "gemini: client is closed")
      assert.matches("closed", tostring(client), 1, true)
      collectgarbage()
      collectgarbage()
      -- each callback was called once, from close (see below); nothing more afterwards
      C.sleep(0.3)
      assert.equal(5, calls)
    end)

    it("gives every pending request's callback nil, err (CANCELLED) exactly once; none runs after", function()
      local client = new { max_in_flight = 2, retry = { initial = 5, max_attempts = 3 } }
      emu:control("POST", "/emulator/v1/faults", { rules = { { match = { method = "countTextTokens" },
        action = "error", status = 503, errorStatus = "UNAVAILABLE", times = 0 } } })
      local calls, results, errs, reqs = {}, {}, {}, {}
      local function cb(i)
        return function(r, e) calls[i] = (calls[i] or 0) + 1; results[i], errs[i] = r, e end
      end
      -- 1: waiting out a retry back-off (5 s) once its 503 is in
      reqs[1] = client:count_text_tokens("text-bison-001", { prompt = { text = "retry me" } }, cb(1))
      while #emu:requests() < 1 do client:poll(0.05) end
      client:poll(0.1)
      -- 2, 3: in flight (max_in_flight = 2); 4, 5: queued; 6: a split batch_embed_text (3 parts) queued
      for i = 2, 5 do reqs[i] = client:get_model("text-bison-001", cb(i)) end
      local texts = {}
      for i = 1, 250 do texts[i] = "close text " .. i end
      reqs[6] = client:batch_embed_text("embedding-gecko-001", texts, cb(6))
      client:poll(0.02)
      for i = 1, 6 do assert.is_false(reqs[i]:done()) end
      assert.equal(0, #calls)
      client:close()
      for i = 1, 6 do
        assert.equal(1, calls[i], "callback " .. i)
        assert.is_nil(results[i])
        assert.equal("CANCELLED", errs[i].status)
        assert.matches("client was closed", errs[i].message, 1, true)
        assert.is_true(reqs[i]:done())
        local r, e = reqs[i]:wait()             -- the same nil, err
        assert.is_nil(r)
        assert.equal(errs[i], e)
        assert.is_false(reqs[i]:cancel())
      end
      assert.equal("/v1beta3/models/text-bison-001", errs[2].path)
      client:close()
      C.sleep(0.4)                               -- replies would be in by now: nothing reaches a callback
      collectgarbage()
      for i = 1, 6 do assert.equal(1, calls[i]) end
    end)

    it("runs the callbacks already due with their results, and every callback even when one raises", function()
      local client = new()
      local order = {}
      local done_req = client:get_model("text-bison-001", function(r) order[#order + 1] = "done " .. r.name end)
      assert(done_req:wait())                    -- finished; its callback is due at the next poll
      client:get_model("chat-bison-001", function(_, e) order[#order + 1] = "a " .. e.status; error("boom") end)
      client:get_model("chat-bison-001", function(_, e) order[#order + 1] = "b " .. e.status end)
      local ok, e = pcall(client.close, client)
      assert.is_false(ok)
      assert.matches("boom", e, 1, true)
      assert.matches("stack traceback", e, 1, true)
      assert.same({ "done models/text-bison-001", "a CANCELLED", "b CANCELLED" }, order)
      client:close()                             -- closed for good; harmless
      assert.has_error(function() client:poll(0) end, "gemini: client is closed")
      assert.equal(3, #order)
    end)

    it("a callback run by close that uses the client gets 'client is closed'", function()
      local client = new()
      local inner
      client:get_model("text-bison-001", function(_, e)
        inner = { e.status, pcall(client.get_model, client, "text-bison-001") }
      end)
      client:close()
      assert.equal("CANCELLED", inner[1])
      assert.is_false(inner[2])
      assert.matches("client is closed", inner[3], 1, true)
    end)
  end)

  describe("operations waited on asynchronously", function()
    it("op:wait with a callback reports progress while other requests run alongside", function()
      local client = new()
      local op = assert(client:create_tuned_model({ baseModel = "models/text-bison-001",
        tuningTask = { hyperparameters = { epochCount = 4, batchSize = 1 },
          trainingData = { examples = { examples = { { textInput = "1", output = "2" },
            { textInput = "2", output = "3" } } } } } }, { tunedModelId = "waited" }))
      local steps, tuned, terr, calls = {}, nil, nil, 0
      local function on_progress(md) steps[#steps + 1] = md.completedSteps or 0 end
      local ret = op:wait({ interval = 0.05, on_progress = on_progress },
        function(t, e) calls = calls + 1; tuned, terr = t, e end)
      assert.is_nil(ret)
      assert.is_nil(tuned)
      -- meanwhile, ordinary requests
      local side = 0
      for _ = 1, 4 do client:get_model("text-bison-001", function(r) if r then side = side + 1 end end) end
      local polls = 0
      while calls == 0 and polls < 500 do client:poll(0.05); polls = polls + 1 end
      assert.equal(1, calls)
      assert.is_nil(terr)
      assert.equal("tunedModels/waited", tuned.name)
      assert.equal("ACTIVE", tuned.state)
      assert.equal(4, side)
      assert.equal(8, steps[#steps])
      for i = 2, #steps do assert.is_true(steps[i] > steps[i - 1]) end
      assert.is_true(op:done())
      client:close()
    end)

    it("op:wait with a callback and a timeout gives DEADLINE_EXCEEDED without blocking", function()
      local slow = emulator.start { "--api-key", KEY .. "=alice@example.com", "--tuning-step-ms", "5000" }
      local client = gemini.new { api_key = KEY, base_url = slow.url, retry = false }
      local op = assert(client:create_tuned_model({ baseModel = "models/text-bison-001",
        tuningTask = { trainingData = { examples = { examples = { { textInput = "1", output = "2" } } } } } }))
      local err
      op:wait({ interval = 0.02, timeout = 0.2 }, function(_, e) err = e end)
      client:run()
      client:close()
      slow:stop()
      assert.equal("DEADLINE_EXCEEDED", err.status)
      assert.is_false(op:done())
    end)
  end)
end)
