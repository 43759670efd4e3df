-- Retry-After given as an HTTP date (RFC 9110 section 10.2.3): the parser of gemini.errors for the three
-- date forms, the Date header as "now", past dates and garbage; the emulator's `retryAfterDate` fault;
-- and a client that waits as long as the date says before its retry.
local helper = require("spec.helpers.emulator")
local errors = require("gemini.errors")
local retry = require("gemini.retry")
local core = require("gemini.core")
local cjson = require("cjson").new()

local KEY = "ra-5e0f-date-secret"
local REQ = { method = "GET", path = "/v1beta3/models/text-bison-001", rpc = "getModel" }
local T1994 = 784111777                      -- Sun, 06 Nov 1994 08:49:37 GMT (RFC 9110's example)
local NOW2026 = 1795852800                   -- Sat, 28 Nov 2026 08:00:00 GMT

-- IMF-fixdate of epoch seconds, from the C library's gmtime (independent of the parser under test)
local function imf(t) return os.date("!%a, %d %b %Y %H:%M:%S GMT", t) end

describe("Retry-After as an HTTP date", function()
  describe("errors.http_date", function()
    it("reads the three forms of RFC 9110's example", function()
      assert.equal(T1994, errors.http_date("Sun, 06 Nov 1994 08:49:37 GMT"))
      assert.equal(T1994, errors.http_date("Sunday, 06-Nov-94 08:49:37 GMT", NOW2026))
      assert.equal(T1994, errors.http_date("Sun Nov  6 08:49:37 1994"))
      assert.equal(T1994 + 10 * 86400, errors.http_date("Wed Nov 16 08:49:37 1994"))
      assert.equal(0, errors.http_date("Thu, 01 Jan 1970 00:00:00 GMT"))
      assert.equal(1709164800, errors.http_date("Thu, 29 Feb 2024 00:00:00 GMT"))
      assert.equal(253402300799, errors.http_date("Fri, 31 Dec 9999 23:59:59 GMT"))
      -- names in any case, surrounding blanks
      assert.equal(T1994, errors.http_date("  sun, 06 NOV 1994 08:49:37 GMT\t"))
    end)

    it("agrees with gmtime over a wide range of instants", function()
      local t = -86400 * 365
      while t < 4102444800 do                 -- 1969 .. 2100, leap days and month ends included
        assert.equal(t, errors.http_date(imf(t)), imf(t))
        assert.equal(t, errors.http_date(os.date("!%a %b %e %H:%M:%S %Y", t)))
        t = t + 86400 * 13 + 3607
      end
    end)

    it("reads an RFC 850 two-digit year as at most 50 years ahead", function()
      -- now = 2026: 76 is 2076 (50 years ahead), 77 is 1977
      assert.equal(errors.http_date("Sun, 01 Mar 2076 00:00:00 GMT"),
        errors.http_date("Sunday, 01-Mar-76 00:00:00 GMT", NOW2026))
      assert.equal(errors.http_date("Tue, 01 Mar 1977 00:00:00 GMT"),
        errors.http_date("Tuesday, 01-Mar-77 00:00:00 GMT", NOW2026))
      assert.equal(errors.http_date("Thu, 01 Mar 2001 00:00:00 GMT"),
        errors.http_date("Thursday, 01-Mar-01 00:00:00 GMT", NOW2026))
    end)

    it("rejects malformed dates", function()
      for _, s in ipairs({
        "", "soon", "0", "Sun, 06 Nov 1994 08:49:37 PST", "Sun, 06 Nov 1994 08:49:37", "Sun, 6 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 94 08:49:37 GMT", "Sun 06 Nov 1994 08:49:37 GMT", "Xyz, 06 Nov 1994 08:49:37 GMT",
        "Sun, 06 Foo 1994 08:49:37 GMT", "Sun, 31 Nov 1994 08:49:37 GMT", "Sun, 00 Nov 1994 08:49:37 GMT",
        "Wed, 29 Feb 2023 00:00:00 GMT", "Mon, 29 Feb 2100 00:00:00 GMT", "Sun, 06 Nov 1994 24:00:00 GMT",
        "Sun, 06 Nov 1994 08:60:00 GMT", "Sun, 06 Nov 1994 08:49:61 GMT", "Sun, 06 Nov 1994 8:49:37 GMT",
        "Sun, 06-Nov-94 08:49:37 GMT", "Sunday, 06-Nov-1994 08:49:37 GMT", "Sonntag, 06-Nov-94 08:49:37 GMT",
        "Sun Nov 6 08:49:37 1994", "Sun Nov  6 08:49:37 94", "Sun Nov  6 08:49:37 1994 GMT",
        "Sun, 06 Nov 1994 08:49:37 GMT junk", "Sun, 06 Nov 1994\n08:49:37 GMT",
      }) do
        assert.is_nil(errors.http_date(s), s)
      end
      assert.is_nil(errors.http_date(nil))
      assert.is_nil(errors.http_date(784111777))
    end)

    it("does not depend on the local time zone", function()
      -- os.time{...} reads a table as local time: a parser built on it is off by the zone's offset
      for _, tz in ipairs({ "XST-14", "YST+9:30", "America/St_Johns", "Asia/Kolkata" }) do
        local code = [[
          local errors = require "gemini.errors"
          local now = os.time()
          io.write(errors.http_date("Sun, 06 Nov 1994 08:49:37 GMT"), " ",
                   errors.http_date("Sun Nov  6 08:49:37 1994"), " ",
                   errors.retry_after(os.date("!%a, %d %b %Y %H:%M:%S GMT", now + 120)), " ",
                   errors.retry_after(os.date("!%a, %d %b %Y %H:%M:%S GMT", now - 3600)))
        ]]
        local file = os.tmpname()
        local f = assert(io.open(file, "w"))
        f:write("package.path = 'lua/?.lua;' .. package.path\n", code)
        f:close()
        local p = assert(io.popen("TZ='" .. tz .. "' lua5.4 " .. file .. " 2>&1"))
        local out = p:read("*a")
        p:close()
        os.remove(file)
        local a, b, c, d = out:match("^(%-?%d+) (%-?%d+) (%-?%d+) (%-?%d+)$")
        assert.is_not_nil(a, tz .. ": " .. out)
        assert.equal(T1994, tonumber(a), tz)
        assert.equal(T1994, tonumber(b), tz)
        assert.is_true(tonumber(c) >= 118 and tonumber(c) <= 120, tz .. ": " .. c)
        assert.equal(0, tonumber(d), tz)
      end
    end)
  end)

  describe("errors.retry_after", function()
    it("keeps delay-seconds", function()
      assert.equal(7, errors.retry_after("7"))
      assert.equal(120, errors.retry_after(" 120 ", "Sun, 06 Nov 1994 08:49:37 GMT"))
      assert.equal(0, errors.retry_after("0"))
    end)

    it("counts a date from the reply's Date header, whatever the local clock says", function()
      local date = "Sun, 06 Nov 1994 08:49:37 GMT"
      for _, ra in ipairs({ "Sun, 06 Nov 1994 08:50:07 GMT", "Sunday, 06-Nov-94 08:50:07 GMT",
                            "Sun Nov  6 08:50:07 1994" }) do
        assert.equal(30, errors.retry_after(ra, date, NOW2026), ra)
        assert.equal(30, errors.retry_after(ra, date, 0), ra)
        assert.equal(30, errors.retry_after(ra, date), ra)
      end
      -- the Date header in an obsolete form counts as well
      assert.equal(90, errors.retry_after("Sun, 06 Nov 1994 08:51:07 GMT", "Sun Nov  6 08:49:37 1994"))
    end)

    it("counts from the local clock without a usable Date header", function()
      assert.equal(45, errors.retry_after(imf(NOW2026 + 45), nil, NOW2026))
      assert.equal(45, errors.retry_after(imf(NOW2026 + 45), "yesterday", NOW2026))
      local d = errors.retry_after(imf(os.time() + 300))
      assert.is_true(d >= 298 and d <= 300, tostring(d))
    end)

    it("gives 0 for a date in the past", function()
      assert.equal(0, errors.retry_after("Sun, 06 Nov 1994 08:49:36 GMT", "Sun, 06 Nov 1994 08:49:37 GMT"))
      assert.equal(0, errors.retry_after("Sun, 06 Nov 1994 08:49:37 GMT", "Sun, 06 Nov 1994 08:49:37 GMT"))
      assert.equal(0, errors.retry_after("Sun, 06 Nov 1994 08:49:37 GMT"))
      assert.equal(0, errors.retry_after(imf(NOW2026 - 1), nil, NOW2026))
    end)

    it("ignores garbage", function()
      for _, v in ipairs({ "", "soon", "-5", "5s", "1e3", "Sun, 06 Nov 1994 08:49:37 PST",
                           "Sun, 31 Nov 1994 08:49:37 GMT" }) do
        assert.is_nil(errors.retry_after(v, "Sun, 06 Nov 1994 08:49:37 GMT"), v)
      end
      assert.is_nil(errors.retry_after(nil, "Sun, 06 Nov 1994 08:49:37 GMT"))
    end)

    it("feeds err.retry_after of a reply; RetryInfo still comes first", function()
      local h = { ["retry-after"] = "Sun, 06 Nov 1994 08:49:47 GMT", date = "Sun, 06 Nov 1994 08:49:37 GMT",
                  ["content-type"] = "application/json; charset=UTF-8" }
      local body = cjson.encode({ error = { code = 503, message = "The service is currently unavailable.",
                                            status = "UNAVAILABLE" } })
      local e = errors.from_response({ status = 503, headers = h, body = body }, REQ, cjson.decode(body))
      assert.equal(10, e.retry_after)
      e = errors.from_response({ status = 429, headers = h, body = "" }, REQ, nil)
      assert.equal(10, e.retry_after)
      h["retry-after"] = "whenever"
      e = errors.from_response({ status = 503, headers = h, body = body }, REQ, cjson.decode(body))
      assert.is_nil(e.retry_after)
      h["retry-after"] = "Sun, 06 Nov 1994 08:49:47 GMT"
      body = cjson.encode({ error = { code = 429, message = "q", status = "RESOURCE_EXHAUSTED", details = {
        { ["@type"] = "type.googleapis.com/google.rpc.RetryInfo", retryDelay = "3s" } } } })
      assert.equal(3, errors.from_response({ status = 429, headers = h, body = body }, REQ, cjson.decode(body))
        .retry_after)
    end)

    it("keeps the policy's semantics: a floor above max_delay, bounded by the deadline", function()
      local h = { ["retry-after"] = "Sun, 06 Nov 1994 08:50:37 GMT", date = "Sun, 06 Nov 1994 08:49:37 GMT" }
      local e = errors.from_response({ status = 503, headers = h, body = "" }, REQ, nil)
      local p = { initial = 0.5, multiplier = 2, max_delay = 5, max_attempts = 3 }
      local function one() return 0.999 end
      assert.equal(60, retry.delay(p, 1, e.retry_after, one))
      assert.equal(60, retry.decide(p, { attempts = 1, row = {}, first_started_at = 0 }, e, nil, 0, one))
      assert.is_nil(retry.decide(p, { attempts = 1, row = {}, first_started_at = 0 }, e, 30, 0, one))
    end)
  end)

  describe("against the emulator", function()
    local emu = helper.with_emulator { "--api-key", KEY .. "=alice@example.com" }

    it("validates retryAfterDate and retryAfterFormat", function()
      for rule, msg in pairs({
        [{ action = "error", retryAfterDate = 1.5 }] = "retryAfterDate must be an integer",
        [{ action = "error", retryAfterDate = "soon" }] = "retryAfterDate must be an integer",
        [{ action = "error", retryAfterDate = 2, retryAfter = 2 }] = "not both",
        [{ action = "error", retryAfterDate = 2, retryAfterFormat = "iso" }] = "retryAfterFormat must be one of",
        [{ action = "error", retryAfterFormat = "asctime" }] = "retryAfterFormat needs retryAfterDate",
      }) do
        local status, body = emu:control("POST", "/emulator/v1/faults", { rules = { rule } })
        assert.equal(400, status)
        assert.matches(msg, body.error.message, 1, true)
      end
      emu:fault { action = "error", status = 429, retryAfterDate = -30, retryAfterFormat = "rfc850" }
      local _, list = emu:control("GET", "/emulator/v1/faults")
      assert.equal(1, #list.rules)
      assert.equal(-30, list.rules[1].retryAfterDate)
      assert.equal("rfc850", list.rules[1].retryAfterFormat)
    end)

    it("sends Retry-After as a date in each form, counted from its own Date header, without RetryInfo", function()
      for form, pattern in pairs({
        ["imf-fixdate"] = "^%a%a%a, %d%d %a%a%a %d%d%d%d %d%d:%d%d:%d%d GMT$",
        rfc850 = "^%a+day, %d%d%-%a%a%a%-%d%d %d%d:%d%d:%d%d GMT$",
        asctime = "^%a%a%a %a%a%a [ %d]%d %d%d:%d%d:%d%d %d%d%d%d$",
      }) do
        emu:fault { match = { method = "getModel" }, action = "error", status = 503, retryAfterDate = 120,
                retryAfterFormat = form }
        local status, _, body, h = emu:api("GET", "/v1beta3/models/text-bison-001")
        assert.equal(503, status)
        assert.matches(pattern, h["retry-after"])
        assert.equal(120, errors.http_date(h["retry-after"]) - errors.http_date(h.date), form)
        assert.equal(120, errors.retry_after(h["retry-after"], h.date), form)
        local e = cjson.decode(body).error
        assert.same({ code = 503, message = "The service is currently unavailable.", status = "UNAVAILABLE" }, e)
      end
      -- the default form is IMF-fixdate
      emu:fault { match = { method = "getModel" }, action = "error", status = 429, retryAfterDate = 5 }
      local _, _, _, h = emu:api("GET", "/v1beta3/models/text-bison-001")
      assert.equal(5, errors.http_date(h["retry-after"]) - errors.http_date(h.date))
      assert.matches(" GMT$", h["retry-after"])
    end)

    it("the client waits until the date before its retry #timing", function()
      local t = emu:traced { retry = { initial = 0.001, multiplier = 2, max_delay = 0.004, max_attempts = 3 } }
      emu:fault { match = { method = "getModel" }, action = "error", status = 503, retryAfterDate = 2 }
      local t0 = core.now()
      local model, err = t.client:get_model("text-bison-001")
      local elapsed = core.now() - t0
      assert.is_nil(err)
      assert.equal("models/text-bison-001", model.name)
      assert.equal(1, #t.retries)
      assert.equal(503, t.retries[1].err.code)
      assert.equal(2, t.retries[1].err.retry_after)     -- far above max_delay: the server wins
      assert.equal(2, t.retries[1].delay)
      assert.is_true(elapsed >= 1.9, "retried after " .. elapsed .. " s")
      assert.is_true(elapsed < 15, "retried after " .. elapsed .. " s")
      local j = emu:requests()
      assert.same({ 503, 200 }, { j[1].status, j[2].status })
      t.client:close()
    end)

    it("a date in the past (RFC 850 form, on a 429) means no extra wait", function()
      local t = emu:traced { retry = { initial = 0.001, multiplier = 2, max_delay = 0.004, max_attempts = 3 } }
      emu:fault { match = { method = "getModel" }, action = "error", status = 429, retryAfterDate = -3600,
              retryAfterFormat = "rfc850" }
      assert(t.client:get_model("text-bison-001"))
      assert.equal(1, #t.retries)
      assert.equal(0, t.retries[1].err.retry_after)
      assert.is_true(t.retries[1].delay <= 0.001)
      t.client:close()
    end)

    it("a date beyond the deadline (asctime form) is returned at once, with retry_after", function()
      local t = emu:traced { deadline = 5, retry = { initial = 0.001, max_attempts = 5 } }
      emu:fault { match = { method = "getModel" }, action = "error", status = 429, retryAfterDate = 60,
              retryAfterFormat = "asctime" }
      local _, err = t.client:get_model("text-bison-001")
      assert.equal(429, err.code)
      assert.equal("RESOURCE_EXHAUSTED", err.status)
      assert.equal(60, err.retry_after)
      assert.equal(0, #t.retries)
      assert.equal(1, #emu:requests())
      t.client:close()
    end)
  end)
end)
