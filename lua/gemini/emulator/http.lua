--- Incremental HTTP/1.1 request parser and response serialiser for the emulator.
--
-- A parser is fed the bytes of one connection as they arrive and queues events, in order:
--
--    { type = "continue" }   -- headers of a request with `Expect: 100-continue` whose body is still due
--    { type = "request", method =, target =, path =, raw_path =, query =, version = "1.1",
--      headers = { lowercased name = value }, body =, keep_alive = bool, expect_continue = bool }
--    { type = "error", status = 400|413|431|501|505, message = "..." }  -- the parser is dead afterwards
--
-- Bodies may come with Content-Length or chunked transfer coding; body bytes are collected in a table
-- of pieces (never re-concatenated per read), and bytes beyond `max_body` are never buffered.
-- @module gemini.emulator.http

local M = {}

local find, sub, lower, format, concat = string.find, string.sub, string.lower, string.format, table.concat

--- Default maximum request body size (10 MiB).
M.MAX_BODY = 10 * 1024 * 1024
--- Default maximum size of the request line plus headers.
M.MAX_HEAD = 64 * 1024

M.reasons = {
  [100] = "Continue", [200] = "OK", [201] = "Created", [204] = "No Content",
  [301] = "Moved Permanently", [302] = "Found", [304] = "Not Modified",
  [400] = "Bad Request", [401] = "Unauthorized", [403] = "Forbidden", [404] = "Not Found",
  [405] = "Method Not Allowed", [408] = "Request Timeout", [409] = "Conflict", [411] = "Length Required",
  [413] = "Payload Too Large", [417] = "Expectation Failed",
  [429] = "Too Many Requests", [431] = "Request Header Fields Too Large",
  [499] = "Client Closed Request", [500] = "Internal Server Error", [501] = "Not Implemented",
  [502] = "Bad Gateway", [503] = "Service Unavailable", [504] = "Gateway Timeout",
  [505] = "HTTP Version Not Supported",
}

local Parser = {}
Parser.__index = Parser

--- A new parser.
-- @param opts optional { max_body = bytes, max_head = bytes }
-- @return parser
function M.new_parser(opts)
  opts = opts or {}
  local p = setmetatable({
    max_body = opts.max_body or M.MAX_BODY,
    max_head = opts.max_head or M.MAX_HEAD,
    events = {}, ev_first = 1, ev_last = 0,
  }, Parser)
  p:reset()
  return p
end

--- Forget all state (buffer, queued events) so the parser can serve a new connection.
function Parser:reset()
  self.buf, self.pos = "", 1
  self.scan = 1               -- where to resume looking for the end of the head
  self.state = "head"
  self.req = nil
  self.parts, self.nparts = nil, 0
  self.remaining = 0
  self.total = 0
  self.events, self.ev_first, self.ev_last = {}, 1, 0
  self.dead = false
end

function Parser:push(ev)
  self.ev_last = self.ev_last + 1
  self.events[self.ev_last] = ev
end

--- The next queued event, or nil.
function Parser:next()
  local i = self.ev_first
  if i > self.ev_last then return nil end
  local ev = self.events[i]
  self.events[i] = nil
  self.ev_first = i + 1
  return ev
end

--- Whether the parser is in the middle of a request (bytes of an unfinished request are buffered).
function Parser:partial()
  return self.state ~= "head" or self.pos <= #self.buf
end

function Parser:fail(status, message)
  self.dead = true
  self.state = "dead"
  self.buf, self.pos, self.parts = "", 1, nil
  self:push({ type = "error", status = status, message = message })
end

local function hexval(c)
  local n = c:byte()
  if n >= 48 and n <= 57 then return n - 48 end
  if n >= 65 and n <= 70 then return n - 55 end
  return n - 87
end

--- Percent-decode a path, keeping %2F (an encoded slash) as is.
function M.decode_path(path)
  if not find(path, "%", 1, true) then return path end
  return (path:gsub("%%(%x)(%x)", function(a, b)
    local v = hexval(a) * 16 + hexval(b)
    if v == 47 then return nil end
    return string.char(v)
  end))
