--- google.rpc canonical codes, their HTTP mapping, and Google's error envelope.
-- @module gemini.emulator.status

local json = require "gemini.emulator.json"

local M = {}

--- Canonical code name -> gRPC number.
M.codes = {
  OK = 0, CANCELLED = 1, UNKNOWN = 2, INVALID_ARGUMENT = 3, DEADLINE_EXCEEDED = 4, NOT_FOUND = 5,
  ALREADY_EXISTS = 6, PERMISSION_DENIED = 7, RESOURCE_EXHAUSTED = 8, FAILED_PRECONDITION = 9,
  ABORTED = 10, OUT_OF_RANGE = 11, UNIMPLEMENTED = 12, INTERNAL = 13, UNAVAILABLE = 14,
  DATA_LOSS = 15, UNAUTHENTICATED = 16,
}

--- gRPC number -> canonical code name.
M.names = {}
for k, v in pairs(M.codes) do M.names[v] = k end

--- Canonical code name -> HTTP status (google/rpc/code.proto mapping, as in errors.md).
M.http = {
  OK = 200, CANCELLED = 499, UNKNOWN = 500, INVALID_ARGUMENT = 400, DEADLINE_EXCEEDED = 504,
  NOT_FOUND = 404, ALREADY_EXISTS = 409, PERMISSION_DENIED = 403, RESOURCE_EXHAUSTED = 429,
  FAILED_PRECONDITION = 400, ABORTED = 409, OUT_OF_RANGE = 400, UNIMPLEMENTED = 501, INTERNAL = 500,
  UNAVAILABLE = 503, DATA_LOSS = 500, UNAUTHENTICATED = 401,
}

--- HTTP status -> the canonical code Google's front end reports for it.
M.from_http = {
  [400] = "INVALID_ARGUMENT", [401] = "UNAUTHENTICATED", [403] = "PERMISSION_DENIED", [404] = "NOT_FOUND",
  [409] = "ABORTED", [413] = "INVALID_ARGUMENT", [429] = "RESOURCE_EXHAUSTED", [499] = "CANCELLED",
  [500] = "INTERNAL", [501] = "UNIMPLEMENTED", [503] = "UNAVAILABLE", [504] = "DEADLINE_EXCEEDED",
}

--- HTTP status for a canonical code name (500 for unknown names).
-- @param canonical e.g. "NOT_FOUND"
function M.to_http(canonical) return M.http[canonical] or 500 end

--- Canonical code name for an HTTP status (defaults by class).
-- @param code HTTP status
function M.canonical_for_http(code)
  local c = M.from_http[code]
  if c then return c end
  if code >= 500 then return "INTERNAL" end
  if code >= 400 then return "FAILED_PRECONDITION" end
  return "OK"
end

--- The response headers Google's front end sends with a JSON body (a fresh table).
function M.headers()
  return {
    ["Content-Type"] = "application/json; charset=UTF-8",
    ["Vary"] = "Origin, Referer, X-Origin",
    ["Server"] = "scaffolding on HTTPServer2",
    ["Cache-Control"] = "private",
    ["X-XSS-Protection"] = "0",
    ["X-Frame-Options"] = "SAMEORIGIN",
    ["X-Content-Type-Options"] = "nosniff",
  }
end

--- A JSON response.
-- @param code HTTP status
-- @param value a json value (ordered object)
-- @param pretty pretty-print (default true, like Google)
-- @return { status=, headers=, body= }
function M.json_response(code, value, pretty)
  return { status = code, headers = M.headers(), body = json.encode(value, { pretty = pretty ~= false }) .. "\n" }
end

--- The google.rpc.Status JSON object as an ordered object: { code, message, status, details? }.
-- @param canonical canonical code name
-- @param message text
-- @param details array of detail objects (each with "@type") or nil
-- @param http_code HTTP status override (default from the canonical code)
function M.error_object(canonical, message, details, http_code)
  local err = json.object(
    "code", http_code or M.to_http(canonical),
    "message", message,
    "status", canonical)
  if details and #details > 0 then json.set(err, "details", json.array(details)) end
  return json.object("error", err)
end

--- Google's error envelope as a response.
-- @param canonical canonical code name, e.g. "INVALID_ARGUMENT"
-- @param message human text
-- @param details array of detail objects or nil (omitted when empty)
-- @param http_code HTTP status override (e.g. 413)
-- @param pretty pretty-print (default true)
-- @return { status=, headers=, body= }
function M.error_response(canonical, message, details, http_code, pretty)
  local code = http_code or M.to_http(canonical)
  return M.json_response(code, M.error_object(canonical, message, details, code), pretty)
end

--- An ErrorInfo detail.
-- @param reason e.g. "API_KEY_INVALID"
-- @param domain e.g. "googleapis.com"
-- @param metadata plain table of string -> string (keys sorted) or an ordered object
function M.error_info(reason, domain, metadata)
  local md
  if metadata then
    md = json.object()
    local keys = {}
    for k in pairs(metadata) do keys[#keys + 1] = k end
    table.sort(keys)
    for _, k in ipairs(keys) do json.set(md, k, metadata[k]) end
  end
  return json.object("@type", "type.googleapis.com/google.rpc.ErrorInfo", "reason", reason,
    "domain", domain, "metadata", md)
end

--- A RetryInfo detail.
-- @param seconds delay in seconds
function M.retry_info(seconds)
  return json.object("@type", "type.googleapis.com/google.rpc.RetryInfo",
    "retryDelay", json.number(seconds) .. "s")
end

--- A BadRequest detail from { {field=, description=}, ... } (field optional).
-- @param violations array
function M.bad_request(violations)
  local list = json.array()
  for i, v in ipairs(violations) do
    list[i] = json.object("field", v.field, "description", v.description)
  end
  return json.object("@type", "type.googleapis.com/google.rpc.BadRequest", "fieldViolations", list)
end

return M
