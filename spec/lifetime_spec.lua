-- Lifetimes (issue 5): clients closed or collected with requests in flight, handles collected during
-- callbacks, calls from inside coroutines, garbage-collector storms, closing twice, use after close.
-- These run in the normal suite, and under ASan/UBSan and valgrind in `make check`, where a
-- use-after-free or a leak in any of these paths fails the run.
local emulator = require("spec.helpers.emulator")
local gemini = require("gemini")
local core = require("gemini.core")

local MODEL = "models/text-bison-001"
local function body(s) return { prompt = { text = s or "hello" } } end

-- Full collections, also running every finalizer that became due.
local function full_gc()
  for _ = 1, 3 do collectgarbage("collect") end
end

describe("lifetime", function()
  local emu = emulator.with_emulator { "--api-key", "k1=alice@example.com", "--tuning-step-ms", "0", reset = false }
  local slow = emulator.with_emulator { "--api-key", "k1=alice@example.com", "--latency", "400", reset = false }
  local client
  setup(function() client = emu:client { retry = false } end)

  local function new_client(url, extra)
    local opts = { api_key = "k1", base_url = url or emu.url, retry = false }
    for k, v in pairs(extra or {}) do opts[k] = v end
    return gemini.new(opts)
  end

  -- The emulator is still serving, and a fresh client works: nothing was left in a bad state.
  local function still_works(url)
    local c = new_client(url)
    local res, err = c:count_text_tokens(MODEL, body("still works"))
    c:close()
    assert.is_nil(err)
    assert.is_true(res.tokenCount > 0)
  end

  describe("a client with requests in flight", function()
    it("closed: the requests are aborted, each callback gets CANCELLED once from close, none later", function()
      local c = new_client(slow.url, { max_in_flight = 4 })   -- 4 in flight, 2 queued
      local called, each, bad = 0, {}, {}
      for i = 1, 6 do
        c:generate_text(MODEL, body("in flight " .. i), function(res, e)
          if res ~= nil or type(e) ~= "table" or e.status ~= "CANCELLED" then bad[#bad + 1] = i end
          called = called + 1
          each[i] = (each[i] or 0) + 1
        end)
      end
      c:poll(0.05)                 -- the transfers are started and waiting on the server (400 ms)
      c:close()
      assert.same({}, bad)         -- every one got nil, err (CANCELLED)
      assert.equal(6, called)
      for i = 1, 6 do assert.equal(1, each[i]) end   -- each exactly once, in flight or queued
      c:close()                    -- closing again calls nothing
      full_gc()
      assert.equal(6, called)      -- nor does a collection afterwards
      assert.has_error(function() c:poll(0) end, "gemini: client is closed")
      assert.equal(6, called)
      still_works(slow.url)
    end)

    it("collected without close: the finalizer frees the transfers safely", function()
      local called = 0
      do
        local c = new_client(slow.url)
        for i = 1, 6 do
          c:count_text_tokens(MODEL, body("gc " .. i), function() called = called + 1 end)
        end
        c:poll(0.05)
      end
      full_gc()
      assert.equal(0, called)
      still_works(slow.url)
    end)

    it("many clients opened and dropped with transfers in flight, collected in one go", function()
      for i = 1, 20 do
        local c = new_client(slow.url)
        c:generate_text(MODEL, body("drop " .. i), function() end)
        c:poll(0)
        if i % 2 == 0 then c:close() end
      end
      full_gc()
      still_works(slow.url)
    end)

    it("core client: collected, or closed then collected, with transfers started but never performed", function()
      do
        local a = core.client {}
        local b = core.client {}
        for i = 1, 4 do
          a:start { url = slow.url .. "/v1beta3/models?never=" .. i, headers = { "x-goog-api-key: k1" } }
          b:start { method = "POST", url = slow.url .. "/v1beta3/" .. MODEL .. ":countTextTokens",
                    headers = { "x-goog-api-key: k1", "Content-Type: application/json" },
                    body = '{"prompt":{"text":"x"}}' }
        end
        b:close()
      end
      full_gc()
      still_works(slow.url)
    end)

    it("a callback that closes its own client: each other callback runs once, from close; nothing crashes", function()
      local c = new_client()
      local ran, each = 0, {}
      for i = 1, 5 do
        c:count_text_tokens(MODEL, body("self close " .. i), function(res, err)
          ran = ran + 1
          each[i] = (each[i] or 0) + 1
          assert.is_true(res ~= nil or err.status == "CANCELLED")
          c:close()
        end)
      end
      local ok, err = pcall(c.run, c)
      if not ok then assert.matches("client is closed", tostring(err)) end
      assert.equal(5, ran)
      for i = 1, 5 do assert.equal(1, each[i]) end
      assert.has_error(function() c:poll(0) end, "gemini: client is closed")
      full_gc()
      still_works()
    end)
  end)

  describe("handles", function()
    it("are created and collected inside callbacks while other requests are in flight", function()
      local c = new_client()
      local results = {}
      for i = 1, 8 do
        local m = c:model("text-bison-001")
        m:count_text_tokens(body(("w "):rep(i)), function(res, err)
          assert.is_nil(err)
          results[i] = res.tokenCount
          -- fresh handles of every kind, dropped at once, and a collection right here
          local _ = { c:model("text-bison-001"), c:tuned_model("t" .. i), c:corpus("c" .. i),
                      c:permission("tunedModels/t" .. i .. "/permissions/p") }
          full_gc()
        end)
        m = nil -- luacheck: ignore 311
        full_gc()   -- the handle that started the request is gone before its reply
      end
      c:run()
      for i = 1, 8 do assert.is_true(results[i] > 0) end
      c:close()
    end)

    it("an operation handle collected while its client keeps working", function()
      local op = assert(client:create_tuned_model({ displayName = "life", baseModel = MODEL,
        tuningTask = { trainingData = { examples = { examples = { { textInput = "a", output = "b" } } } } } },
        { tunedModelId = "life-" .. tostring(os.time()) }))
      local name = op.name
      op = nil -- luacheck: ignore 311
      full_gc()
      local again = assert(client:get_operation(name))
      assert(again:wait { interval = 0.01, timeout = 10 })
      again = nil -- luacheck: ignore 311
      full_gc()
      still_works()
    end)

    it("outlive their client: using them after the client is closed raises, collecting them is safe", function()
      local c = new_client()
      local m = c:model("text-bison-001")
      local t = c:tuned_model("whatever")
      c:close()
      assert.has_error(function() m:get() end)
      assert.has_error(function() t:get() end)
      assert.equal("models/text-bison-001", m.name)
      c = nil -- luacheck: ignore 311
      full_gc()
      assert.equal("tunedModels/whatever", t.name)
    end)
  end)

  describe("coroutines", function()
    it("blocking calls made inside coroutines that yield between them", function()
      local c = new_client()
      local co = coroutine.create(function()
        for i = 1, 3 do
          local res, err = c:count_text_tokens(MODEL, body(("x "):rep(i)))
          assert.is_nil(err)
          coroutine.yield(res.tokenCount)
        end
        return "done"
      end)
      local got = {}
      for _ = 1, 4 do
        local ok, v = coroutine.resume(co)
        assert.is_true(ok, tostring(v))
        got[#got + 1] = v
      end
      assert.equal("done", got[4])
      assert.equal("dead", coroutine.status(co))
      c:close()
    end)

    it("requests started in a coroutine that is collected before they finish; callbacks run later", function()
      local c = new_client(slow.url)
      local seen = 0
      do
        local co = coroutine.wrap(function()
          for i = 1, 4 do
            c:generate_text(MODEL, body("co " .. i), function(res, err)
              assert.is_nil(err)
              assert.is_table(res.candidates)
              seen = seen + 1
            end)
          end
          c:poll(0)
        end)
        co()
      end
      full_gc()   -- the coroutine (and its lua_State) is gone
      c:run()
      assert.equal(4, seen)
      c:close()
    end)

    it("a coroutine abandoned while suspended inside a callback chain", function()
      local c = new_client()
      local co = coroutine.create(function()
        c:count_text_tokens(MODEL, body("abandoned"), function() end)
        coroutine.yield()
        error("never resumed")
      end)
      assert(coroutine.resume(co))
      co = nil -- luacheck: ignore 311
      full_gc()
      c:run()
      c:close()
    end)

    it("the client is driven from different coroutines in turn", function()
      local c = new_client()
      local n = 0
      for i = 1, 5 do
        c:count_text_tokens(MODEL, body("turn " .. i), function() n = n + 1 end)
      end
      for _ = 1, 200 do
        if n == 5 then break end
        local co = coroutine.create(function() c:poll(0.05) end)
        assert(coroutine.resume(co))
        full_gc()
      end
      assert.equal(5, n)
      c:close()
    end)
  end)

  describe("garbage-collector storms", function()
    before_each(function()
      -- the most aggressive incremental collector: a collection step at almost every allocation
      pcall(collectgarbage, "incremental", 10, 1000)   -- Lua 5.4
      pcall(collectgarbage, "setpause", 10)            -- Lua 5.1 to 5.3
    end)
    after_each(function()
      pcall(collectgarbage, "setpause", 200)
      pcall(collectgarbage, "incremental", 200, 100)
    end)

    it("between and inside calls, blocking and callbacks, with errors among them", function()
      local c = new_client()
      for i = 1, 40 do
        full_gc()
        if i % 4 == 0 then
          local res, err = c:get_model("models/missing-" .. i)
          assert.is_nil(res)
          assert.equal("NOT_FOUND", err.status)
        elseif i % 4 == 1 then
          local done = false
          c:generate_text(MODEL, body("storm " .. i), function(res, err)
            full_gc()
            assert.is_nil(err)
            assert.is_table(res.candidates)
            done = true
          end)
          full_gc()
          c:run()
          assert.is_true(done)
        else
          local res = assert(c:generate_text(MODEL, body("storm " .. i)))
          full_gc()
          assert.is_string(res.candidates[1].output)
        end
      end
      c:close()
    end)

    it("in generational mode (Lua 5.4)", function()
      if not pcall(collectgarbage, "generational") then return end
      local c = new_client()
      for i = 1, 20 do
        c:count_text_tokens(MODEL, body("gen " .. i), function(res) assert.is_true(res.tokenCount > 0) end)
        if i % 5 == 0 then c:run(); full_gc() end
      end
      c:run()
      c:close()
      collectgarbage("incremental")
    end)
  end)

  describe("close", function()
    it("twice is harmless, and so is collecting a closed client", function()
      local c = new_client()
      assert(c:count_text_tokens(MODEL, body()))
      c:close()
      c:close()
      assert.matches("closed", tostring(c))
      c = nil -- luacheck: ignore 311
      full_gc()
    end)

    it("then every use raises a clear error", function()
      local c = new_client()
      c:close()
      for _, call in ipairs {
        function() return c:generate_text(MODEL, body()) end,
        function() return c:generate_text(MODEL, body(), function() end) end,
        function() return c:list_models() end,
        function() return c:get_model("text-bison-001") end,
        function() return c:model("text-bison-001") end,
        function() return c:poll(0) end,
        function() return c:run() end,
      } do
        assert.has_error(call, "gemini: client is closed")
      end
    end)

    it("of a core client twice, then use raises; __close closes it", function()
      local c = core.client {}
      c:close()
      c:close()
      assert.has_error(function() c:start { url = emu.url } end, "gemini.core: client is closed")
      assert.matches("%(closed%)", tostring(c))
      local mt = debug.getmetatable(c)
      local d = core.client {}
      mt.__close(d)
      assert.matches("%(closed%)", tostring(d))
      mt.__gc(d)   -- a finalizer after close is harmless
      mt.__gc(d)
    end)
  end)
end)
