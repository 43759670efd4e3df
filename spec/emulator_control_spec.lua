-- The emulator's control API: fault actions as a raw client sees them, times counting down, faults
-- never touching the control API, the rate limit, stats, the journal and reset.
local helper = require "spec.helpers.emulator"
local socket = require "socket"

local KEY = "k1"
local MODEL_PATH = "/v1beta3/models/text-bison-001"
local GEN_PATH = MODEL_PATH .. ":generateText"
local GEN_BODY = '{"prompt":{"text":"Write a haiku about the sea."}}'

local read_head = helper.read_head   -- status, headers

-- Read everything until the server closes (or errors): returns the bytes and how it ended.
local function read_rest(c)
  local parts = {}
  while true do
    local data, err, partial = c:receive(4096)
    if data then
      parts[#parts + 1] = data
    else
      if partial and partial ~= "" then parts[#parts + 1] = partial end
      return table.concat(parts), err
    end
  end
end

local function generate_raw(extra_headers)
  return "POST " .. GEN_PATH .. " HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nx-goog-api-key: " .. KEY
    .. "\r\n" .. (extra_headers or "") .. "Content-Length: " .. #GEN_BODY .. "\r\n\r\n" .. GEN_BODY
end

describe("emulator control API", function()
  local emu = helper.with_emulator{ "--api-key", KEY .. "=alice@example.com" }   -- reset before each test

  local function generate()
    return emu:request{ method = "POST", path = GEN_PATH, headers = { ["x-goog-api-key"] = KEY }, body = GEN_BODY }
  end
  local function get_model()
    return emu:request{ path = MODEL_PATH, headers = { ["x-goog-api-key"] = KEY } }
  end
  local function faults(rules)
    local status, body = emu:control("POST", "/emulator/v1/faults", { rules = rules })
    assert.equal(200, status, helper.encode(body))
    return body
  end
  local function stats()
    local status, body = emu:control("GET", "/emulator/v1/stats")
    assert.equal(200, status)
    return body
  end
  local function wait_in_flight(n)
    local s
    for _ = 1, 300 do
      s = stats()
      if s.inFlight == n then return s end
      socket.sleep(0.01)
    end
    return s
  end

  describe("error faults", function()
    it("answer with the status and Google's error body, counting times down", function()
      local added = faults{ { match = { method = "generateText" }, action = "error", status = 503, times = 2 } }
      assert.equal(1, added.added)
      for _ = 1, 2 do
        local status, headers, body = generate()
        assert.equal(503, status)
        assert.equal("application/json; charset=UTF-8", headers["content-type"])
        assert.same({ error = { code = 503, message = "The service is currently unavailable.",
                                status = "UNAVAILABLE" } }, helper.decode(body))
        assert.is_nil(headers["retry-after"])
      end
      local status, _, body = generate()
      assert.equal(200, status)
      assert.is_table(helper.decode(body).candidates)
      local _, list = emu:control("GET", "/emulator/v1/faults")
      assert.equal(1, #list.rules)
      assert.equal(0, list.rules[1].remaining)
      assert.equal(2, list.rules[1].hits)
    end)

    it("take errorStatus, message, details and retryAfter", function()
      faults{ { match = { path = GEN_PATH }, action = "error", errorStatus = "RESOURCE_EXHAUSTED",
                message = "Quota exceeded.", retryAfter = 3,
                details = { { ["@type"] = "type.googleapis.com/google.rpc.ErrorInfo", reason = "RATE_LIMIT_EXCEEDED",
                              domain = "googleapis.com" } } } }
      local status, headers, body = generate()
      assert.equal(429, status)
      assert.equal("3", headers["retry-after"])
      assert.same({ error = { code = 429, message = "Quota exceeded.", status = "RESOURCE_EXHAUSTED", details = {
        { ["@type"] = "type.googleapis.com/google.rpc.ErrorInfo", reason = "RATE_LIMIT_EXCEEDED",
          domain = "googleapis.com" },
        { ["@type"] = "type.googleapis.com/google.rpc.RetryInfo", retryDelay = "3s" },
      } } }, helper.decode(body))
    end)

    it("apply forever with times 0", function()
      faults{ { match = { method = "getModel" }, action = "error", status = 500, times = 0 } }
      for _ = 1, 4 do
        local status, _, body = get_model()
        assert.equal(500, status)
        assert.equal("INTERNAL", helper.decode(body).error.status)
      end
      local _, list = emu:control("GET", "/emulator/v1/faults")
      assert.equal(helper.decode("null"), list.rules[1].remaining)
      assert.equal(4, list.rules[1].hits)
    end)

    it("match only their method, HTTP method and path; the first with times left wins", function()
      faults{
        { match = { method = "generateText", httpMethod = "GET" }, action = "error", status = 500 },
        { match = { path = "/v1beta3/models/chat-bison-001" }, action = "error", status = 502 },
        { match = { method = "generateText" }, action = "error", status = 503 },
        { match = { method = "generateText" }, action = "error", status = 504 },
      }
      assert.equal(200, (get_model()))
      assert.equal(503, (generate()))
      assert.equal(504, (generate()))
      assert.equal(200, (generate()))
      local chat = { path = "/v1beta3/models/chat-bison-001", headers = { ["x-goog-api-key"] = KEY } }
      assert.equal(502, (emu:request(chat)))
    end)

    it("are listed and cleared", function()
      faults{ { action = "html" } }
      local _, list = emu:control("GET", "/emulator/v1/faults")
      assert.equal(1, #list.rules)
      assert.equal("html", list.rules[1].action)
      assert.equal(1, list.rules[1].times)
      assert.equal(200, (emu:control("DELETE", "/emulator/v1/faults")))
      _, list = emu:control("GET", "/emulator/v1/faults")
      assert.equal(0, #list.rules)
      assert.equal(200, (get_model()))
    end)

    it("reject invalid rules with 400 and install none of them", function()
      local status, body = emu:control("POST", "/emulator/v1/faults",
        { rules = { { action = "error" }, { action = "explode" } } })
      assert.equal(400, status)
      assert.equal("INVALID_ARGUMENT", body.error.status)
      assert.truthy(body.error.message:find("rules[1]", 1, true))
      status = emu:control("POST", "/emulator/v1/faults", { rules = { { action = "error", tiems = 2 } } })
      assert.equal(400, status)
      local _, list = emu:control("GET", "/emulator/v1/faults")
      assert.equal(0, #list.rules)
    end)
  end)

  it("never apply to the control API, nor does the rate limit", function()
    faults{ { action = "error", status = 503, times = 0 }, { action = "reset", times = 0 } }
    assert.equal(200, (emu:control("POST", "/emulator/v1/ratelimit", { requests = 1, windowMs = 60000 })))
    for _ = 1, 3 do
      local s = stats()
      assert.is_number(s.requests)
      local status, list = emu:control("GET", "/emulator/v1/faults")
      assert.equal(200, status)
      assert.equal(2, #list.rules)
      assert.equal(200, (emu:control("GET", "/emulator/v1/requests")))
    end
    assert.equal(503, (get_model()))
  end)

  describe("socket faults", function()
    it("delay delays and then sends the real reply", function()
      faults{ { match = { method = "getModel" }, action = "delay", delayMs = 1500 } }
      local c = emu:connect(10)
      assert(c:send("GET " .. MODEL_PATH .. " HTTP/1.1\r\nHost: x\r\nx-goog-api-key: " .. KEY .. "\r\n\r\n"))
      assert.equal(1, wait_in_flight(1).inFlight)
      local status, headers = read_head(c)
      assert.equal(200, status)
      local body = c:receive(tonumber(headers["content-length"]))
      assert.equal("models/text-bison-001", helper.decode(body).name)
      c:close()
    end)

    it("reset closes the connection without a reply", function()
      faults{ { match = { method = "generateText" }, action = "reset" } }
      local c = emu:connect()
      assert(c:send(generate_raw()))
      local data, how = read_rest(c)
      c:close()
      assert.equal("", data)
      assert.truthy(how == "closed" or how:find("reset"), how)
      local status, _, _, err = generate()
      assert.equal(200, status, err)
      assert.equal(0, stats().inFlight)
    end)

    it("reset with bytes cuts the reply mid-body", function()
      faults{ { match = { method = "generateText" }, action = "reset", bytes = 10 } }
      local c = emu:connect()
      assert(c:send(generate_raw()))
      local status, headers = read_head(c)
      assert.equal(200, status)
      local length = tonumber(headers["content-length"])
      assert.is_true(length > 10)
      local data = read_rest(c)
      c:close()
      assert.equal(10, #data)
    end)

    it("truncate sends the full Content-Length, part of the body, then closes", function()
      faults{ { match = { method = "generateText" }, action = "truncate", bytes = 20 } }
      local c = emu:connect()
      assert(c:send(generate_raw()))
      local status, headers = read_head(c)
      assert.equal(200, status)
      assert.is_true(tonumber(headers["content-length"]) > 20)
      local data, how = read_rest(c)
      c:close()
      assert.equal(20, #data)
      assert.equal("closed", how)
      -- as curl sees it: a partial transfer
      faults{ { match = { method = "generateText" }, action = "truncate" } }
      local st, _, _, err = generate()
      assert.is_nil(st)
      assert.truthy(err:find("curl exit 18", 1, true), err)
    end)

    it("invalid_json answers 200 with a body that is not JSON", function()
      faults{ { match = { method = "generateText" }, action = "invalid_json" } }
      local status, headers, body = generate()
      assert.equal(200, status)
      assert.equal("application/json; charset=UTF-8", headers["content-type"])
      assert.equal(tostring(#body), headers["content-length"])
      assert.is_false((pcall(helper.decode, body)))
    end)

    it("html answers a proxy's 502 HTML page", function()
      faults{ { match = { method = "generateText" }, action = "html" } }
      local status, headers, body = generate()
      assert.equal(502, status)
      assert.equal("text/html; charset=UTF-8", headers["content-type"])
      assert.truthy(body:find("<html", 1, true))
      assert.truthy(body:find("502.", 1, true))
      assert.is_false((pcall(helper.decode, body)))
    end)

    it("drip sends the real reply in small pieces over time", function()
      local _, _, plain = get_model()
      -- about 20 pieces, 50 ms apart: about a second in all
      faults{ { match = { method = "getModel" }, action = "drip", dripBytes = math.ceil(#plain / 20),
                dripIntervalMs = 50 } }
      local c = emu:connect(10)
      assert(c:send("GET " .. MODEL_PATH .. " HTTP/1.1\r\nHost: x\r\nx-goog-api-key: " .. KEY .. "\r\n\r\n"))
      local status, headers = read_head(c)
      assert.equal(200, status)
      assert.equal(tostring(#plain), headers["content-length"])
      assert.is_true(#plain > 40)
      -- the head has arrived but the body is still dripping: the request is in flight
      assert.equal(1, stats().inFlight)
      local body = c:receive(#plain)
      assert.equal(plain, body)
      c:close()
      assert.equal(0, wait_in_flight(0).inFlight)
    end)
  end)

  describe("rate limit", function()
    it("answers 429 RESOURCE_EXHAUSTED with RetryInfo and Retry-After beyond N requests per window", function()
      local status, cfg = emu:control("POST", "/emulator/v1/ratelimit", { requests = 2, windowMs = 60000 })
      assert.equal(200, status)
      assert.same({ requests = 2, windowMs = 60000 }, cfg)
      assert.equal(200, (get_model()))
      assert.equal(200, (generate()))
      local st, headers, body = get_model()
      assert.equal(429, st)
      local retry = tonumber(headers["retry-after"])
      assert.is_true(retry >= 1 and retry <= 60)
      local retry_info = { ["@type"] = "type.googleapis.com/google.rpc.RetryInfo", retryDelay = retry .. "s" }
      assert.same({ error = { code = 429, message = "Resource has been exhausted (e.g. check quota).",
                              status = "RESOURCE_EXHAUSTED", details = { retry_info } } },
        helper.decode(body))
      assert.equal(3, stats().requests)
      -- requests = 0 disables it
      assert.equal(200, (emu:control("POST", "/emulator/v1/ratelimit", { requests = 0 })))
      assert.equal(200, (get_model()))
    end)

    it("opens a new window when the old one has passed", function()
      -- a 2 s window: the second request (a curl process started right after the first) falls in it
      -- even on a loaded machine
      emu:control("POST", "/emulator/v1/ratelimit", { requests = 1, windowMs = 2000 })
      assert.equal(200, (get_model()))
      assert.equal(429, (get_model()))
      socket.sleep(2.1)
      assert.equal(200, (get_model()))
    end)

    it("rejects a bad configuration", function()
      assert.equal(400, (emu:control("POST", "/emulator/v1/ratelimit", { requests = -1 })))
      assert.equal(400, (emu:control("POST", "/emulator/v1/ratelimit", { requests = 1, window = 5 })))
    end)
  end)

  describe("stats", function()
    it("count API requests only and record the most in flight at once", function()
      faults{ { match = { method = "getModel" }, action = "delay", delayMs = 700, times = 0 } }
      local args = { "curl", "-sS", "--parallel", "--parallel-immediate", "--parallel-max", "5", "-o", "/dev/null",
                     "-o", "/dev/null", "-o", "/dev/null", "-o", "/dev/null", "-o", "/dev/null",
                     "-w", "'%{http_code}\\n'", "-H", "'x-goog-api-key: " .. KEY .. "'" }
      for _ = 1, 5 do args[#args + 1] = "'" .. emu.url .. MODEL_PATH .. "'" end
      local p = assert(io.popen(table.concat(args, " ") .. " 2>/dev/null"))
      local out = p:read("*a")
      p:close()
      assert.equal("200\n200\n200\n200\n200\n", out)
      local s = stats()
      assert.equal(5, s.requests)
      assert.equal(0, s.inFlight)
      assert.is_true(s.maxInFlight >= 2, "maxInFlight " .. s.maxInFlight)
      assert.is_true(s.maxInFlight <= 5)
      assert.is_number(s.connections)
      local status, after = emu:control("POST", "/emulator/v1/stats/reset")
      assert.equal(200, status)
      assert.equal(0, after.requests)
      assert.equal(0, after.maxInFlight)
    end)
  end)

  describe("journal", function()
    it("records API requests, newest last, with method, path, query, headers and body", function()
      emu:request{ method = "POST", path = GEN_PATH .. "?alt=json", body = GEN_BODY,
                   headers = { ["x-goog-api-key"] = KEY, ["X-Custom"] = "yes" } }
      emu:request{ path = MODEL_PATH .. "?key=" .. KEY }
      emu:control("GET", "/emulator/v1/stats")
      local status, journal = emu:control("GET", "/emulator/v1/requests")
      assert.equal(200, status)
      assert.equal(2, #journal)
      local first, second = journal[1], journal[2]
      assert.equal("POST", first.method)
      assert.equal(GEN_PATH, first.path)
      assert.equal("alt=json", first.query)
      assert.equal(GEN_BODY, first.body)
      assert.equal(KEY, first.headers["x-goog-api-key"])
      assert.equal("yes", first.headers["x-custom"])
      assert.equal("application/json", first.headers["content-type"])
      assert.equal("generateText", first.rpc)
      assert.equal(200, first.status)
      assert.equal("GET", second.method)
      assert.equal(MODEL_PATH, second.path)
      assert.equal("key=" .. KEY, second.query)
      assert.equal("", second.body)
      assert.equal(200, (emu:control("DELETE", "/emulator/v1/requests")))
      local _, emptied = emu:control("GET", "/emulator/v1/requests")
      assert.equal(0, #emptied)
    end)
  end)

  it("reset clears faults, the rate limit, stats, the journal and the API's state", function()
    local create = helper.encode({ displayName = "reset me", baseModel = "models/text-bison-001",
      tuningTask = { trainingData = { examples = { examples = { { textInput = "a", output = "b" } } } } } })
    local st = emu:request{ method = "POST", path = "/v1beta3/tunedModels?tunedModelId=reset-me",
                            headers = { ["x-goog-api-key"] = KEY }, body = create }
    assert.equal(200, st)
    local tuned = { path = "/v1beta3/tunedModels/reset-me", headers = { ["x-goog-api-key"] = KEY } }
    assert.equal(200, (emu:request(tuned)))
    faults{ { action = "error", times = 0 } }
    emu:control("POST", "/emulator/v1/ratelimit", { requests = 1 })
    assert.equal(503, (get_model()))
    assert.equal(200, (emu:control("POST", "/emulator/v1/reset")))
    local _, list = emu:control("GET", "/emulator/v1/faults")
    assert.equal(0, #list.rules)
    local _, rl = emu:control("GET", "/emulator/v1/ratelimit")
    assert.equal(0, rl.requests)
    local _, journal = emu:control("GET", "/emulator/v1/requests")
    assert.equal(0, #journal)
    local s = stats()
    assert.equal(0, s.requests)
    assert.equal(0, s.maxInFlight)
    assert.equal(200, (get_model()))
    assert.equal(200, (get_model()))
    assert.equal(404, (emu:request(tuned)))
  end)

  it("answers 404 for an unknown control path and 405 for a wrong method", function()
    local status, body = emu:control("GET", "/emulator/v1/nothing")
    assert.equal(404, status)
    assert.equal("NOT_FOUND", body.error.status)
    local st, b, headers = emu:control("GET", "/emulator/v1/reset")
    assert.equal(405, st)
    assert.equal("POST", headers["allow"])
    assert.equal(405, b.error.code)
  end)
end)
