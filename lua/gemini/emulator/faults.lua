--- Fault injection rules and the rate limiter of the emulator (see docs/emulator.md).
--
-- A rule: `{ match = { method =, httpMethod =, path = }, action = "error"|"delay"|"reset"|"truncate"|
-- "invalid_json"|"html"|"drip", times = N (default 1, 0 = forever), status =, message =, errorStatus =,
-- details =, retryAfter =, retryAfterDate =, retryAfterFormat =, delayMs =, dripBytes =, dripIntervalMs =,
-- bytes = }`.
-- The server asks `faults:match(req, route)` for every API request; the first matching rule with
-- times left wins and is counted down. The responses for the actions that need no real reply are
-- built here; the socket-level actions (reset, truncate, drip, delay) are carried out by the server.
-- @module gemini.emulator.faults

local json = require "gemini.emulator.json"
local status = require "gemini.emulator.status"
local http = require "gemini.emulator.http"

local M = {}

M.actions = { error = true, delay = true, reset = true, truncate = true, invalid_json = true, html = true,
              drip = true }

local rule_keys = { match = true, action = true, times = true, status = true, message = true, errorStatus = true,
                    details = true, retryAfter = true, retryAfterDate = true, retryAfterFormat = true,
                    delayMs = true, dripBytes = true, dripIntervalMs = true, bytes = true }
local match_keys = { method = true, httpMethod = true, path = true }

--- Google's default messages for the canonical codes a fault is likely to use.
M.default_messages = {
  UNAVAILABLE = "The service is currently unavailable.",
  INTERNAL = "Internal error encountered.",
  RESOURCE_EXHAUSTED = "Resource has been exhausted (e.g. check quota).",
  DEADLINE_EXCEEDED = "The request timed out. Please try again.",
  UNKNOWN = "An unknown error occurred.",
  PERMISSION_DENIED = "The caller does not have permission",
  NOT_FOUND = "Requested entity was not found.",
  INVALID_ARGUMENT = "Request contains an invalid argument.",
  FAILED_PRECONDITION = "Precondition check failed.",
  UNAUTHENTICATED = "Request had invalid authentication credentials.",
  ABORTED = "The operation was aborted.",
  CANCELLED = "The operation was cancelled.",
}

local Faults = {}
Faults.__index = Faults

--- A new, empty rule set.
function M.new()
  return setmetatable({ rules = {} }, Faults)
end

local DATE_FORMS = { ["imf-fixdate"] = true, rfc850 = true, asctime = true }

local function is_int(v, min, max)
  return type(v) == "number" and v == math.floor(v) and v >= (min or 0) and (max == nil or v <= max)
end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = tostring(k) end
  table.sort(keys)
  return keys
end

