-- Issue 5, limits and hostile servers: connect_timeout, timeout, stall_timeout, max_response_bytes
-- (enforced while receiving, memory bounded), redirects not followed, and every fault the emulator
-- can inject (plus odd 200 replies from a local server) giving a clear error or a successful retry.
local emulator = require("spec.helpers.emulator")
local rogue = require("spec.helpers.rogue_server")
local gemini = require("gemini")
local socket = require("socket")

local KEY = "lk-93ab-limits-secret"
local FAST = { initial = 0.001, multiplier = 2, max_delay = 0.004, max_attempts = 4 }

local function rss_kb()
  local f = io.open("/proc/self/status", "r")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return tonumber(s:match("VmRSS:%s*(%d+)"))
end

describe("reliability: limits", function()
  -- emu:traced{...}: a client (key KEY) whose hooks record every attempt and every retry decision
  local emu = emulator.with_emulator { "--api-key", KEY .. "=alice@example.com", "--tuning-step-ms", "5" }

  describe("timeouts", function()
    -- A loopback listener that never accepts, with its backlog filled: the kernel drops further SYNs,
    -- so a connect neither succeeds nor is refused.
    local blackhole, fillers, bh_url
    setup(function()
      blackhole = assert(socket.tcp4())
      assert(blackhole:bind("127.0.0.1", 0))
      assert(blackhole:listen(0))
      local _, port = blackhole:getsockname()
      bh_url = "http://127.0.0.1:" .. port
      fillers = {}
      for i = 1, 8 do
        local c = assert(socket.tcp4())
        c:settimeout(0)
        c:connect("127.0.0.1", port)
        fillers[i] = c
      end
    end)
    teardown(function()
      for _, c in ipairs(fillers) do c:close() end
      blackhole:close()
    end)

    it("connect_timeout: DEADLINE_EXCEEDED naming connect_timeout, bounded", function()
      local t = emu:traced { base_url = bh_url, retry = false, connect_timeout = 0.4, timeout = 30 }
      local started = socket.gettime()
      local res, err = t.client:list_models()
      assert.is_true(socket.gettime() - started < 10)   -- a hang is what this guards against
      assert.is_nil(res)
      assert.is_nil(err.code)
      assert.equal("DEADLINE_EXCEEDED", err.status)
      assert.equal("connect_timeout", err.kind)
      assert.matches("connect_timeout = 0.4 s", err.message, 1, true)
      assert.is_nil(tostring(err):find(KEY, 1, true))
      t.client:close()
    end)

    it("connect_timeout is retried, even for a side-effecting POST (the request never left)", function()
      local t = emu:traced { base_url = bh_url, retry = { initial = 0.001, max_attempts = 2 }, connect_timeout = 0.3 }
      local _, err = t.client:create_permission("corpora/c", { granteeType = "EVERYONE", role = "READER" })
      assert.equal("connect_timeout", err.kind)
      assert.equal(2, err.attempts)
      assert.equal(2, #t.requests)
      t.client:close()
    end)

    it("timeout bounds each attempt: DEADLINE_EXCEEDED naming timeout", function()
      local t = emu:traced { retry = { initial = 0.001, max_attempts = 2 }, timeout = 0.3 }
      emu:fault { match = { method = "getModel" }, action = "delay", delayMs = 3000, times = 2 }
      local res, err = t.client:get_model("text-bison-001")
      assert.is_nil(res)
      assert.equal("DEADLINE_EXCEEDED", err.status)
      assert.equal("timeout", err.kind)
      assert.matches("timeout = 0.3 s", err.message, 1, true)
      assert.equal(2, err.attempts)
      assert.equal(2, #t.responses)
      for _, r in ipairs(t.responses) do assert.equal("timeout", r.kind) end
      t.client:close()
    end)

    it("a per-call timeout overrides the client's and is named in the message", function()
      local t = emu:traced { retry = false, timeout = 60 }
      emu:fault { match = { method = "generateText" }, action = "delay", delayMs = 3000 }
      local _, err = t.client:generate_text("text-bison-001", { prompt = { text = "x" } }, { timeout = 0.25 })
      assert.equal("DEADLINE_EXCEEDED", err.status)
      assert.equal("timeout", err.kind)
      assert.matches("timeout = 0.25 s", err.message, 1, true)
      t.client:close()
    end)

    it("stall_timeout: a reply that stops moving is DEADLINE_EXCEEDED naming stall_timeout", function()
      local t = emu:traced { retry = false, timeout = 60, stall_timeout = 1 }
      emu:fault { match = { method = "getModel" }, action = "drip", dripBytes = 1, dripIntervalMs = 4000 }
      local started = socket.gettime()
      local res, err = t.client:get_model("text-bison-001")
      assert.is_true(socket.gettime() - started < 20)
      assert.is_nil(res)
      assert.equal("DEADLINE_EXCEEDED", err.status)
      assert.equal("stall", err.kind)
      assert.matches("stall_timeout = 1 s", err.message, 1, true)
      t.client:close()
    end)

    it("stall_timeout lets a slow but steady reply through", function()
      local t = emu:traced { retry = false, timeout = 60, stall_timeout = 1 }
      emu:fault { match = { method = "getModel" }, action = "drip", dripBytes = 64, dripIntervalMs = 10 }
      local model, err = t.client:get_model("text-bison-001")
      assert.is_nil(err)
      assert.equal("models/text-bison-001", model.name)
      t.client:close()
    end)
  end)

  describe("max_response_bytes", function()
    it("allows a reply of exactly the limit and refuses one byte more, without retrying", function()
      local probe = emu:traced { retry = false }
      assert(probe.client:get_model("text-bison-001"))
      local n = #probe.responses[1].body
      probe.client:close()
      assert.is_true(n > 100)

      local ok = emu:traced { retry = FAST, max_response_bytes = n }
      assert(ok.client:get_model("text-bison-001"))
      ok.client:close()

      emu:control("DELETE", "/emulator/v1/requests")
      local small = emu:traced { retry = FAST, max_response_bytes = n - 1 }
      local res, err = small.client:get_model("text-bison-001")
      assert.is_nil(res)
      assert.equal("RESOURCE_EXHAUSTED", err.status)
      assert.equal("too_large", err.kind)
      assert.matches("max_response_bytes = " .. (n - 1), err.message, 1, true)
      assert.equal(0, #small.retries)
      assert.equal(1, #emu:requests())
      small.client:close()
    end)

    for _, with_length in ipairs({ true, false }) do
      local label = with_length and "with Content-Length" or "without Content-Length (close-delimited)"
      it("aborts a 200 MB reply " .. label .. " early with memory bounded", function()
        local srv = rogue.start { size = 200 * 1024 * 1024, content_length = with_length,
                                  headers = { "Content-Type: application/json" } }
        local t = emu:traced { base_url = srv.url, retry = FAST, max_response_bytes = 1024 * 1024 }
        collectgarbage("collect")
        local heap0, rss0 = collectgarbage("count"), rss_kb()
        local res, err = t.client:get_model("text-bison-001")
        local heap1, rss1 = collectgarbage("count"), rss_kb()
        assert.is_nil(res)
        assert.equal("RESOURCE_EXHAUSTED", err.status)
        assert.equal("too_large", err.kind)
        assert.matches("max_response_bytes = 1048576", err.message, 1, true)
        assert.equal(0, #t.retries)
        -- the Lua heap never held the reply, and the process did not grow by anything like 200 MB
        assert.is_true(heap1 - heap0 < 2048, "Lua heap grew by " .. (heap1 - heap0) .. " KiB")
        if rss0 and rss1 then assert.is_true(rss1 - rss0 < 32 * 1024, "RSS grew by " .. (rss1 - rss0) .. " KiB") end
        -- and the server could not push much before the client hung up
        local log = srv:wait_log(1)
        assert.equal(1, #log)
        assert.is_true(log[1].sent < 32 * 1024 * 1024, "server sent " .. tostring(log[1].sent) .. " bytes")
        assert.are_not.equal("complete", log[1].ended)
        t.client:close()
        srv:stop()
      end)
    end

    it("counts decompressed bytes: a gzip bomb is refused", function()
      local bomb = os.tmpname()
      assert(os.execute("head -c 67108864 /dev/zero | gzip -c > '" .. bomb .. "'"))
      local srv = rogue.start { body_file = bomb, headers = { "Content-Type: application/json",
                                                              "Content-Encoding: gzip" } }
      local t = emu:traced { base_url = srv.url, retry = false, max_response_bytes = 1024 * 1024 }
      collectgarbage("collect")
      local heap0 = collectgarbage("count")
      local res, err = t.client:get_model("text-bison-001")
      assert.is_nil(res)
      assert.equal("RESOURCE_EXHAUSTED", err.status)
      assert.equal("too_large", err.kind)
      assert.is_true(collectgarbage("count") - heap0 < 2048)
      t.client:close()
      srv:stop()
      os.remove(bomb)
    end)

    it("refuses headers that never end (header flood) without unbounded memory", function()
      local many = {}
      for i = 1, 40000 do many[i] = "X-Filler-" .. i .. ": " .. string.rep("h", 40) end
      local srv = rogue.start { headers = many, body = "{}" }
      local t = emu:traced { base_url = srv.url, retry = false }
      local res, err = t.client:list_models()
      assert.is_nil(res)
      assert.is_table(err)
      assert.is_string(err.status)
      t.client:close()
      srv:stop()
    end)
  end)

  describe("redirects", function()
    for _, code in ipairs({ 301, 302, 303, 307, 308 }) do
      it("are not followed (" .. code .. "): the other server never receives the key", function()
        local target = rogue.start { body = '{"name":"models/evil"}', headers = { "Content-Type: application/json" } }
        local redirector = rogue.start { status = code, body = "",
                                         headers = { "Location: " .. target.url .. "/v1beta3/models/evil" } }
        local t = emu:traced { base_url = redirector.url, retry = FAST }
        local res, err = t.client:get_model("text-bison-001")
        assert.is_nil(res)
        assert.equal(code, err.code)
        assert.matches("HTTP " .. code, err.message, 1, true)
        assert.equal(0, #t.retries)
        local r2, e2 = t.client:generate_text("text-bison-001", { prompt = { text = "x" } })
        assert.is_nil(r2)
        assert.equal(code, e2.code)
        assert.equal(2, #redirector:wait_log(2))
        assert.equal(0, #target:log())
        assert.equal(0, #target:wait_log(1, 0.3))
        t.client:close()
        target:stop()
        redirector:stop()
      end)
    end
  end)

  describe("every emulator fault", function()
    local CALLS = {
      { "get_model", function(c) return c:get_model("text-bison-001") end, "getModel" },
      { "list_models", function(c) return c:list_models { pageSize = 2 } end, "listModels" },
      { "generate_text", function(c) return c:generate_text("text-bison-001", { prompt = { text = "hi" } }) end,
        "generateText" },
      { "generate_message", function(c)
          return c:generate_message("chat-bison-001", { prompt = { messages = { { content = "hi" } } } })
        end, "generateMessage" },
      { "count_text_tokens", function(c)
          return c:count_text_tokens("text-bison-001", { prompt = { text = "a b" } })
        end, "countTextTokens" },
      { "embed_text", function(c) return c:embed_text("embedding-gecko-001", { text = "x" }) end, "embedText" },
      { "batch_embed_text", function(c) return c:batch_embed_text("embedding-gecko-001", { texts = { "a", "b" } }) end,
        "batchEmbedText" },
      { "list_tuned_models", function(c) return c:list_tuned_models() end, "listTunedModels" },
      { "models iterator", function(c)
          local ok, e = pcall(function() for _ in c:models { pageSize = 1 } do end end)
          if ok then return true end
          return nil, e
        end, "listModels" },
    }
    -- fault -> what a client without retries sees
    local FAULTS = {
      { "error 503", { action = "error", status = 503 }, { status = "UNAVAILABLE", code = 503 } },
      { "error 500", { action = "error", status = 500 }, { status = "INTERNAL", code = 500 } },
      { "html", { action = "html" }, { status = "UNAVAILABLE", code = 502, msg = "HTML page" } },
      { "truncate", { action = "truncate" }, { status = "UNAVAILABLE" } },
      { "truncate at 0 bytes", { action = "truncate", bytes = 0 }, { status = "UNAVAILABLE" } },
      { "reset", { action = "reset" }, { status = "UNAVAILABLE", code = false } },
      { "reset mid-body", { action = "reset", bytes = 1 }, { status = "UNAVAILABLE" } },
      { "invalid_json", { action = "invalid_json" }, { status = "UNKNOWN", code = 200, msg = "not valid JSON",
        no_retry = true } },
      { "drip", { action = "drip", dripBytes = 32, dripIntervalMs = 1 }, { ok = true } },
      { "delay", { action = "delay", delayMs = 50 }, { ok = true } },
    }

    for _, f in ipairs(FAULTS) do
      it(f[1] .. ": a clear error of the right status without retries, never a raise", function()
        for _, call in ipairs(CALLS) do
          -- a new client (connection) per call: on a reused connection that dies before any reply byte,
          -- libcurl itself resends an idempotent request, which would hide the fault
          local t = emu:traced { retry = false, timeout = 10 }
          emu:control("DELETE", "/emulator/v1/faults")
          local rule = { match = { method = call[3] } }
          for k, v in pairs(f[2]) do rule[k] = v end
          emu:fault(rule)
          local ok, res, err = pcall(call[2], t.client)
          assert.is_true(ok, call[1] .. " raised: " .. tostring(res))
          local want = f[3]
          if want.ok then
            assert.is_nil(err, call[1] .. ": " .. tostring(err))
            assert.is_truthy(res)
          else
            assert.is_nil(res, call[1])
            assert.is_true(gemini.is_error(err), call[1])
            assert.equal(want.status, err.status, call[1] .. ": " .. tostring(err))
            if want.code == false then assert.is_nil(err.code, call[1])
            elseif want.code then assert.equal(want.code, err.code, call[1]) end
            if want.msg then assert.matches(want.msg, err.message, 1, true) end
            assert.is_true(#tostring(err) < 400, call[1] .. ": error line too long")
            assert.is_nil(tostring(err):find("\n"))
            assert.is_nil(tostring(err):find(KEY, 1, true))
          end
          -- the client stays usable
          emu:control("DELETE", "/emulator/v1/faults")
          assert(t.client:get_model("text-bison-001"))
          t.client:close()
        end
      end)

      it(f[1] .. ": " .. ((f[3].ok and "succeeds") or (f[3].no_retry and "is not retried")
          or "a successful retry"), function()
        for _, call in ipairs(CALLS) do
          local t = emu:traced { retry = FAST, timeout = 10 }
          emu:control("DELETE", "/emulator/v1/faults")
          local rule = { match = { method = call[3] } }
          for k, v in pairs(f[2]) do rule[k] = v end
          emu:fault(rule)
          local before = #t.retries
          local ok, res, err = pcall(call[2], t.client)
          assert.is_true(ok, call[1] .. " raised: " .. tostring(res))
          if f[3].no_retry then
            assert.is_nil(res)
            assert.equal(f[3].status, err.status)
            assert.equal(before, #t.retries)
          else
            assert.is_nil(err, call[1] .. ": " .. tostring(err))
            assert.is_truthy(res)
            assert.equal(f[3].ok and before or before + 1, #t.retries, call[1])
          end
          t.client:close()
        end
      end)
    end
  end)

  describe("malformed HTTP from a server", function()
    local RAW = {
      { "not HTTP at all", "SSH-2.0-OpenSSH_9.2\r\n" },
      { "a bad status line", "HTTP/1.1 abc Nope\r\nContent-Length: 2\r\n\r\n{}" },
      { "a status out of range", "HTTP/1.1 9999 Huh\r\nContent-Length: 2\r\n\r\n{}" },
      { "headers cut short", "HTTP/1.1 200 OK\r\nContent-Type: appl" },
      { "a bad chunk size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n" },
      { "a negative Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n{}" },
      { "a header line without a colon", "HTTP/1.1 200 OK\r\nthis is not a header\r\nContent-Length: 2\r\n\r\n{}" },
      { "nothing", "" },
      { "binary noise", "\0\1\2\255\254HTTP/1.1 200\r\n\r\n" },
    }
    for _, r in ipairs(RAW) do
      it(r[1] .. ": an error object (or a result), never a raise or a hang", function()
        local srv = rogue.start { raw = r[2] }
        local t = emu:traced { base_url = srv.url, retry = FAST, timeout = 10 }
        local started = socket.gettime()
        local ok, res, err = pcall(t.client.get_model, t.client, "text-bison-001")
        assert.is_true(socket.gettime() - started < 30)
        assert.is_true(ok, tostring(res))
        if res == nil then
          assert.is_true(gemini.is_error(err))
          assert.is_string(err.status)
          assert.is_nil(tostring(err):find("\n"))
        end
        t.client:close()
        srv:stop()
      end)
    end
  end)

  describe("the callback form", function()
    it("gets the same error objects for faults, and retries the same way", function()
      local t = emu:traced { retry = false, timeout = 10 }
      local cases = {
        { { action = "html" }, "UNAVAILABLE", 502 },
        { { action = "invalid_json" }, "UNKNOWN", 200 },
        { { action = "reset" }, "UNAVAILABLE", nil },
        { { action = "truncate" }, "UNAVAILABLE", nil },
        { { action = "error", status = 429 }, "RESOURCE_EXHAUSTED", 429 },
      }
      for _, case in ipairs(cases) do
        emu:control("DELETE", "/emulator/v1/faults")
        local rule = { match = { method = "getModel" } }
        for k, v in pairs(case[1]) do rule[k] = v end
        emu:fault(rule)
        local c = gemini.new { api_key = KEY, base_url = emu.url, retry = false }
        local got, gerr, calls = nil, nil, 0
        c:get_model("text-bison-001", function(m, e) got, gerr, calls = m, e, calls + 1 end)
        c:run()
        assert.equal(1, calls)
        assert.is_nil(got)
        assert.equal(case[2], gerr.status, case[1].action)
        if case[3] then assert.equal(case[3], gerr.code) end
        c:close()
      end
      t.client:close()
    end)
  end)

  describe("200 replies with unexpected shapes", function()
    local MISFITS = {
      { '{"models":"nope"}', "list_models", "models" },
      { '{"models":[1]}', "list_models", "models[0]" },
      { '{"nextPageToken":5}', "list_models", "nextPageToken" },
      { '{"candidates":{"output":"x"}}', "generate_text", "candidates" },
      { '{"candidates":[{"output":{"a":1}}]}', "generate_text", "candidates[0].output" },
      { '{"tokenCount":"abc"}', "count_text_tokens", "tokenCount" },
      { '{"tokenCount":1.5}', "count_text_tokens", "tokenCount" },
      { '{"embedding":{"value":"x"}}', "embed_text", "embedding.value" },
      { '{"embedding":{"value":[0.1,"y"]}}', "embed_text", "embedding.value[1]" },
    }
    local ARGS = {
      list_models = {}, generate_text = { "x", { prompt = { text = "y" } } },
      count_text_tokens = { "x", { prompt = { text = "y" } } }, embed_text = { "x", { text = "y" } },
    }
    local unpack = table.unpack or unpack  -- luacheck: ignore 143

    for _, m in ipairs(MISFITS) do
      it("a field of the wrong type is an error naming it: " .. m[1], function()
        local srv = rogue.start { body = m[1], headers = { "Content-Type: application/json" } }
        local t = emu:traced { base_url = srv.url, retry = FAST }
        local ok, res, err = pcall(t.client[m[2]], t.client, unpack(ARGS[m[2]]))
        assert.is_true(ok, tostring(res))
        assert.is_nil(res)
        assert.equal(200, err.code)
        assert.equal("UNKNOWN", err.status)
        assert.matches("field '" .. m[3] .. "'", err.message, 1, true)
        assert.equal(0, #t.retries)
        t.client:close()
        srv:stop()
      end)
    end

    it("a fitting reply with unknown fields and int64-style integer strings is accepted", function()
      local srv = rogue.start { body = '{"tokenCount":"12","futureField":{"x":[1,"a"]}}',
                                headers = { "Content-Type: application/json" } }
      local t = emu:traced { base_url = srv.url, retry = false }
      local res, err = t.client:count_text_tokens("x", { prompt = { text = "y" } })
      assert.is_nil(err)
      assert.equal(12, res.tokenCount)
      if math.type then assert.equal("integer", math.type(res.tokenCount)) end
      t.client:close()
      srv:stop()
    end)

    local SHAPES = {
      { '[{"name":"models/x"}]', "array" }, { '"models/x"', "string" }, { "42", "number" },
      { "null", "null" }, { "true", "boolean" }, { "", "empty" }, { '{"name": "models/x"', "cut" },
    }
    for _, s in ipairs(SHAPES) do
      it("a JSON " .. s[2] .. " where an object belongs is a clear error, never a raise", function()
        local srv = rogue.start { body = s[1], headers = { "Content-Type: application/json" } }
        local t = emu:traced { base_url = srv.url, retry = FAST }
        for _, call in ipairs({
          function(c) return c:get_model("x") end,
          function(c) return c:list_models() end,
          function(c) return c:generate_text("x", { prompt = { text = "y" } }) end,
          function(c) return c:embed_text("x", { text = "y" }) end,
          function(c) return c:get_operation("tunedModels/t/operations/o") end,
        }) do
          local ok, res, err = pcall(call, t.client)
          assert.is_true(ok, tostring(res))
          assert.is_nil(res, s[2] .. " accepted as a result")
          assert.equal(200, err.code)
          assert.equal("UNKNOWN", err.status)
          assert.is_nil(tostring(err):find("\n"))
        end
        assert.equal(0, #t.retries)
        local ok, e = pcall(function() for _ in t.client:models() do end end)
        assert.is_false(ok)
        assert.is_true(gemini.is_error(e))
        t.client:close()
        srv:stop()
      end)
    end
  end)
end)