end

local TOKEN = "^[!#$%%&'*+%-.^_`|~%w]+$"

-- Parse the head (request line and headers, without the final CRLF CRLF); returns the request table
-- or nil, status, message.
local function parse_head(head)
  local lines, n = {}, 0
  local i = 1
  while true do
    local s, e = find(head, "\r\n", i, true)
    n = n + 1
    if not s then lines[n] = sub(head, i); break end
    lines[n] = sub(head, i, s - 1)
    i = e + 1
  end
  local method, target, major, minor = lines[1]:match("^(%S+) (%S+) HTTP/(%d)%.(%d)$")
  if not method or not find(method, TOKEN) then return nil, 400, "malformed request line" end
  if major ~= "1" then return nil, 505, "HTTP version not supported" end
  local version = major .. "." .. minor
  local headers = {}
  for k = 2, n do
    local line = lines[k]
    local name, value = line:match("^([^:]+):[ \t]*(.-)[ \t]*$")
    if not name or not find(name, TOKEN) then return nil, 400, "malformed header line" end
    if find(value, "[%z\r\n]") then return nil, 400, "invalid character in a header value" end
    name = lower(name)
    local old = headers[name]
    if old == nil then
      headers[name] = value
    elseif name == "content-length" then
      if old ~= value then return nil, 400, "conflicting Content-Length headers" end
    elseif name == "host" then
      return nil, 400, "duplicate Host header"
    else
      headers[name] = old .. ", " .. value
    end
  end
  local path, query = target, ""
  if find(target, "^[hH][tT][tT][pP][sS]?://") then
    path = target:match("^[^:]+://[^/?#]*(.*)$")
    if path == "" then path = "/" end
  elseif target == "*" then
    if method ~= "OPTIONS" then return nil, 400, "malformed request target" end
  elseif sub(target, 1, 1) ~= "/" then
    return nil, 400, "malformed request target"
  end
  local q = find(path, "?", 1, true)
  if q then path, query = sub(path, 1, q - 1), sub(path, q + 1) end
  local hash = find(query, "#", 1, true)
  if hash then query = sub(query, 1, hash - 1) end
  local conn = lower(headers["connection"] or "")
  local keep_alive
  if version == "1.0" then
    keep_alive = find(conn, "keep%-alive") ~= nil
  else
    keep_alive = not find(conn, "close")
  end
  return {
    type = "request", method = method, target = target, raw_path = path, path = M.decode_path(path),
    query = query, version = version, headers = headers, keep_alive = keep_alive,
  }
end

-- Decide how the body is framed; returns true or nil, status, message.
function Parser:frame(req)
  local h = req.headers
  local te, cl = h["transfer-encoding"], h["content-length"]
  if te then
    if cl then return nil, 400, "both Transfer-Encoding and Content-Length" end
    if req.version == "1.0" then return nil, 400, "Transfer-Encoding in an HTTP/1.0 request" end
    local codings = lower(te)
    if not find(codings, "^%s*chunked%s*$") then
      if find(codings, "chunked") then return nil, 400, "chunked must be the last transfer coding" end
      return nil, 501, "unsupported transfer coding"
    end
    req.chunked = true
  elseif cl then
    if not find(cl, "^%d+$") or #cl > 15 then return nil, 400, "invalid Content-Length" end
    req.length = tonumber(cl)
    if req.length > self.max_body then return nil, 413, "request body too large" end
  else
    req.length = 0
  end
  local expect = h["expect"]
  if expect and req.version == "1.1" then
    if lower(expect) ~= "100-continue" then return nil, 417, "unsupported expectation" end
    req.expect_continue = true
  end
  return true
end

function Parser:finish()
  local req = self.req
  req.body = self.nparts == 1 and self.parts[1] or concat(self.parts, "", 1, self.nparts)
  req.length, req.chunked = nil, nil
  self.req, self.parts, self.nparts = nil, nil, 0
  self.state = "head"
  self.scan = self.pos
  self:push(req)
end

