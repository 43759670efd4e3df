-- The per-call fast paths: core:await (one transfer driven to its end, headers as one string), the
-- blocking fast lane of the client (a call alone in flight), and the per-row/per-client caches of
-- prepare (paths, URLs, query lists). Each spec would fail if a fast path took a shortcut it must not.
local emulator = require("spec.helpers.emulator")
local core = require("gemini.core")
local cjson = require("cjson").new()

local KEY = "hp-key"
local GEN = "/v1beta3/models/text-bison-001:generateText"
local BODY = '{"prompt":{"text":"hi"}}'

describe("hot path", function()
  local emu = emulator.with_emulator { "--api-key", KEY .. "=alice@example.com", "--tuning-step-ms", "0" }

  local function spec_for(extra)
    local s = { method = "POST", url = emu.url .. GEN, body = BODY,
                headers = { "x-goog-api-key: " .. KEY, "Content-Type: application/json" } }
    for k, v in pairs(extra or {}) do s[k] = v end
    return s
  end
  local function parse_lines(s)
    local h = {}
    for k, v in s:gmatch("([^:\n]*):([^\n]*)\n") do h[k] = v end
    return h
  end

  describe("core:await", function()
    it("returns the result of that transfer, its headers as lines equal to the completions() table", function()
      local c = core.client {}
      local id = c:start(spec_for())
      local r = c:await(id, 10)
      assert.equal(id, r.id)
      assert.equal(200, r.status)
      assert.is_nil(r.headers)
      assert.equal("string", type(r.header_lines))
      assert.truthy(r.header_lines:find("\n$"))
      local lines = parse_lines(r.header_lines)
      assert.truthy(lines["content-type"]:find("application/json", 1, true))
      assert.equal("table", type(cjson.decode(r.body)))
      assert.equal(0, c:in_flight())
      assert.same({}, c:completions())           -- taken out of the queue
      -- the same exchange through perform/completions: the same headers, as a table
      local id2 = c:start(spec_for())
      local done
      for _ = 1, 1000 do
        c:perform(1)
        done = c:completions()[1]
        if done then break end
      end
      assert.equal(id2, done.id)
      assert.is_nil(done.header_lines)
      local a, b = {}, {}
      for k in pairs(lines) do if k ~= "date" then a[k] = true end end
      for k in pairs(done.headers) do if k ~= "date" then b[k] = true end end
      assert.same(b, a)
      c:close()
    end)

    it("leaves the other results queued for completions(), oldest first", function()
      local c = core.client {}
      local a = c:start(spec_for())
      local b = c:start(spec_for())
      local cc = c:start(spec_for())
      assert(c:await(b, 10))
      -- a and cc may have finished meanwhile; whatever did stays queued, whatever did not is in flight
      local got = {}
      for _ = 1, 1000 do
        for _, r in ipairs(c:completions()) do got[#got + 1] = r.id; assert.is_table(r.headers) end
        if #got == 2 then break end
        c:perform(1)
      end
      table.sort(got)
      assert.same({ a, cc }, got)
      c:close()
    end)

    it("completions(true) gives the headers as lines too; completions() as the table", function()
      local c = core.client {}
      local function one(lines)
        c:start(spec_for())
        for _ = 1, 1000 do
          c:perform(1)
          local r = c:completions(lines)[1]
          if r then return r end
        end
      end
      local r = one(true)
      assert.is_nil(r.headers)
      assert.truthy(parse_lines(r.header_lines)["content-type"]:find("application/json", 1, true))
      r = one()
      assert.is_nil(r.header_lines)
      assert.truthy(r.headers["content-type"]:find("application/json", 1, true))
      c:close()
    end)

    it("returns nil for an unknown id, and when the wait is over first", function()
      local c = core.client {}
      assert.is_nil(c:await(12345, 0.01))
      emu:fault { match = { method = "generateText" }, action = "delay", delayMs = 1500 }
      local id = c:start(spec_for())
      assert.is_nil(c:await(id, 0))
      assert.is_nil(c:await(id, 0.05))
      assert.equal(1, c:in_flight())
      local r = c:await(id, 30)
      assert.equal(200, r.status)
      c:close()
    end)

    it("reports a transport failure like completions()", function()
      local c = core.client {}
      emu:fault { match = { method = "generateText" }, action = "delay", delayMs = 3000 }
      local id = c:start(spec_for { timeout = 0.3 })
      local r = c:await(id, 30)
      assert.equal("timeout", r.kind)
      assert.truthy(r.error:find("timeout (0.3 s)", 1, true))
      c:close()
    end)

    it("does nothing once the socket interface is on (false), and raises on a closed client", function()
      local c = core.client {}
      c:take_events()                       -- event mode
      local id = c:start(spec_for())
      assert.is_false(c:await(id, 1))
      c:close()
      assert.has_error(function() c:await(id, 1) end, "gemini.core: client is closed")
    end)
  end)

  describe("a blocking call", function()
    it("alone in flight gives the result, and every hook sees its attempt", function()
      local seen = {}
      local client = emu:client { retry = false,
        on_request = function(i) seen[#seen + 1] = "request " .. i.attempt end,
        on_response = function(i)
          seen[#seen + 1] = "response " .. i.status .. " " .. tostring(i.headers["content-type"]):match("^[^;]*")
        end }
      local res = assert(client:generate_text("text-bison-001", "hi"))
      assert.is_table(res.candidates)
      assert.same({ "request 1", "response 200 application/json" }, seen)
      client:close()
    end)

    it("while callback requests are in flight: each gets its own result, callbacks run from poll", function()
      local client = emu:client { retry = false }
      emu:fault { match = { method = "countTextTokens" }, action = "delay", delayMs = 300, times = 0 }
      local got = {}
      for i = 1, 3 do
        client:count_text_tokens("text-bison-001", string.rep("w ", i), function(r, err)
          assert.is_nil(err)
          got[#got + 1] = r.tokenCount
        end)
      end
      local res = assert(client:generate_text("text-bison-001", "hi"))
      assert.is_table(res.candidates)
      assert.same({}, got)                  -- never inside the blocking call
      client:run()
      table.sort(got)
      assert.same({ 1, 2, 3 }, got)
      client:close()
    end)

    it("whose transfer times out is retried, every attempt through the hooks, then fails with timeout", function()
      local req, resp, retries = 0, {}, 0
      local client = emu:client { timeout = 0.3,
        retry = { initial = 0.001, max_delay = 0.002, max_attempts = 3 },
        on_request = function() req = req + 1 end,
        on_response = function(i) resp[#resp + 1] = i.kind end,
        on_retry = function() retries = retries + 1 end }
      emu:fault { match = { method = "generateText" }, action = "delay", delayMs = 3000, times = 0 }
      local res, err = client:generate_text("text-bison-001", "hi")
      assert.is_nil(res)
      assert.equal("timeout", err.kind)
      assert.equal(3, err.attempts)
      assert.equal(3, req)
      assert.same({ "timeout", "timeout", "timeout" }, resp)
      assert.equal(2, retries)
      client:close()
    end)

    it("reads the reply's headers for its error (an HTML page, Retry-After)", function()
      local client = emu:client { retry = false }
      emu:fault { match = { method = "generateText" }, action = "html", status = 502 }
      local _, err = client:generate_text("text-bison-001", "hi")
      assert.equal(502, err.code)
      assert.truthy(err.message:find("HTTP 502 with an HTML page", 1, true))
      emu:fault { match = { method = "generateText" }, action = "error", status = 503, retryAfter = 7 }
      _, err = client:generate_text("text-bison-001", "hi")
      assert.equal(503, err.code)
      assert.equal(7, err.retry_after)
      client:close()
    end)

    it("in the callback form reads the reply's headers for its error and its on_response too", function()
      local seen
      local client = emu:client { retry = false,
        on_response = function(i) seen = i.headers["content-type"] end }
      emu:fault { match = { method = "generateText" }, action = "html", status = 502 }
      local got
      client:generate_text("text-bison-001", "hi", function(_, err) got = err end)
      client:run()
      assert.equal(502, got.code)
      assert.truthy(got.message:find("HTTP 502 with an HTML page", 1, true))
      assert.truthy(seen:find("html", 1, true))
      client:close()
    end)

    it("that closes the client from on_response ends CANCELLED, and the client stays closed", function()
      local client
      client = emu:client { retry = false,
        on_response = function() client:close() end }
      local res, err = client:generate_text("text-bison-001", "hi")
      assert.is_nil(res)
      assert.equal("CANCELLED", err.status)
      assert.has_error(function() client:generate_text("text-bison-001", "hi") end, "gemini: client is closed")
    end)

    it("that closes the client from on_request raises, and sends nothing", function()
      local client
      client = emu:client { retry = false,
        on_request = function() client:close() end }
      local ok, e = pcall(client.generate_text, client, "text-bison-001", "hi")
      assert.is_false(ok)
      assert.truthy(tostring(e):find("closed", 1, true))
      assert.equal(0, #emu:requests())
    end)

    it("through an event-loop client falls back to perform/completions", function()
      local client = emu:client { retry = false }
      client._core:take_events()            -- the core now drives its sockets (as for an adapter)
      local res = assert(client:generate_text("text-bison-001", "hi"))
      assert.is_table(res.candidates)
      local _, err = client:get_model("no-such-model")
      assert.equal(404, err.code)
      client:close()
    end)
  end)

  describe("prepare's caches", function()
    it("build the path and query of each call from its own arguments", function()
      local client = emu:client { retry = false }
      assert(client:list_models { pageSize = 2 })
      assert(client:list_models())
      assert.equal(400, select(2, client:list_models { pageSize = 3, pageToken = "x y" }).code)
      assert(client:list_models())
      assert(client:get_model("text-bison-001"))
      assert(client:get_model("models/chat-bison-001"))
      assert(client:count_text_tokens("text-bison-001", "a b"))
      assert(client:count_text_tokens("models/text-bison-001", "a b c"))
      local seen = {}
      for _, r in ipairs(emu:requests()) do
        seen[#seen + 1] = r.method .. " " .. r.path .. ((r.query or "") ~= "" and ("?" .. r.query) or "")
      end
      assert.same({
        "GET /v1beta3/models?pageSize=2",
        "GET /v1beta3/models",
        "GET /v1beta3/models?pageSize=3&pageToken=x%20y",
        "GET /v1beta3/models",
        "GET /v1beta3/models/text-bison-001",
        "GET /v1beta3/models/chat-bison-001",
        "POST /v1beta3/models/text-bison-001:countTextTokens",
        "POST /v1beta3/models/text-bison-001:countTextTokens",
      }, seen)
      client:close()
    end)

    it("keep the records of calls apart (options, queries and callbacks of one call never leak to the next)", function()
      local client = emu:client { retry = false }
      emu:fault { match = { method = "getModel" }, action = "delay", delayMs = 1500, times = 1 }
      local _, err = client:get_model("text-bison-001", { timeout = 0.3 })
      assert.equal("timeout", err.kind)
      assert(client:get_model("text-bison-001"))                 -- no timeout carried over
      local req = client:list_models({ pageSize = 1 }, function() end)
      assert.same({ { "pageSize", "1" } }, req.query)
      local plain = client:get_model("text-bison-001", function() end)
      assert.same({}, plain.query)
      assert.same({}, plain.opts)
      client:run()
      client:close()
    end)
  end)
end)
