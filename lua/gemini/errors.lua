--- The error object of lua-gemini, built from any failure, with secrets redacted.
--
-- A failure that comes from the network or the API is returned as `nil, err`, where `err` has:
--
--  * `code`: the HTTP status, or nil when no response came (a reply cut short keeps its status);
--  * `status`: Google's canonical code (`NOT_FOUND`, `INVALID_ARGUMENT`, ...); transport failures
--    give `UNAVAILABLE`, timeouts `DEADLINE_EXCEEDED`, an oversized reply `RESOURCE_EXHAUSTED`;
--  * `message`: one human line (or Google's text);
--  * `details`: the decoded `details` array of the Google error (or nil);
--  * `reason`: from a `google.rpc.ErrorInfo` detail;
--  * `retry_after`: seconds, from `google.rpc.RetryInfo` or the `Retry-After` header (delay-seconds, or an
--    HTTP date counted from the reply's `Date` header: see `retry_after`);
--  * `method`, `path`: the HTTP method and URL path of the request (no query, never a key);
--  * `kind`: the transport failure kind of the C core, when there was one; `attempts` when retried.
--
-- `tostring(err)` gives one line. Iterators raise this same object.
-- @module gemini.errors

local M = {}

local type, tostring, tonumber, pairs, format = type, tostring, tonumber, pairs, string.format

local Error = {}
Error.__index = Error
Error.__name = "gemini.error"
M.Error = Error

--- Canonical status for an HTTP code (as Google's front end maps them).
M.http_status = {
  [400] = "INVALID_ARGUMENT", [401] = "UNAUTHENTICATED", [403] = "PERMISSION_DENIED", [404] = "NOT_FOUND",
  [409] = "ABORTED", [412] = "FAILED_PRECONDITION", [416] = "OUT_OF_RANGE", [429] = "RESOURCE_EXHAUSTED",
  [499] = "CANCELLED", [500] = "INTERNAL", [501] = "UNIMPLEMENTED", [502] = "UNAVAILABLE",
  [503] = "UNAVAILABLE", [504] = "DEADLINE_EXCEEDED",
}

--- Canonical status for a transport failure kind of the C core.
M.kind_status = {
  timeout = "DEADLINE_EXCEEDED", connect_timeout = "DEADLINE_EXCEEDED", stall = "DEADLINE_EXCEEDED",
  deadline = "DEADLINE_EXCEEDED",
  too_large = "RESOURCE_EXHAUSTED",
  connect = "UNAVAILABLE", resolve = "UNAVAILABLE", tls = "UNAVAILABLE", send = "UNAVAILABLE",
  recv = "UNAVAILABLE", proxy = "UNAVAILABLE", other = "UNAVAILABLE",
  cancelled = "CANCELLED",
}

local function status_for_code(code)
  if M.http_status[code] then return M.http_status[code] end
  if code >= 500 then return "INTERNAL" end
  if code >= 400 then return "FAILED_PRECONDITION" end
  return "UNKNOWN"
end
M.status_for_code = status_for_code

--- Is `v` an error object of this module?
-- @param v any value
-- @return boolean
function M.is(v)
  return getmetatable(v) == Error
end

-- The characters a key or token is made of: a secret glued to one of these is part of a longer word.
local KEYCHAR = "[A-Za-z0-9_.~+/=%-]"

--- Secrets at least this long are redacted wherever they occur, even inside a longer token (`key=SECRET`,
-- `/path/SECRET`): a credential that long never garbles ordinary text. Shorter ones only as whole tokens.
M.ANYWHERE_LENGTH = 8

local function redact_one(s, sec)
  local anywhere = #sec >= M.ANYWHERE_LENGTH
  local out, pos, last = {}, 1, 1
  while true do
    local i, j = s:find(sec, pos, true)
    if not i then break end
    if anywhere or ((i == 1 or not s:sub(i - 1, i - 1):find(KEYCHAR))
        and (j == #s or not s:sub(j + 1, j + 1):find(KEYCHAR))) then
      out[#out + 1] = s:sub(last, i - 1)
      out[#out + 1] = "[REDACTED]"
      last, pos = j + 1, j + 1
    else
      pos = i + 1
    end
  end
  if last == 1 then return s end
  out[#out + 1] = s:sub(last)
  return table.concat(out)
end

--- Replaces every secret (and obvious credential patterns) in `s` by `[REDACTED]`.
-- A secret is replaced where it stands as a whole token (not preceded or followed by a key character
-- `[A-Za-z0-9_.~+/=-]`), so a one-letter key does not garble words; a secret of `M.ANYWHERE_LENGTH`
-- characters or more is replaced wherever it occurs. Patterns redacted whatever the secrets:
-- `?key=`/`&key=` and `access_token=` query values, `Bearer` tokens, `x-goog-api-key:` header values,
-- and the userinfo of a URL (`https://user:pass@host`).
-- @param s string
-- @param secrets array of strings (keys, tokens), a function returning one, or nil
-- @return string
function M.redact(s, secrets)
  if type(s) ~= "string" then return s end
  if type(secrets) == "function" then secrets = secrets() end   -- the client keeps them in a closure
  if secrets then
    -- longest first: a secret that contains another is replaced whole
    local list = {}
    for _, sec in ipairs(secrets) do
      if type(sec) == "string" and #sec >= 1 then list[#list + 1] = sec end
    end
    table.sort(list, function(a, b) return #a > #b end)
    for _, sec in ipairs(list) do s = redact_one(s, sec) end
  end
  s = s:gsub("([?&][Kk][Ee][Yy]=)[^&%s\"']+", "%1[REDACTED]")
  s = s:gsub("([?&]access_token=)[^&%s\"']+", "%1[REDACTED]")
  s = s:gsub("([Bb]earer )[%w%-%._~%+/=]+", "%1[REDACTED]")
  s = s:gsub("([Xx]%-[Gg]oog%-[Aa]pi%-[Kk]ey:%s*)[^%s\"']+", "%1[REDACTED]")
  s = s:gsub("(%a[%w+.-]*://)[^@/?#%s\"'<>]+@", "%1[REDACTED]@")
  return s
end

local function redact_deep(v, secrets, depth)
  if type(v) == "string" then return M.redact(v, secrets) end
  if type(v) ~= "table" or depth > 20 then return v end
  local out = {}
  for k, x in pairs(v) do out[k] = redact_deep(x, secrets, depth + 1) end
  return setmetatable(out, getmetatable(v))
end

-- Fields whose values come from a fixed vocabulary of this library, never from a server's text.
local FIXED = { status = true, method = true, rpc = true, kind = true }

--- Makes an error object from fields (see the module doc); strings are redacted with `secrets`.
-- @param fields table
-- @param secrets optional array of secret strings
-- @return error object
function M.new(fields, secrets)
  local e = {}
  for k, v in pairs(fields) do e[k] = v end
  e.message = e.message or e.status or "error"
  for k, v in pairs(e) do
    -- every string field (message, path, body_excerpt, ...): a server may echo a credential anywhere
    if type(v) == "string" and not FIXED[k] then e[k] = M.redact(v, secrets) end
  end
  if e.details then e.details = redact_deep(e.details, secrets, 0) end
  return setmetatable(e, Error)
end

local function excerpt(body, n)
  n = n or 120
  local s = body:gsub("%s+", " "):gsub("[%z\1-\31\127]", "?")
  s = s:gsub("^ ", "")
  if #s > n then s = s:sub(1, n) .. "..." end
  return s
end
M.excerpt = excerpt

--- Seconds from a Duration string (`"53s"`, `"1.5s"`) or a number.
-- @param d value
-- @return number or nil
function M.duration(d)
  if type(d) == "number" then return d end
  if type(d) ~= "string" then return nil end
  local n = d:match("^%s*(%d+%.?%d*)s%s*$")
  return n and tonumber(n) or nil
end

-- HTTP-date (RFC 9110, section 5.6.7) ---------------------------------------------------------

local floor = math.floor
local MONTHS = { jan = 1, feb = 2, mar = 3, apr = 4, may = 5, jun = 6, jul = 7, aug = 8, sep = 9, oct = 10,
                 nov = 11, dec = 12 }
local SHORT_DAYS = { sun = true, mon = true, tue = true, wed = true, thu = true, fri = true, sat = true }
local LONG_DAYS = { sunday = true, monday = true, tuesday = true, wednesday = true, thursday = true,
                    friday = true, saturday = true }

-- Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil): pure arithmetic,
-- so neither the local time zone nor the platform's time_t range is involved.
local function days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = floor(y / 400)
  local yoe = y - era * 400
  local mp = (m + 9) % 12                      -- March = 0
  local doy = floor((153 * mp + 2) / 5) + d - 1
  local doe = yoe * 365 + floor(yoe / 4) - floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end

local function leap(y) return (y % 4 == 0 and y % 100 ~= 0) or y % 400 == 0 end
local MDAYS = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 }

local function epoch(y, mon, d, hh, mm, ss)
  local m = MONTHS[mon:lower()]
  y, d, hh, mm, ss = tonumber(y), tonumber(d), tonumber(hh), tonumber(mm), tonumber(ss)
  if not m or d < 1 or d > ((m == 2 and leap(y)) and 29 or MDAYS[m]) or hh > 23 or mm > 59 or ss > 60 then
    return nil
  end
  return ((days_from_civil(y, m, d) * 24 + hh) * 60 + mm) * 60 + ss
end

--- Seconds since the Unix epoch (UTC) of an HTTP-date, or nil.
-- Accepts the three forms of RFC 9110: IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the obsolete
-- RFC 850 form (`Sunday, 06-Nov-94 08:49:37 GMT`, a two-digit year more than 50 years ahead of `now`
-- meaning the century before) and asctime (`Sun Nov  6 08:49:37 1994`). Names are matched without
-- regard to case; the weekday must be a weekday name but is not checked against the date.
-- @param s string
-- @param now optional epoch seconds that resolve an RFC 850 two-digit year (default `os.time()`)
-- @return integer seconds or nil
function M.http_date(s, now)
  if type(s) ~= "string" then return nil end
  s = s:match("^[ \t]*(.-)[ \t]*$")
  local wd, d, mon, y, hh, mm, ss = s:match("^(%a%a%a), (%d%d) (%a%a%a) (%d%d%d%d) (%d%d):(%d%d):(%d%d) GMT$")
  if wd and SHORT_DAYS[wd:lower()] then return epoch(y, mon, d, hh, mm, ss) end
  wd, d, mon, y, hh, mm, ss = s:match("^(%a+), (%d%d)%-(%a%a%a)%-(%d%d) (%d%d):(%d%d):(%d%d) GMT$")
  if wd and LONG_DAYS[wd:lower()] then
    -- RFC 9110: a two-digit year more than 50 years in the future is the most recent past year
    -- with the same last two digits
    local this_year = tonumber(os.date("!%Y", floor(now or os.time())))
    local full = this_year - this_year % 100 + tonumber(y)
    if full > this_year + 50 then full = full - 100 end
    return epoch(full, mon, d, hh, mm, ss)
  end
  wd, mon, d, hh, mm, ss, y = s:match("^(%a%a%a) (%a%a%a) ([ %d]%d) (%d%d):(%d%d):(%d%d) (%d%d%d%d)$")
  if wd and SHORT_DAYS[wd:lower()] then return epoch(y, mon, d, hh, mm, ss) end   -- d may be " 6"
  return nil
end

--- Seconds to wait from a `Retry-After` header value: delay-seconds, or an HTTP-date counted from
-- the reply's `Date` header (the server's clock, so clock skew does not matter), else from the
-- local clock. A date in the past gives 0; anything else unparsable gives nil.
-- @param value the `Retry-After` header value (or nil)
-- @param date the reply's `Date` header value (or nil)
-- @param now optional epoch seconds used when `date` is missing or unparsable (default `os.time()`)
-- @return seconds or nil
function M.retry_after(value, date, now)
  if type(value) ~= "string" then return nil end
  local n = value:match("^%s*(%d+%.?%d*)%s*$")
  if n then return tonumber(n) end
  now = now or os.time()
  local at = M.http_date(value, now)
  if not at then return nil end
  local base = M.http_date(date, now) or now
  local s = at - base
  return s > 0 and s or 0
end

--- Builds the error for an HTTP reply that is not a success, or a success whose body is unusable.
-- @param resp completion table of the C core (`status`, `headers`, `body`)
-- @param req `{ method =, path = }`
-- @param decoded the decoded body if it was valid JSON (else nil)
-- @param secrets array of secrets to redact
-- @param why optional phrase for a 2xx body that could not be used
-- @return error object
function M.from_response(resp, req, decoded, secrets, why)
  local code = resp.status
  local headers = resp.headers or {}
  local f = { code = code, method = req.method, path = req.path, rpc = req.rpc }
  local ge = type(decoded) == "table" and type(decoded.error) == "table" and decoded.error or nil
  if ge and code >= 300 then
    f.status = type(ge.status) == "string" and ge.status or status_for_code(code)
    f.message = type(ge.message) == "string" and ge.message or f.status
    if type(ge.details) == "table" then
      f.details = ge.details
      for _, d in ipairs(ge.details) do
        if type(d) == "table" then
          local t = type(d["@type"]) == "string" and d["@type"] or ""
          if t:match("google%.rpc%.ErrorInfo$") and type(d.reason) == "string" then f.reason = d.reason end
          if t:match("google%.rpc%.RetryInfo$") then f.retry_after = M.duration(d.retryDelay) end
        end
      end
    end
  else
    local body = type(resp.body) == "string" and resp.body or ""
    local ctype = headers["content-type"] or ""
    if code >= 300 then
      f.status = status_for_code(code)
      local what = ctype:find("html", 1, true) and "an HTML page" or
        (body == "" and "an empty body" or "a body that is not a Google error")
      f.message = format("HTTP %d with %s", code, what)
    else
      f.status = "UNKNOWN"
      f.message = format("HTTP %d with %s", code, why or "a body that is not valid JSON")
    end
    if body ~= "" then f.message = f.message .. ": " .. excerpt(body) end
    f.body_excerpt = excerpt(body)
  end
  if f.retry_after == nil then f.retry_after = M.retry_after(headers["retry-after"], headers["date"]) end
  return M.new(f, secrets)
end

--- Builds the error for a transport failure (a C core completion with `error` and `kind`).
-- @param c completion `{ error =, kind =, curl_code =, status = }`
-- @param req `{ method =, path =, limits = { timeout =, connect_timeout =, stall_timeout =, max_response_bytes = } }`
-- @param secrets array of secrets
-- @return error object
function M.from_transport(c, req, secrets)
  local kind = c.kind or "other"
  local limits = req.limits or {}
  local msg
  if kind == "timeout" then
    msg = format("no complete reply within timeout = %s s", tostring(limits.timeout or "?"))
  elseif kind == "connect_timeout" then
    msg = format("could not connect within connect_timeout = %s s", tostring(limits.connect_timeout or "?"))
  elseif kind == "stall" then
    msg = format("no data moved for stall_timeout = %s s", tostring(limits.stall_timeout or "?"))
  elseif kind == "deadline" then
    msg = format("deadline = %s s exceeded", tostring(limits.deadline or "?"))
  elseif kind == "too_large" then
    msg = format("reply larger than max_response_bytes = %s", tostring(limits.max_response_bytes or "?"))
  end
  local code = (type(c.status) == "number" and c.status > 0) and c.status or nil
  if msg then
    if c.error and c.error ~= "" then msg = msg .. " (" .. tostring(c.error) .. ")" end
  elseif code then
    -- a reply had started: its status line came, the body was cut short
    msg = format("HTTP %d reply cut short", code)
    if c.error and c.error ~= "" then msg = msg .. " (" .. tostring(c.error) .. ")" end
  else
    msg = (c.error and c.error ~= "") and tostring(c.error) or (kind .. " failure")
  end
  if code and type(c.body) == "string" and c.body ~= "" then msg = msg .. ": " .. excerpt(c.body) end
  return M.new({
    code = code, status = M.kind_status[kind] or "UNAVAILABLE", message = msg,
    kind = kind, curl_code = c.curl_code, method = req.method, path = req.path, rpc = req.rpc,
  }, secrets)
end

--- One line: `gemini: STATUS (code) message [METHOD path]`.
function Error:__tostring()
  local parts = { "gemini: ", tostring(self.status or "UNKNOWN") }
  if self.code then parts[#parts + 1] = " (" .. tostring(self.code) .. ")" end
  if self.reason then parts[#parts + 1] = " " .. tostring(self.reason) end
  parts[#parts + 1] = ": "
  parts[#parts + 1] = (tostring(self.message or ""):gsub("[\r\n]+", " "))
  if self.method and self.path then
    parts[#parts + 1] = " [" .. tostring(self.method) .. " " .. tostring(self.path) .. "]"
  end
  if self.attempts and self.attempts > 1 then parts[#parts + 1] = " after " .. self.attempts .. " attempts" end
  return table.concat(parts)
end

Error.__concat = function(a, b) return tostring(a) .. tostring(b) end

return M
