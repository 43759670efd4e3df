-- Pure unit tests of gemini.errors and gemini.retry.
local errors = require("gemini.errors")
local retry = require("gemini.retry")
local cjson = require("cjson").new()

local REQ = { method = "POST", path = "/v1beta3/models/x:generateText", rpc = "generateText" }

describe("gemini.errors", function()
  it("builds from a Google error body with ErrorInfo and RetryInfo", function()
    local body = cjson.encode({ error = { code = 429, message = "Quota exceeded", status = "RESOURCE_EXHAUSTED",
      details = { { ["@type"] = "type.googleapis.com/google.rpc.ErrorInfo", reason = "RATE_LIMIT_EXCEEDED" },
                  { ["@type"] = "type.googleapis.com/google.rpc.RetryInfo", retryDelay = "53s" } } } })
    local e = errors.from_response({ status = 429, headers = {}, body = body }, REQ, cjson.decode(body))
    assert.is_true(errors.is(e))
    assert.equal(429, e.code)
    assert.equal("RESOURCE_EXHAUSTED", e.status)
    assert.equal("Quota exceeded", e.message)
    assert.equal("RATE_LIMIT_EXCEEDED", e.reason)
    assert.equal(53, e.retry_after)
    assert.equal("POST", e.method)
    assert.equal("/v1beta3/models/x:generateText", e.path)
    assert.equal(2, #e.details)
    assert.equal("gemini: RESOURCE_EXHAUSTED (429) RATE_LIMIT_EXCEEDED: Quota exceeded " ..
      "[POST /v1beta3/models/x:generateText]", tostring(e))
  end)

  it("takes retry_after from the Retry-After header", function()
    local e = errors.from_response({ status = 503, headers = { ["retry-after"] = "7" }, body = "" }, REQ, nil)
    assert.equal(7, e.retry_after)
    assert.equal("UNAVAILABLE", e.status)
  end)

  it("builds from an HTML page with the status and an excerpt", function()
    local html = "<!DOCTYPE html>\n<html><body><h1>502 Bad Gateway</h1>" .. string.rep("x", 500) .. "</body></html>"
    local e = errors.from_response({ status = 502, headers = { ["content-type"] = "text/html" }, body = html }, REQ)
    assert.equal(502, e.code)
    assert.equal("UNAVAILABLE", e.status)
    assert.matches("HTTP 502 with an HTML page: <!DOCTYPE html> <html><body><h1>502 Bad Gateway", e.message, 1, true)
    assert.is_true(#e.message < 220)
    assert.is_nil(tostring(e):find("\n"))
  end)

  it("builds from a truncated 200 body", function()
    local e = errors.from_response({ status = 200, headers = {}, body = '{"candidates": [{"out' }, REQ, nil, nil,
      "a body that is not valid JSON")
    assert.equal(200, e.code)
    assert.equal("UNKNOWN", e.status)
    assert.matches('HTTP 200 with a body that is not valid JSON: {"candidates": [{"out', e.message, 1, true)
  end)

  it("maps transport failures", function()
    local limits = { timeout = 2, connect_timeout = 1, stall_timeout = 3, max_response_bytes = 100 }
    local req = { method = "GET", path = "/v1beta3/models", limits = limits }
    local t = errors.from_transport({ kind = "timeout", error = "Operation timed out" }, req)
    assert.is_nil(t.code)
    assert.equal("DEADLINE_EXCEEDED", t.status)
    assert.matches("timeout = 2 s", t.message, 1, true)
    assert.matches("connect_timeout = 1 s",
      errors.from_transport({ kind = "connect_timeout" }, req).message, 1, true)
    assert.equal("DEADLINE_EXCEEDED", errors.from_transport({ kind = "stall" }, req).status)
    local big = errors.from_transport({ kind = "too_large" }, req)
    assert.equal("RESOURCE_EXHAUSTED", big.status)
    assert.matches("max_response_bytes = 100", big.message, 1, true)
    for _, k in ipairs({ "connect", "resolve", "recv", "send", "tls", "proxy" }) do
      local e = errors.from_transport({ kind = k, error = k .. " failed" }, req)
      assert.equal("UNAVAILABLE", e.status)
      assert.equal(k, e.kind)
    end
  end)

  it("redacts secrets everywhere", function()
    local body = cjson.encode({ error = { code = 400, message = "API key not valid: SEKRIT-123",
      status = "INVALID_ARGUMENT", details = { { ["@type"] = "type.googleapis.com/google.rpc.DebugInfo",
      detail = "Invalid API key: SEKRIT-123" } } } })
    local e = errors.from_response({ status = 400, headers = {}, body = body }, REQ, cjson.decode(body),
      { "SEKRIT-123" })
    assert.is_nil(tostring(e):find("SEKRIT", 1, true))
    assert.is_nil(e.details[1].detail:find("SEKRIT", 1, true))
    assert.equal("https://h/x?key=[REDACTED]&a=1", errors.redact("https://h/x?key=abc&a=1"))
    assert.equal("Authorization: Bearer [REDACTED]", errors.redact("Authorization: Bearer ya29.abc"))
  end)

  describe("redact", function()
    local KEY = "AIzaSyD-3x4mpl3_K3y-0123456789abcdefghi"   -- 39 characters, like a real key
    assert(#KEY == 39)

    it("replaces a short key only where it stands as a whole token", function()
      assert.equal("bad chunk", errors.redact("bad chunk", { "k" }))
      local e = errors.new({ status = "INVALID_ARGUMENT", message = "bad chunk" }, { "k" })
      assert.equal("bad chunk", e.message)
      assert.equal("keys kk k-1 k.v x=k", errors.redact("keys kk k-1 k.v x=k", { "k" }))
      assert.equal("[REDACTED]", errors.redact("k", { "k" }))
      assert.equal("key [REDACTED], not k1", errors.redact("key k, not k1", { "k" }))
      assert.equal('{"key":"[REDACTED]"}', errors.redact('{"key":"k"}', { "k" }))
      assert.equal("x-goog-api-key: [REDACTED]", errors.redact("x-goog-api-key: k", { "k" }))
    end)

    it("replaces a real-length key inside a URL", function()
      assert.equal("https://h/v1beta3/models?alt=json&key=[REDACTED]&x=1",
        errors.redact("https://h/v1beta3/models?alt=json&key=" .. KEY .. "&x=1", { KEY }))
      assert.equal("GET /v1beta3/models/[REDACTED]:get",
        errors.redact("GET /v1beta3/models/" .. KEY .. ":get", { KEY }))
      assert.equal("https://[REDACTED]@h/x", errors.redact("https://user:" .. KEY .. "@h/x", { KEY }))
    end)

    it("replaces a real-length key inside JSON and headers", function()
      local body = cjson.encode({ error = { message = "API key not valid: " .. KEY, details = { KEY } } })
      local out = errors.redact(body, { KEY })
      assert.is_nil(out:find(KEY, 1, true))
      assert.same({ error = { message = "API key not valid: [REDACTED]", details = { "[REDACTED]" } } },
        cjson.decode(out))
      assert.equal("x-goog-api-key: [REDACTED]", errors.redact("x-goog-api-key: " .. KEY, { KEY }))
      assert.equal("echo=[REDACTED]", errors.redact("echo=" .. KEY, { KEY }))
    end)

    it("replaces a key at the start and at the end of the string, and every occurrence", function()
      assert.equal("[REDACTED] is your key", errors.redact(KEY .. " is your key", { KEY }))
      assert.equal("your key is [REDACTED]", errors.redact("your key is " .. KEY, { KEY }))
      assert.equal("[REDACTED]", errors.redact(KEY, { KEY }))
      assert.equal("[REDACTED],[REDACTED]", errors.redact(KEY .. "," .. KEY, { KEY }))
      assert.equal("a [REDACTED] b", errors.redact("a " .. KEY .. " b", function() return { KEY } end))
    end)

    it("leaves other values alone", function()
      assert.is_nil(errors.redact(nil, { KEY }))
      assert.equal(42, errors.redact(42, { KEY }))
      assert.equal("nothing secret here", errors.redact("nothing secret here", { KEY, "k" }))
      assert.equal("http://h/x?email=a@b.c", errors.redact("http://h/x?email=a@b.c"))
    end)
  end)
end)

describe("gemini.retry", function()
  local function half() return 0.5 end

  it("backs off exponentially with full jitter, capped", function()
    local p = { initial = 1, multiplier = 2, max_delay = 5 }
    assert.equal(0.5, retry.delay(p, 1, nil, half))
    assert.equal(1, retry.delay(p, 2, nil, half))
    assert.equal(2, retry.delay(p, 3, nil, half))
    assert.equal(2.5, retry.delay(p, 10, nil, half))
    assert.equal(0, retry.delay(p, 1, nil, function() return 0 end))
  end)

  it("honours the server's delay", function()
    assert.equal(7, retry.delay({ initial = 1 }, 1, 7, half))
  end)

  it("retries what is worth retrying", function()
    assert.is_true(retry.retryable({ code = 503 }))
    assert.is_true(retry.retryable({ code = 429 }))
    assert.is_false(retry.retryable({ code = 400 }))
    assert.is_false(retry.retryable({ code = 404 }))
    assert.is_true(retry.retryable({ kind = "recv" }))
    assert.is_true(retry.retryable({ kind = "recv", code = 200 }))   -- a reply cut short
    assert.is_false(retry.retryable({ kind = "recv", code = 200 }, true))
    assert.is_false(retry.retryable({ kind = "too_large" }))
    -- side effects: only when surely not sent, or 429
    assert.is_false(retry.retryable({ code = 503 }, true))
    assert.is_false(retry.retryable({ kind = "recv" }, true))
    assert.is_true(retry.retryable({ kind = "connect" }, true))
    assert.is_true(retry.retryable({ code = 429 }, true))
  end)

  it("stops at max_attempts and at the deadline", function()
    local p = { max_attempts = 3, initial = 1 }
    assert.equal(0.5, retry.decide(p, { attempts = 1, row = {} }, { code = 503 }, nil, 0, half))
    assert.is_nil(retry.decide(p, { attempts = 3, row = {} }, { code = 503 }, nil, 0, half))
    assert.is_nil(retry.decide(false, { attempts = 1, row = {} }, { code = 503 }, nil, 0, half))
    assert.is_nil(retry.decide(p, { attempts = 1, row = {}, first_started_at = 0 }, { code = 503, retry_after = 10 },
      5, 1, half))
  end)
end)
