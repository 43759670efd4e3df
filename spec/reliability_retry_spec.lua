-- Issue 5, retries and deadlines: which failures are retried, how long the client waits (read from the
-- on_retry debug hook, never from a clock), what a side-effecting POST may do again, per-client and
-- per-call policies, the total deadline, and err.attempts. All against the real emulator.
local emulator = require("spec.helpers.emulator")
local gemini = require("gemini")
local retry = require("gemini.retry")

local KEY = "rk-7c1d-retry-secret"
local FAST = { initial = 0.001, multiplier = 2, max_delay = 0.004, max_attempts = 5 }

local function tuned_body(name)
  return {
    displayName = name, baseModel = "models/text-bison-001",
    tuningTask = { trainingData = { examples = { examples = {
      { textInput = "1", output = "2" }, { textInput = "2", output = "3" } } } } },
  }
end

describe("reliability: retries", function()
  -- emu:traced{...}: a client (key KEY) whose hooks record every attempt and every retry decision
  local emu = emulator.with_emulator { "--api-key", KEY .. "=alice@example.com",
                                      "--api-key", "other-key=bob@example.com", "--tuning-step-ms", "5" }

  describe("which failures", function()
    for _, code in ipairs({ 429, 500, 502, 503, 504 }) do
      it("retries HTTP " .. code .. " and then succeeds", function()
        local t = emu:traced { retry = FAST }
        emu:fault { match = { method = "getModel" }, action = "error", status = code }
        local model, err = t.client:get_model("text-bison-001")
        assert.is_nil(err)
        assert.equal("models/text-bison-001", model.name)
        assert.equal(1, #t.retries)
        assert.equal(code, t.retries[1].err.code)
        assert.equal(1, t.retries[1].attempt)
        local j = emu:requests()
        assert.equal(2, #j)
        assert.equal(code, j[1].status)
        assert.equal(200, j[2].status)
        t.client:close()
      end)
    end

    for _, code in ipairs({ 400, 401, 403, 404, 409, 501 }) do
      it("does not retry HTTP " .. code, function()
        local t = emu:traced { retry = FAST }
        emu:fault { match = { method = "getModel" }, action = "error", status = code, times = 0 }
        local model, err = t.client:get_model("text-bison-001")
        assert.is_nil(model)
        assert.equal(code, err.code)
        assert.equal(0, #t.retries)
        assert.is_nil(err.attempts)
        assert.equal(1, #emu:requests())
        t.client:close()
      end)
    end

    it("retries a connection reset (no reply at all) and then succeeds", function()
      local t = emu:traced { retry = FAST }
      emu:fault { match = { method = "getModel" }, action = "reset" }
      assert(t.client:get_model("text-bison-001"))
      assert.equal(1, #t.retries)
      assert.is_nil(t.retries[1].err.code)
      assert.equal("UNAVAILABLE", t.retries[1].err.status)
      assert.equal(2, #t.requests)
      t.client:close()
    end)

    it("retries a reply cut short (truncate) and then succeeds", function()
      local t = emu:traced { retry = FAST }
      emu:fault { match = { method = "listModels" }, action = "truncate", bytes = 10 }
      local page = assert(t.client:list_models())
      assert.is_true(#page.models > 0)
      assert.equal(1, #t.retries)
      assert.equal("UNAVAILABLE", t.retries[1].err.status)
      t.client:close()
    end)

    it("retries a refused connection up to max_attempts and reports err.attempts", function()
      local t = emu:traced { base_url = "http://127.0.0.1:1", retry = { initial = 0.001, max_attempts = 3 } }
      local res, err = t.client:list_models()
      assert.is_nil(res)
      assert.equal("connect", err.kind)
      assert.equal("UNAVAILABLE", err.status)
      assert.equal(3, err.attempts)
      assert.equal(3, #t.requests)
      assert.same({ 1, 2, 3 }, { t.requests[1].attempt, t.requests[2].attempt, t.requests[3].attempt })
      assert.equal(2, #t.retries)
      assert.matches("after 3 attempts", tostring(err), 1, true)
      t.client:close()
    end)
  end)

  describe("backoff", function()
    it("grows exponentially under max_delay with full jitter, as on_retry reports", function()
      local t = emu:traced { retry = { initial = 0.002, multiplier = 2, max_delay = 0.008, max_attempts = 6 } }
      emu:fault { match = { method = "getModel" }, action = "error", status = 503, times = 0 }
      local _, err = t.client:get_model("text-bison-001")
      assert.equal(503, err.code)
      assert.equal(6, err.attempts)
      assert.equal(6, #emu:requests())
      assert.equal(5, #t.retries)
      local caps = { 0.002, 0.004, 0.008, 0.008, 0.008 }
      for i, r in ipairs(t.retries) do
        assert.equal(i, r.attempt)
        assert.is_true(r.delay >= 0, "delay " .. i .. " is negative")
        assert.is_true(r.delay <= caps[i] + 1e-9, "delay " .. i .. " = " .. r.delay .. " above its cap " .. caps[i])
      end
      t.client:close()
    end)

    it("draws each delay at random between 0 and the cap (full jitter, not equal jitter)", function()
      local t = emu:traced { retry = { initial = 0.001, multiplier = 1, max_delay = 0.001, max_attempts = 31 } }
      emu:fault { match = { method = "getModel" }, action = "error", status = 500, times = 0 }
      local _, err = t.client:get_model("text-bison-001")
      assert.equal(31, err.attempts)
      local low, distinct, seen = 0, 0, {}
      for _, r in ipairs(t.retries) do
        assert.is_true(r.delay >= 0 and r.delay <= 0.001)
        if r.delay < 0.0005 then low = low + 1 end
        if not seen[r.delay] then seen[r.delay] = true; distinct = distinct + 1 end
      end
      -- 30 uniform draws: all in the upper half has probability 2^-30
      assert.is_true(low > 0, "no delay below half the cap: not full jitter")
      assert.is_true(distinct > 1)
      t.client:close()
    end)

    it("computes the delay as random() * min(initial * multiplier^(n-1), max_delay)", function()
      local p = { initial = 0.5, multiplier = 2, max_delay = 30 }
      local function one() return 0.999999 end
      local function zero() return 0 end
      assert.is_true(math.abs(retry.delay(p, 1, nil, one) - 0.5) < 1e-5)
      assert.is_true(math.abs(retry.delay(p, 3, nil, one) - 2) < 1e-5)
      assert.is_true(math.abs(retry.delay(p, 10, nil, one) - 30) < 1e-4)
      assert.equal(0, retry.delay(p, 4, nil, zero))
      -- the server's request is a floor
      assert.equal(7, retry.delay(p, 1, 7, zero))
    end)

    it("honours RetryInfo.retryDelay from the error details", function()
      local t = emu:traced { retry = { initial = 0.001, max_delay = 0.002, max_attempts = 3 } }
      emu:fault { match = { method = "getModel" }, action = "error", status = 503,
                  details = { { ["@type"] = "type.googleapis.com/google.rpc.RetryInfo", retryDelay = "0.25s" } } }
      assert(t.client:get_model("text-bison-001"))
      assert.equal(1, #t.retries)
      assert.equal(0.25, t.retries[1].err.retry_after)
      assert.is_true(t.retries[1].delay >= 0.25)
      t.client:close()
    end)

    it("honours Retry-After and RetryInfo from the rate limiter (429), then succeeds", function()
      local t = emu:traced { retry = { initial = 0.001, max_delay = 0.002, max_attempts = 3 } }
      emu:control("POST", "/emulator/v1/ratelimit", { requests = 1, windowMs = 2000 })
      assert(t.client:list_models())
      assert(t.client:get_model("text-bison-001"))
      assert.equal(1, #t.retries)
      local r = t.retries[1]
      assert.equal(429, r.err.code)
      assert.equal("RESOURCE_EXHAUSTED", r.err.status)
      assert.is_true(r.err.retry_after >= 1)
      assert.is_true(r.delay >= r.err.retry_after)   -- well above max_delay: the server wins
      local j = emu:requests()
      assert.same({ 200, 429, 200 }, { j[1].status, j[2].status, j[3].status })
      t.client:close()
    end)
  end)

  describe("side-effecting POSTs", function()
    local function calls(c)
      return {
        create_permission = function()
          return c:create_permission("corpora/shared", { granteeType = "EVERYONE", role = "READER" })
        end,
        transfer_ownership = function()
          return c:transfer_ownership("tunedModels/owned", { emailAddress = "bob@example.com" })
        end,
        create_tuned_model = function()
          return c:create_tuned_model(tuned_body("side"), { tunedModelId = "side" })
        end,
      }
    end
    local RPC = { create_permission = "createPermission", transfer_ownership = "transferOwnership",
                  create_tuned_model = "createTunedModel" }

    for _, name in ipairs({ "create_permission", "transfer_ownership", "create_tuned_model" }) do
      it(name .. " is not retried on 500/502/503/504", function()
        local t = emu:traced { retry = FAST }
        for _, code in ipairs({ 500, 502, 503, 504 }) do
          emu:reset()
          emu:fault { match = { method = RPC[name] }, action = "error", status = code, times = 0 }
          local res, err = calls(t.client)[name]()
          assert.is_nil(res)
          assert.equal(code, err.code)
          assert.is_nil(err.attempts)
          assert.equal(1, #emu:requests())
        end
        assert.equal(0, #t.retries)
        t.client:close()
      end)

      it(name .. " is not retried when the connection breaks after sending (reset, truncate)", function()
        local t = emu:traced { retry = FAST }
        for _, action in ipairs({ "reset", "truncate" }) do
          emu:reset()
          emu:fault { match = { method = RPC[name] }, action = action, times = 0 }
          local res, err = calls(t.client)[name]()
          assert.is_nil(res)
          assert.equal("UNAVAILABLE", err.status)
          assert.is_nil(err.attempts)
          assert.equal(1, #emu:requests())
        end
        assert.equal(0, #t.retries)
        t.client:close()
      end)

      it(name .. " is sent once when a kept-alive connection is reset (no silent libcurl resend)", function()
        local t = emu:traced { retry = FAST }
        assert(t.client:get_model("text-bison-001"))   -- leaves a keep-alive connection in the pool
        emu:control("DELETE", "/emulator/v1/requests")
        emu:fault { match = { method = RPC[name] }, action = "reset", times = 0 }
        local res, err = calls(t.client)[name]()
        assert.is_nil(res)
        assert.equal("UNAVAILABLE", err.status)
        assert.equal(1, #emu:requests())
        assert.equal(1, #t.requests - 1)
        t.client:close()
      end)

      it(name .. " is retried on 429", function()
        local t = emu:traced { retry = FAST }
        emu:fault { match = { method = RPC[name] }, action = "error", status = 429, times = 2 }
        local _, err = calls(t.client)[name]()
        -- whatever the API then answers (the resources may not exist), three requests went out
        assert.equal(2, #t.retries)
        assert.equal(429, t.retries[1].err.code)
        assert.equal(3, #emu:requests())
        if err then assert.are_not.equal(429, err.code) end
        t.client:close()
      end)

      it(name .. " is retried when the connection was refused (never reached a server)", function()
        local t = emu:traced { base_url = "http://127.0.0.1:1", retry = { initial = 0.001, max_attempts = 3 } }
        local res, err = calls(t.client)[name]()
        assert.is_nil(res)
        assert.equal("connect", err.kind)
        assert.equal(3, err.attempts)
        assert.equal(3, #t.requests)
        t.client:close()
      end)
    end

    it("create_permission is not retried after a timeout, since the server may have acted", function()
      local t = emu:traced { retry = FAST, timeout = 0.3 }
      emu:fault { match = { method = "createPermission" }, action = "delay", delayMs = 1500 }
      local res, err = t.client:create_permission("corpora/late",
        { granteeType = "USER", emailAddress = "bob@example.com", role = "READER" })
      assert.is_nil(res)
      assert.equal("DEADLINE_EXCEEDED", err.status)
      assert.equal(0, #t.retries)
      -- the emulator still created it: a blind retry would have made a second one
      local c2 = gemini.new { api_key = KEY, base_url = emu.url, retry = false }
      local list, lerr
      for _ = 1, 100 do          -- bounded: the delayed request lands within ~1.5 s
        list, lerr = c2:list_permissions("corpora/late")
        if list and list.permissions and #list.permissions >= 2 then break end
        require("socket").sleep(0.05)
      end
      assert.is_nil(lerr)
      local grants = 0
      for _, p in ipairs(list.permissions) do if p.emailAddress == "bob@example.com" then grants = grants + 1 end end
      assert.equal(1, grants)
      c2:close()
      t.client:close()
    end)

    it("a create_tuned_model retried after 429 that meets ALREADY_EXISTS returns its own model's operation",
      function()
        local t = emu:traced { retry = FAST }
        local first = assert(t.client:create_tuned_model(tuned_body("mine"), { tunedModelId = "mine" }))
        emu:control("DELETE", "/emulator/v1/requests")
        emu:fault { match = { method = "createTunedModel" }, action = "error", status = 429 }
        local op, err = t.client:create_tuned_model(tuned_body("mine"), { tunedModelId = "mine" })
        assert.is_nil(err)
        assert.equal(first.name, op.name)
        local j = emu:requests()
        assert.same({ 429, 409 }, { j[1].status, j[2].status })
        assert.equal("listOperations", j[3].rpc)
        assert(op:wait { interval = 0.01 })
        t.client:close()
      end)

    it("a create_tuned_model that meets someone else's model after a retry keeps ALREADY_EXISTS", function()
      local bob = gemini.new { api_key = "other-key", base_url = emu.url, retry = false }
      assert(bob:create_tuned_model(tuned_body("bob's"), { tunedModelId = "taken" }))
      bob:close()
      local t = emu:traced { retry = FAST }
      emu:fault { match = { method = "createTunedModel" }, action = "error", status = 429 }
      local op, err = t.client:create_tuned_model(tuned_body("alice's"), { tunedModelId = "taken" })
      assert.is_nil(op)
      assert.equal("ALREADY_EXISTS", err.status)
      assert.equal(2, err.attempts)
      t.client:close()
    end)

    it("a create_tuned_model without a retry keeps ALREADY_EXISTS as an error", function()
      local t = emu:traced { retry = FAST }
      assert(t.client:create_tuned_model(tuned_body("x"), { tunedModelId = "dup" }))
      local op, err = t.client:create_tuned_model(tuned_body("x"), { tunedModelId = "dup" })
      assert.is_nil(op)
      assert.equal("ALREADY_EXISTS", err.status)
      assert.equal(0, #t.retries)
      t.client:close()
    end)
  end)

  describe("policies", function()
    it("retry = false on the client makes a single attempt", function()
      local t = emu:traced { retry = false }
      emu:fault { match = { method = "getModel" }, action = "error", status = 503 }
      local _, err = t.client:get_model("text-bison-001")
      assert.equal(503, err.code)
      assert.is_nil(err.attempts)
      assert.equal(1, #emu:requests())
      assert.equal(0, #t.retries)
      t.client:close()
    end)

    it("without a retry option, the default policy retries (delay under initial = 0.5 s)", function()
      local t = emu:traced {}
      emu:fault { match = { method = "getModel" }, action = "error", status = 503 }
      assert(t.client:get_model("text-bison-001"))
      assert.equal(1, #t.retries)
      assert.is_true(t.retries[1].delay <= retry.DEFAULT.initial)
      assert.same({ max_attempts = 5, initial = 0.5, multiplier = 2, max_delay = 30 }, retry.DEFAULT)
      t.client:close()
    end)

    it("a per-call retry table overrides the client's retry = false", function()
      local t = emu:traced { retry = false }
      emu:fault { match = { method = "getModel" }, action = "error", status = 503, times = 0 }
      local _, err = t.client:get_model("text-bison-001", { retry = { initial = 0.001, max_attempts = 3 } })
      assert.equal(3, err.attempts)
      assert.equal(3, #emu:requests())
      t.client:close()
    end)

    it("a per-call retry = false overrides the client's policy, for every form of call", function()
      local t = emu:traced { retry = FAST }
      emu:fault { match = {}, action = "error", status = 503, times = 0 }
      local _, e1 = t.client:get_model("text-bison-001", { retry = false })
      local _, e2 = t.client:list_models { pageSize = 2, retry = false }
      local _, e3 = t.client:generate_text("text-bison-001", { prompt = { text = "hi" } }, { retry = false })
      local _, e4 = t.client:model("text-bison-001"):get { retry = false }
      for _, e in ipairs({ e1, e2, e3, e4 }) do
        assert.equal(503, e.code)
        assert.is_nil(e.attempts)
      end
      assert.equal(4, #emu:requests())
      assert.equal("pageSize=2", emu:requests()[2].query)   -- call options never reach the wire
      assert.equal(0, #t.retries)
      t.client:close()
    end)

    it("a per-call max_attempts replaces the client's", function()
      local t = emu:traced { retry = { initial = 0.001, max_attempts = 2 } }
      emu:fault { match = { method = "embedText" }, action = "error", status = 502, times = 0 }
      local _, err = t.client:embed_text("embedding-gecko-001", { text = "x" },
        { retry = { initial = 0.001, max_attempts = 4 } })
      assert.equal(4, err.attempts)
      assert.equal(4, #emu:requests())
      t.client:close()
    end)

    it("max_attempts = 1 means no retry", function()
      local t = emu:traced { retry = { max_attempts = 1 } }
      emu:fault { match = { method = "getModel" }, action = "error", status = 503 }
      local _, err = t.client:get_model("text-bison-001")
      assert.equal(503, err.code)
      assert.equal(1, #emu:requests())
      t.client:close()
    end)

    it("callback calls retry like blocking ones", function()
      local t = emu:traced { retry = FAST }
      emu:fault { match = { method = "getModel" }, action = "error", status = 503, times = 2 }
      local got, gerr
      t.client:get_model("text-bison-001", function(m, e) got, gerr = m, e end)
      t.client:run()
      assert.is_nil(gerr)
      assert.equal("models/text-bison-001", got.name)
      assert.equal(2, #t.retries)
      assert.equal(3, #emu:requests())
      t.client:close()
    end)
  end)

  describe("the total deadline", function()
    it("spans attempts and waits: no retry whose wait would pass it", function()
      -- the server asks for 1 s each time; deadline 2.5 s leaves room for two waits, never three
      -- (2 on a fast machine; a slow one, e.g. under valgrind, may fit only one)
      local t = emu:traced { deadline = 2.5, retry = { initial = 0.001, max_attempts = 50 } }
      emu:fault { match = { method = "getModel" }, action = "error", status = 503, retryAfter = 1, times = 0 }
      local _, err = t.client:get_model("text-bison-001")
      assert.equal(503, err.code)
      assert.is_true(err.attempts == 2 or err.attempts == 3, "attempts: " .. tostring(err.attempts))
      assert.equal(err.attempts, #emu:requests())
      assert.equal(err.attempts - 1, #t.retries)
      for _, r in ipairs(t.retries) do assert.equal(1, r.delay) end
      local waited = 0
      for _, r in ipairs(t.retries) do waited = waited + r.delay end
      assert.is_true(waited <= 2.5)
      t.client:close()
    end)

    it("does not wait for a server delay longer than the deadline", function()
      local t = emu:traced { deadline = 1, retry = { initial = 0.001, max_attempts = 5 } }
      emu:fault { match = { method = "getModel" }, action = "error", status = 429, retryAfter = 30 }
      local _, err = t.client:get_model("text-bison-001")
      assert.equal(429, err.code)
      assert.equal(30, err.retry_after)
      assert.equal(0, #t.retries)
      assert.equal(1, #emu:requests())
      t.client:close()
    end)

    it("bounds the attempt in flight after earlier retries: DEADLINE_EXCEEDED naming the deadline", function()
      local t = emu:traced { retry = FAST, timeout = 30 }
      emu:fault { match = { method = "getModel" }, action = "error", status = 503 }
      emu:fault { match = { method = "getModel" }, action = "delay", delayMs = 5000 }
      local _, err = t.client:get_model("text-bison-001", { deadline = 2 })
      assert.equal("DEADLINE_EXCEEDED", err.status)
      assert.equal("deadline", err.kind)
      assert.matches("deadline = 2 s", err.message, 1, true)
      assert.equal(2, err.attempts)
      assert.equal(1, #t.retries)
      t.client:close()
    end)

    it("a per-call deadline overrides the client's", function()
      local t = emu:traced { deadline = 60, retry = { initial = 0.001, max_attempts = 50 } }
      -- the server asks for 5 s: within the client's 60 s, beyond the call's 3 s (which leaves a loaded
      -- machine ample time for the one attempt: an attempt cut short would be DEADLINE_EXCEEDED)
      emu:fault { match = { method = "getModel" }, action = "error", status = 503, retryAfter = 5, times = 0 }
      local _, err = t.client:get_model("text-bison-001", { deadline = 3 })
      assert.equal(503, err.code)
      assert.equal(1, #emu:requests())
      t.client:close()
    end)
  end)

  it("never leaks the key into what the retry hook reports", function()
    local t = emu:traced { retry = FAST }
    emu:fault { match = { method = "getModel" }, action = "error", status = 503, message = "bad key " .. KEY }
    assert(t.client:get_model("text-bison-001"))
    local r = t.retries[1]
    assert.is_nil(tostring(r.err):find(KEY, 1, true))
    assert.is_nil(r.err.message:find(KEY, 1, true))
    t.client:close()
  end)
end)