-- Move up to `want` buffered bytes into the body pieces; returns how many were taken.
function Parser:take(want)
  local avail = #self.buf - self.pos + 1
  if avail <= 0 or want <= 0 then return 0 end
  local n = avail < want and avail or want
  local piece
  if self.pos == 1 and n == #self.buf then piece = self.buf else piece = sub(self.buf, self.pos, self.pos + n - 1) end
  self.nparts = self.nparts + 1
  self.parts[self.nparts] = piece
  self.pos = self.pos + n
  return n
end

--- Feed bytes received on the connection; queue any events they complete.
-- @param data string
function Parser:feed(data)
  if self.dead then return end
  if data and data ~= "" then
    if self.pos > #self.buf then
      self.buf, self.pos, self.scan = data, 1, 1
    else
      self.scan = self.scan - self.pos + 1
      if self.scan < 1 then self.scan = 1 end
      self.buf, self.pos = sub(self.buf, self.pos) .. data, 1
    end
  end
  self:run()
end

function Parser:run()
  while not self.dead do
    local state = self.state
    if state == "head" then
      -- skip empty lines before a request line (RFC 9112 2.2)
      while sub(self.buf, self.pos, self.pos + 1) == "\r\n" do self.pos = self.pos + 2 end
      if self.pos > #self.buf then return end
      local from = self.scan > self.pos + 3 and self.scan - 3 or self.pos
      local s, e = find(self.buf, "\r\n\r\n", from, true)
      if not s then
        if #self.buf - self.pos + 1 > self.max_head then return self:fail(431, "request header too large") end
        self.scan = #self.buf + 1
        return
      end
      if s - self.pos > self.max_head then return self:fail(431, "request header too large") end
      local req, status, msg = parse_head(sub(self.buf, self.pos, s - 1))
      if not req then return self:fail(status, msg) end
      self.pos = e + 1
      local ok, st, m = self:frame(req)
      if not ok then return self:fail(st, m) end
      self.req, self.parts, self.nparts, self.total = req, {}, 0, 0
      if req.expect_continue and (req.chunked or req.length > 0) then
        self:push({ type = "continue" })
      end
      if req.chunked then
        self.state = "chunk_size"
      else
        self.remaining = req.length
        self.state = "body"
      end
    elseif state == "body" then
      local n = self:take(self.remaining)
      self.remaining = self.remaining - n
      if self.remaining > 0 then
        self.buf, self.pos = "", 1
        return
      end
      self:finish()
    elseif state == "chunk_size" then
      local s, e = find(self.buf, "\r\n", self.pos, true)
      if not s then
        if #self.buf - self.pos + 1 > 1024 then return self:fail(400, "malformed chunk size line") end
        return
      end
      local line = sub(self.buf, self.pos, s - 1)
      local hex = line:match("^(%x+)[ \t]*;.*$") or line:match("^(%x+)[ \t]*$")
      if not hex then return self:fail(400, "malformed chunk size") end
      hex = hex:gsub("^0+(%x)", "%1")
      if #hex > 8 then return self:fail(413, "request body too large") end
      local size = tonumber(hex, 16)
      self.pos = e + 1
      if size == 0 then
        self.state = "trailer"
      else
        self.total = self.total + size
        if self.total > self.max_body then return self:fail(413, "request body too large") end
        self.remaining = size
        self.state = "chunk_data"
      end
    elseif state == "chunk_data" then
      local n = self:take(self.remaining)
      self.remaining = self.remaining - n
      if self.remaining > 0 then
        self.buf, self.pos = "", 1
        return
      end
      self.state = "chunk_crlf"
    elseif state == "chunk_crlf" then
      if #self.buf - self.pos + 1 < 2 then return end
      if sub(self.buf, self.pos, self.pos + 1) ~= "\r\n" then return self:fail(400, "malformed chunk") end
      self.pos = self.pos + 2
      self.state = "chunk_size"
    elseif state == "trailer" then
      local s, e = find(self.buf, "\r\n", self.pos, true)
      if not s then
        if #self.buf - self.pos + 1 > self.max_head then return self:fail(431, "trailer too large") end
        return
      end
      local line = sub(self.buf, self.pos, s - 1)
      self.pos = e + 1
      if line == "" then
        self:finish()
      elseif not line:match("^[!#$%%&'*+%-.^_`|~%w]+:") then
        return self:fail(400, "malformed trailer")
      end
    else
      return
    end
  end
