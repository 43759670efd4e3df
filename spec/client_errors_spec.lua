-- Every error path: API errors, keys, faults injected by the emulator, transport failures, misuse,
-- and redaction of secrets.
local emulator = require("spec.helpers.emulator")
local gemini = require("gemini")

describe("client errors", function()
  local KEY = "k1-secret-4f9a"
  local emu = emulator.with_emulator { "--api-key", KEY .. "=alice@example.com" }
  local client
  setup(function() client = emu:client { retry = false } end)

  describe("from the API", function()
    it("a bad key gives INVALID_ARGUMENT with reason API_KEY_INVALID, key never shown", function()
      local bad = gemini.new { api_key = "wrong-key-77", base_url = emu.url, retry = false }
      local res, err = bad:get_model("text-bison-001")
      assert.is_nil(res)
      assert.equal(400, err.code)
      assert.equal("INVALID_ARGUMENT", err.status)
      assert.equal("API_KEY_INVALID", err.reason)
      assert.equal("API key not valid. Please pass a valid API key.", err.message)
      assert.is_table(err.details)
      assert.equal("GET", err.method)
      assert.equal("/v1beta3/models/text-bison-001", err.path)
      assert.is_nil(tostring(err):find("wrong-key-77", 1, true))
      assert.is_nil(tostring(bad):find("wrong-key-77", 1, true))
      local req = emu:requests()[1]
      assert.equal("wrong-key-77", req.headers["x-goog-api-key"])
      assert.is_nil(req.query:find("key", 1, true))
      bad:close()
    end)

    it("no key gives PERMISSION_DENIED", function()
      local anon = gemini.new { api_key = false, base_url = emu.url, retry = false }
      local _, err = anon:list_models()
      assert.equal(403, err.code)
      assert.equal("PERMISSION_DENIED", err.status)
      assert.is_nil(emu:requests()[1].headers["x-goog-api-key"])
      anon:close()
    end)

    it("an access token goes in Authorization and is never shown", function()
      local oauth = gemini.new { api_key = false, access_token = "tok-XYZ-1", user_project = "proj-1",
                                 base_url = emu.url, retry = false }
      local _, err = oauth:list_models()
      local req = emu:requests()[1]
      assert.equal("Bearer tok-XYZ-1", req.headers["authorization"])
      assert.equal("proj-1", req.headers["x-goog-user-project"])
      assert.equal("UNAUTHENTICATED", err.status)
      assert.is_nil(tostring(err):find("tok-XYZ-1", 1, true))
      assert.is_nil(tostring(oauth):find("tok-XYZ-1", 1, true))
      oauth:close()
    end)

    it("not found gives NOT_FOUND with the method and path", function()
      local _, err = client:generate_text("models/nope", { prompt = { text = "x" } })
      assert.equal(404, err.code)
      assert.equal("NOT_FOUND", err.status)
      assert.equal("POST", err.method)
      assert.equal("/v1beta3/models/nope:generateText", err.path)
      assert.matches("models/nope", err.message, 1, true)
      local line = tostring(err)
      assert.matches("^gemini: NOT_FOUND %(404%): ", line)
      assert.is_nil(line:find("\n"))
    end)

    it("an injected error carries status, message, details and reason", function()
      emu:fault { match = { method = "generateText" }, action = "error", status = 503, errorStatus = "UNAVAILABLE",
                  message = "The service is currently unavailable.",
                  details = { { ["@type"] = "type.googleapis.com/google.rpc.ErrorInfo", reason = "BACKEND_DOWN",
                                domain = "googleapis.com" } } }
      local _, err = client:generate_text("text-bison-001", { prompt = { text = "x" } })
      assert.equal(503, err.code)
      assert.equal("UNAVAILABLE", err.status)
      assert.equal("The service is currently unavailable.", err.message)
      assert.equal("BACKEND_DOWN", err.reason)
      assert.equal("googleapis.com", err.details[1].domain)
    end)

    it("429 carries retry_after", function()
      emu:fault { match = { method = "listModels" }, action = "error", status = 429, errorStatus = "RESOURCE_EXHAUSTED",
                  message = "Quota exceeded", retryAfter = 2 }
      local _, err = client:list_models()
      assert.equal(429, err.code)
      assert.equal("RESOURCE_EXHAUSTED", err.status)
      assert.equal(2, err.retry_after)
    end)

    it("the rate limit gives 429 with a retry delay", function()
      emu:control("POST", "/emulator/v1/ratelimit", { requests = 1, windowMs = 60000 })
      assert(client:list_models())
      local _, err = client:list_models()
      assert.equal(429, err.code)
      assert.equal("RESOURCE_EXHAUSTED", err.status)
      assert.is_number(err.retry_after)
      assert.is_true(err.retry_after > 0)
    end)
  end)

  describe("from a broken reply", function()
    it("an HTML page from a proxy gives the HTTP status and an excerpt", function()
      emu:fault { match = { method = "getModel" }, action = "html", status = 502 }
      local res, err = client:get_model("text-bison-001")
      assert.is_nil(res)
      assert.equal(502, err.code)
      assert.equal("UNAVAILABLE", err.status)
      assert.matches("HTTP 502 with an HTML page: <!DOCTYPE html>", err.message, 1, true)
      assert.is_true(#err.message < 200)
    end)

    it("invalid JSON in a 200 reply is an error, not a crash", function()
      emu:fault { match = { method = "generateText" }, action = "invalid_json" }
      local res, err = client:generate_text("text-bison-001", { prompt = { text = "x" } })
      assert.is_nil(res)
      assert.equal(200, err.code)
      assert.equal("UNKNOWN", err.status)
      assert.matches("not valid JSON", err.message, 1, true)
      assert.matches('"output": "The answer is', err.message, 1, true)
    end)

    it("a truncated body is UNAVAILABLE with the HTTP status", function()
      emu:fault { match = { method = "getModel" }, action = "truncate" }
      local res, err = client:get_model("text-bison-001")
      assert.is_nil(res)
      assert.equal("UNAVAILABLE", err.status)
      assert.equal(200, err.code)
      assert.equal("recv", err.kind)
      assert.matches("HTTP 200 reply cut short", err.message, 1, true)
    end)

    it("a connection reset is UNAVAILABLE without an HTTP code", function()
      -- a new client (connection): on the shared client's kept-alive one (after another test), libcurl
      -- itself resends an idempotent request whose reused connection dies before any reply byte, and
      -- the second try met no fault (--shuffle --seed=1)
      local c = emu:client { retry = false }
      emu:fault { match = { method = "getModel" }, action = "reset" }
      local res, err = c:get_model("text-bison-001")
      assert.is_nil(res)
      assert.is_nil(err.code)
      assert.equal("UNAVAILABLE", err.status)
      -- the client stays usable
      assert(c:get_model("text-bison-001"))
      c:close()
    end)

    it("a slow reply hits the timeout: DEADLINE_EXCEEDED naming the limit", function()
      local c = emu:client { retry = false, timeout = 0.3 }
      emu:fault { match = { method = "getModel" }, action = "delay", delayMs = 3000 }
      local res, err = c:get_model("text-bison-001")
      assert.is_nil(res)
      assert.equal("DEADLINE_EXCEEDED", err.status)
      assert.equal("timeout", err.kind)
      assert.matches("timeout = 0.3 s", err.message, 1, true)
      c:close()
    end)

    it("a stalled reply hits stall_timeout", function()
      local c = emu:client { retry = false, stall_timeout = 1 }
      emu:fault { match = { method = "getModel" }, action = "drip", dripBytes = 1, dripIntervalMs = 3000 }
      local res, err = c:get_model("text-bison-001")
      assert.is_nil(res)
      assert.equal("DEADLINE_EXCEEDED", err.status)
      assert.equal("stall", err.kind)
      assert.matches("stall_timeout = 1 s", err.message, 1, true)
      c:close()
    end)

    it("a total deadline bounds the attempt: DEADLINE_EXCEEDED naming the deadline", function()
      local c = emu:client { retry = false, deadline = 0.3 }
      emu:fault { match = { method = "getModel" }, action = "delay", delayMs = 3000 }
      local res, err = c:get_model("text-bison-001")
      assert.is_nil(res)
      assert.equal("DEADLINE_EXCEEDED", err.status)
      assert.equal("deadline", err.kind)
      assert.matches("deadline = 0.3 s", err.message, 1, true)
      c:close()
    end)

    it("a refused connection is UNAVAILABLE", function()
      local c = gemini.new { api_key = KEY, base_url = "http://127.0.0.1:1", retry = false }
      local res, err = c:list_models()
      assert.is_nil(res)
      assert.is_nil(err.code)
      assert.equal("UNAVAILABLE", err.status)
      assert.equal("connect", err.kind)
      c:close()
    end)

    it("iterators raise the error object", function()
      emu:fault { match = { method = "listModels" }, action = "error", status = 500, errorStatus = "INTERNAL",
                  message = "boom" }
      local ok, err = pcall(function() for _ in client:models() do end end)
      assert.is_false(ok)
      assert.is_true(gemini.is_error(err))
      assert.equal("INTERNAL", err.status)
      assert.equal(500, err.code)
    end)
  end)

  describe("retries", function()
    it("retry a 503 and succeed, by default", function()
      local c = emu:client { retry = { initial = 0.01, max_attempts = 3 } }
      emu:fault { match = { method = "getModel" }, action = "error", status = 503, errorStatus = "UNAVAILABLE" }
      assert(c:get_model("text-bison-001"))
      assert.equal(2, #emu:requests())
      c:close()
    end)

    it("retry a reply cut short for a call without side effects", function()
      local c = emu:client { retry = { initial = 0.01 } }
      emu:fault { match = { method = "getModel" }, action = "truncate" }
      assert.equal("models/text-bison-001", assert(c:get_model("text-bison-001")).name)
      assert.equal(2, #emu:requests())
      c:close()
    end)

    it("give up after max_attempts with err.attempts", function()
      local c = emu:client { retry = { initial = 0.01, max_attempts = 3 } }
      emu:fault { match = { method = "getModel" }, action = "error", status = 503, times = 0 }
      local _, err = c:get_model("text-bison-001")
      assert.equal(503, err.code)
      assert.equal(3, err.attempts)
      assert.equal(3, #emu:requests())
      c:close()
    end)

    it("report each retry and its delay to on_retry, honouring Retry-After", function()
      local seen = {}
      local c = emu:client { on_retry = function(info) seen[#seen + 1] = info end,
                             retry = { initial = 0.01, max_delay = 0.05, max_attempts = 4 } }
      emu:fault { match = { method = "getModel" }, action = "error", status = 429, errorStatus = "RESOURCE_EXHAUSTED",
                  retryAfter = 1 }
      emu:fault { match = { method = "getModel" }, action = "error", status = 500, errorStatus = "INTERNAL" }
      assert(c:get_model("text-bison-001"))
      assert.equal(2, #seen)
      assert.equal(1, seen[1].attempt)
      assert.equal(429, seen[1].err.code)
      assert.equal(1, seen[1].delay)            -- the server asked for 1 s
      assert.equal(500, seen[2].err.code)
      assert.is_true(seen[2].delay <= 0.02)     -- full jitter under initial * multiplier
      assert.equal(3, #emu:requests())
      c:close()
    end)

    it("stop retrying at the deadline #timing", function()
      local c = emu:client { deadline = 2.5, retry = { initial = 1, multiplier = 1, max_attempts = 50 } }
      -- the server asks for >= 1 s between attempts, so at most 3 fit in 2.5 s (jitter alone could
      -- draw tiny delays and let more through); the third starts at about 2 s, which leaves a loaded machine
      -- 0.5 s for a local reply (an attempt cut short by the deadline would be DEADLINE_EXCEEDED instead)
      emu:fault { match = { method = "getModel" }, action = "error", status = 503, times = 0,
                  details = { { ["@type"] = "type.googleapis.com/google.rpc.RetryInfo", retryDelay = "1s" } } }
      local _, err = c:get_model("text-bison-001")
      assert.equal(503, err.code, err and tostring(err))
      local n = #emu:requests()
      assert.is_true(n >= 2, n .. " attempts")   -- it did retry ...
      assert.is_true(n < 5, n .. " attempts")    -- ... and stopped at the deadline, far below max_attempts
      c:close()
    end)

    it("honour a per-call retry = false", function()
      local c = emu:client { retry = { initial = 0.01 } }
      emu:fault { match = { method = "getModel" }, action = "error", status = 503 }
      local _, err = c:get_model("text-bison-001", { retry = false })
      assert.equal(503, err.code)
      assert.equal(1, #emu:requests())
      c:close()
    end)

    it("do not retry a create_permission on 503 (side effects)", function()
      local c = emu:client { retry = { initial = 0.01, max_attempts = 3 } }
      emu:fault { match = { method = "createPermission" }, action = "error", status = 503, times = 0 }
      local _, err = c:create_permission("corpora/c", { granteeType = "EVERYONE", role = "READER" })
      assert.equal(503, err.code)
      assert.equal(1, #emu:requests())
      c:close()
    end)
  end)

  describe("secrets", function()
    it("are redacted from messages and details the server echoes", function()
      emu:fault { match = { method = "getModel" }, action = "error", status = 400, errorStatus = "INVALID_ARGUMENT",
                  message = "Invalid API key: " .. KEY,
                  details = { { ["@type"] = "type.googleapis.com/google.rpc.DebugInfo", detail = "key=" .. KEY } } }
      local _, err = client:get_model("text-bison-001")
      assert.equal("Invalid API key: [REDACTED]", err.message)
      assert.is_nil(err.details[1].detail:find(KEY, 1, true))
      assert.is_nil(tostring(err):find(KEY, 1, true))
    end)

    it("never appear in tostring(client)", function()
      local s = tostring(client)
      assert.is_nil(s:find(KEY, 1, true))
      assert.matches("gemini.client", s, 1, true)
      assert.matches(emu.url, s, 1, true)
    end)

    it("are redacted in the debug hooks", function()
      local seen
      local c = emu:client { retry = false, on_request = function(info) seen = info end }
      assert(c:get_model("text-bison-001"))
      for _, h in ipairs(seen.headers) do assert.is_nil(h:find(KEY, 1, true)) end
      assert.is_nil(seen.url:find(KEY, 1, true))
      c:close()
    end)
  end)

  describe("misuse raises at once with the argument position", function()
    local function raises(pattern, f, ...)
      local ok, err = pcall(f, ...)
      assert.is_false(ok)
      assert.matches(pattern, err, 1, true)
    end

    it("for wrong types and missing arguments", function()
      raises("bad argument #1 to 'get_model' (expected a resource name (string), got nil)", client.get_model, client)
      raises("bad argument #2 to 'generate_text' (table expected (GenerateTextRequest), got nil)",
        client.generate_text, client, "text-bison-001")
      raises("bad argument #1 to 'list_models' (table expected, got string)", client.list_models, client, "x")
      raises("bad argument #3 to 'update_tuned_model' (query parameter 'updateMask' must be a string or a list",
        client.update_tuned_model, client, "t", { description = "x" }, { updateMask = 5 })
      raises("bad argument #2 to 'create_tuned_model' (unknown query parameter 'tunedModelID'; " ..
        "did you mean 'tunedModelId'?", client.create_tuned_model, client, {}, { tunedModelID = "x" })
      raises("bad argument #2 to 'get_model' (unexpected argument", client.get_model, client, "a", "b")
      raises("bad argument #2 to 'update_permission' (nothing to update", client.update_permission, client,
        "corpora/c/permissions/p", {})
      assert.equal(0, #emu:requests())
    end)

    it("for bad names", function()
      raises("bad argument #1 to 'get_model' (invalid name \"models/a/../b\": contains '..')",
        client.get_model, client, "models/a/../b")
      raises("bad argument #1 to 'get_tuned_model' (invalid name \"x?y\": contains '?' (would add a query))",
        client.get_tuned_model, client, "x?y")
      raises("bad argument #1 to 'create_permission' (invalid name \"shared\": expected tunedModels/{id} or " ..
        "corpora/{id})", client.create_permission, client, "shared", {})
      raises("bad argument #1 to 'generate_message' (invalid name \"tunedModels/x\": expected models/{id})",
        client.generate_message, client, "tunedModels/x", { prompt = { messages = {} } })
      assert.equal(0, #emu:requests())
    end)

    it("for bad options of gemini.new", function()
      raises("bad argument #1 to 'new' (unknown option 'timout'; did you mean 'timeout'?)", gemini.new,
        { timout = 1 })
      raises("bad argument #1 to 'new' (option 'timeout' must be number, got string)", gemini.new,
        { timeout = "1" })
      raises("base_url must be an http(s) URL", gemini.new, { base_url = "ftp://x" })
      raises("option 'api_key' contains a control character", gemini.new, { api_key = "k\r\nX-Evil: 1" })
      raises("option 'headers' has a line break", gemini.new, { headers = { ["x-a"] = "1\r\nX-Evil: 1" } })
    end)

    it("for a closed client", function()
      local c = gemini.new { api_key = KEY, base_url = emu.url }
      c:close()
      c:close()
      raises("client is closed", c.list_models, c)
      assert.matches("closed", tostring(c), 1, true)
    end)
  end)
end)