--- Check one rule as decoded from JSON; returns a normalised copy or nil, message.
-- @param r decoded rule
function M.validate(r)
  if type(r) ~= "table" or json.is_array(r) then return nil, "a rule must be an object" end
  for _, k in ipairs(sorted_keys(r)) do
    if not rule_keys[k] then return nil, "unknown rule field \"" .. k .. "\"" end
  end
  if not M.actions[r.action] then
    return nil, "action must be one of error, delay, reset, truncate, invalid_json, html, drip"
  end
  local m = r.match
  if m ~= nil then
    if type(m) ~= "table" or json.is_array(m) then return nil, "match must be an object" end
    for _, k in ipairs(sorted_keys(m)) do
      if not match_keys[k] then return nil, "unknown match field \"" .. k .. "\"" end
      if type(m[k]) ~= "string" then return nil, "match." .. k .. " must be a string" end
    end
  end
  if r.times ~= nil and not is_int(r.times, 0) then return nil, "times must be a non-negative integer" end
  if r.status ~= nil and not is_int(r.status, 100, 599) then return nil, "status must be an HTTP status" end
  if r.errorStatus ~= nil and not status.codes[r.errorStatus] then
    return nil, "errorStatus must be a canonical code name"
  end
  if r.message ~= nil and type(r.message) ~= "string" then return nil, "message must be a string" end
  if r.details ~= nil then
    if type(r.details) ~= "table" or json.is_object(r.details) then return nil, "details must be an array" end
    for _, d in ipairs(r.details) do
      if type(d) ~= "table" or type(d["@type"]) ~= "string" then
        return nil, "each detail must be an object with \"@type\""
      end
    end
  end
  if r.retryAfter ~= nil and not is_int(r.retryAfter, 0) then
    return nil, "retryAfter must be a non-negative integer (seconds)"
  end
  if r.retryAfterDate ~= nil then
    if not is_int(r.retryAfterDate, -1e9, 1e9) then
      return nil, "retryAfterDate must be an integer (seconds from now; negative for a past date)"
    end
    if r.retryAfter ~= nil then return nil, "give retryAfter or retryAfterDate, not both" end
  end
  if r.retryAfterFormat ~= nil then
    if not DATE_FORMS[r.retryAfterFormat] then
      return nil, "retryAfterFormat must be one of imf-fixdate, rfc850, asctime"
    end
    if r.retryAfterDate == nil then return nil, "retryAfterFormat needs retryAfterDate" end
  end
  if r.delayMs ~= nil and not is_int(r.delayMs, 0) then return nil, "delayMs must be a non-negative integer" end
  if r.dripBytes ~= nil and not is_int(r.dripBytes, 1) then return nil, "dripBytes must be a positive integer" end
  if r.dripIntervalMs ~= nil and not is_int(r.dripIntervalMs, 0) then
    return nil, "dripIntervalMs must be a non-negative integer"
  end
  if r.bytes ~= nil and not is_int(r.bytes, 0) then return nil, "bytes must be a non-negative integer" end
  local rule = {}
  for k, v in pairs(r) do rule[k] = v end
  rule.match = m or {}
  rule.times = r.times or 1
  rule.left = rule.times
  rule.hits = 0
  return rule
end