end

-- ------------------------------------------------------------------------------------------
-- responses

local wdays = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" }
local long_wdays = { "Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday" }
local months = { "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" }
local date_cache, date_at = nil, nil

--- The HTTP date (RFC 9110) of `t` seconds since the epoch, in one of its three forms.
-- @param t epoch seconds (integer)
-- @param form `"imf-fixdate"` (default: `Sun, 06 Nov 1994 08:49:37 GMT`), `"rfc850"`
--   (`Sunday, 06-Nov-94 08:49:37 GMT`) or `"asctime"` (`Sun Nov  6 08:49:37 1994`)
-- @return string
function M.format_date(t, form)
  local d = os.date("!*t", t)   -- gmtime: the fields are UTC
  if form == "rfc850" then
    return format("%s, %02d-%s-%02d %02d:%02d:%02d GMT", long_wdays[d.wday], d.day, months[d.month], d.year % 100,
      d.hour, d.min, d.sec)
  elseif form == "asctime" then
    return format("%s %s %2d %02d:%02d:%02d %04d", wdays[d.wday], months[d.month], d.day, d.hour, d.min, d.sec,
      d.year)
  end
  return format("%s, %02d %s %04d %02d:%02d:%02d GMT", wdays[d.wday], d.day, months[d.month], d.year,
    d.hour, d.min, d.sec)
end

--- The current time as an HTTP date (IMF-fixdate), cached per second.
function M.date()
  local now = os.time()
  if now ~= date_at then
    date_cache = M.format_date(now)
    date_at = now
  end
  return date_cache
end

--- Serialise the status line and headers of a response (ending with the blank line).
-- `headers` is a map {Name = value} (a value may be an array for repeated headers). Content-Length
-- is set from `body_length` unless given; `close` adds `Connection: close`.
-- @param status HTTP status
-- @param headers map or nil
-- @param body_length number of body bytes
-- @param opts optional { close = bool, version = "1.1", keep_alive_10 = bool }
-- @return string
function M.head(status, headers, body_length, opts)
  opts = opts or {}
  local out, n = {}, 1
  out[1] = format("HTTP/1.1 %d %s\r\n", status, M.reasons[status] or "Unknown")
  local names = {}
  local has_len, has_date = false, false
  if headers then
    for k in pairs(headers) do names[#names + 1] = k end
    table.sort(names)
  end
  for _, k in ipairs(names) do
    local lk = lower(k)
    if lk == "content-length" then has_len = true end
    if lk == "date" then has_date = true end
    if lk ~= "connection" and lk ~= "transfer-encoding" then
      local v = headers[k]
      if type(v) == "table" then
        for _, x in ipairs(v) do n = n + 1; out[n] = k .. ": " .. tostring(x) .. "\r\n" end
      else
        n = n + 1; out[n] = k .. ": " .. tostring(v) .. "\r\n"
      end
    end
  end
  if not has_date then n = n + 1; out[n] = "Date: " .. M.date() .. "\r\n" end
  if not has_len then n = n + 1; out[n] = "Content-Length: " .. format("%d", body_length or 0) .. "\r\n" end
  if opts.close then
    n = n + 1; out[n] = "Connection: close\r\n"
  elseif opts.keep_alive_10 then
    n = n + 1; out[n] = "Connection: keep-alive\r\n"
  end
  n = n + 1; out[n] = "\r\n"
  return concat(out, "", 1, n)
end

--- Serialise a whole response { status =, headers =, body = }.
-- @param resp response table
-- @param opts as for `head`
-- @return string
function M.serialize(resp, opts)
  local body = resp.body or ""
  return M.head(resp.status, resp.headers, #body, opts) .. body
end

--- The interim response sent for `Expect: 100-continue`.
M.CONTINUE = "HTTP/1.1 100 Continue\r\n\r\n"

return M