--- Append rules (all or none): returns the number added, or nil, message.
-- @param list decoded array of rules
function Faults:add(list)
  if type(list) ~= "table" or json.is_object(list) then return nil, "rules must be an array" end
  local ok = {}
  for i, r in ipairs(list) do
    local rule, err = M.validate(r)
    if not rule then return nil, "rules[" .. (i - 1) .. "]: " .. err end
    ok[#ok + 1] = rule
  end
  for _, rule in ipairs(ok) do self.rules[#self.rules + 1] = rule end
  return #ok
end

--- Remove every rule.
function Faults:clear()
  self.rules = {}
end

--- The rules as a JSON array (with `hits` and `remaining`; remaining is null for times 0 = forever).
function Faults:list()
  local out = json.array()
  for i, r in ipairs(self.rules) do
    local m = json.object("method", r.match.method, "httpMethod", r.match.httpMethod, "path", r.match.path)
    out[i] = json.object("match", m, "action", r.action, "times", r.times,
      "remaining", r.times == 0 and json.null or r.left, "hits", r.hits,
      "status", r.status, "message", r.message, "errorStatus", r.errorStatus, "details", r.details,
      "retryAfter", r.retryAfter, "retryAfterDate", r.retryAfterDate, "retryAfterFormat", r.retryAfterFormat,
      "delayMs", r.delayMs, "dripBytes", r.dripBytes,
      "dripIntervalMs", r.dripIntervalMs, "bytes", r.bytes)
  end
  return out
end

--- The first rule that matches the request and has times left (counted down), or nil.
-- @param req parsed request (method, path, raw_path)
-- @param route the REST method name from app:route, or nil
function Faults:match(req, route)
  for _, r in ipairs(self.rules) do
    if r.times == 0 or r.left > 0 then
      local m = r.match
      if (m.method == nil or m.method == route)
        and (m.httpMethod == nil or m.httpMethod:upper() == req.method)
        and (m.path == nil or m.path == req.path or m.path == req.raw_path) then
        if r.times ~= 0 then r.left = r.left - 1 end
        r.hits = r.hits + 1
        return r
      end
    end
  end
  return nil
end

--- The response of an `error` rule: Google's envelope, Retry-After and RetryInfo when asked.
-- `retryAfterDate` sends `Retry-After` as an HTTP date that many seconds after this reply's own
-- `Date` header (both from one reading of the clock), without a RetryInfo detail.
-- @param r rule
-- @param now optional epoch seconds (default `os.time()`)
function M.error_response(r, now)
  local canonical = r.errorStatus or (r.status and status.canonical_for_http(r.status)) or "UNAVAILABLE"
  local code = r.status or status.to_http(canonical)
  local details = {}
  for i, d in ipairs(r.details or {}) do details[i] = d end
  if r.retryAfter then details[#details + 1] = status.retry_info(r.retryAfter) end
  local resp = status.error_response(canonical, r.message or M.default_messages[canonical] or "Injected fault.",
    details, code)
  if r.retryAfter then resp.headers["Retry-After"] = string.format("%d", r.retryAfter) end
  if r.retryAfterDate then
    now = now or os.time()
    resp.headers["Date"] = http.format_date(now)
    resp.headers["Retry-After"] = http.format_date(now + r.retryAfterDate, r.retryAfterFormat)
  end
  return resp
end

--- The response of an `invalid_json` rule: 200 with a JSON body cut in the middle.
function M.invalid_json_response()
  local resp = { status = 200, headers = status.headers() }
  resp.body = '{\n  "candidates": [\n    {\n      "output": "The answer is'
  return resp
end

--- The response of an `html` rule: a proxy's HTML error page (502 unless the rule gives a status).
-- @param r rule
function M.html_response(r)
  local code = r.status or 502
  local body = table.concat({
    "<!DOCTYPE html>",
    "<html lang=en>",
    "  <meta charset=utf-8>",
    "  <meta name=viewport content=\"initial-scale=1, minimum-scale=1, width=device-width\">",
    "  <title>Error " .. code .. " (Server Error)!!1</title>",
    "  <p><b>" .. code .. ".</b> <ins>That\226\128\153s an error.</ins>",
    "  <p>The server encountered a temporary error and could not complete your request.<p>Please try again"
      .. " in 30 seconds.  <ins>That\226\128\153s all we know.</ins>",
    "",
  }, "\n")
  return { status = code, headers = { ["Content-Type"] = "text/html; charset=UTF-8",
                                      ["Referrer-Policy"] = "no-referrer" }, body = body }
end

-- ------------------------------------------------------------------------------------------
-- rate limit

local RateLimit = {}
RateLimit.__index = RateLimit

--- A rate limiter (disabled until configured).
function M.new_ratelimit()
  return setmetatable({ requests = 0, window_ms = 60000, start = nil, count = 0 }, RateLimit)
end

--- Configure: N requests per window (requests 0 disables). Returns true or nil, message.
-- @param cfg decoded { requests =, windowMs = }
function RateLimit:configure(cfg)
  if type(cfg) ~= "table" or json.is_array(cfg) then return nil, "body must be an object" end
  for _, k in ipairs(sorted_keys(cfg)) do
    if k ~= "requests" and k ~= "windowMs" then return nil, "unknown field \"" .. k .. "\"" end
  end
  if not is_int(cfg.requests, 0) then return nil, "requests must be a non-negative integer" end
  if cfg.windowMs ~= nil and not is_int(cfg.windowMs, 1) then return nil, "windowMs must be a positive integer" end
  self.requests = cfg.requests
  self.window_ms = cfg.windowMs or 60000
  self.start, self.count = nil, 0
  return true
end

--- Disable and forget the window.
function RateLimit:reset()
  self.requests, self.window_ms, self.start, self.count = 0, 60000, nil, 0
end

--- The current configuration as JSON.
function RateLimit:describe()
  return json.object("requests", self.requests, "windowMs", self.window_ms)
end

--- Count one API request at `now_ms`; returns nil when allowed, or the 429 response.
-- @param now_ms milliseconds (monotonic)
function RateLimit:check(now_ms)
  if self.requests <= 0 then return nil end
  if not self.start or now_ms - self.start >= self.window_ms then
    self.start, self.count = now_ms, 0
  end
  self.count = self.count + 1
  if self.count <= self.requests then return nil end
  local wait = math.ceil((self.start + self.window_ms - now_ms) / 1000)
  if wait < 1 then wait = 1 end
  local resp = status.error_response("RESOURCE_EXHAUSTED", M.default_messages.RESOURCE_EXHAUSTED,
    { status.retry_info(wait) })
  resp.headers["Retry-After"] = string.format("%d", wait)
  return resp
end

return M
