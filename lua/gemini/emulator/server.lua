--- The emulator's TCP/HTTP server on luv: keep-alive connections, latency, faults, rate limit, stats.
--
--    local server = require("gemini.emulator.server").new{ app = app, host = "127.0.0.1", port = 0,
--                                                           latency_ms = 0, log = function(line) end }
--    local host, port = assert(server:listen())
--    server:stop(function() ... end)     -- graceful: in-flight replies finish, then every handle closes
--
-- API paths (/v1beta3/..., /v1/...) go to `app:handle(req)`; /emulator/v1/... goes to the control API.
-- @module gemini.emulator.server

local uv = require "luv"
local http = require "gemini.emulator.http"
local faults_mod = require "gemini.emulator.faults"
local control = require "gemini.emulator.control"
local status = require "gemini.emulator.status"

local M = {}

local floor = math.floor

local JOURNAL_MAX = 10000
local JOURNAL_MAX_BYTES = 64 * 1024 * 1024
local LINGER_MS = 2000
local STOP_GRACE_MS = 5000

local Server = {}
Server.__index = Server

--- A new server (not listening yet).
-- @param opts { app =, host = "127.0.0.1", port = 0, latency_ms = 0, log = function(line) or nil,
--   max_body = bytes }
function M.new(opts)
  local self = setmetatable({
    app = assert(opts.app, "app required"),
    host = opts.host or "127.0.0.1",
    port = opts.port or 0,
    latency_ms = opts.latency_ms or 0,
    log = opts.log,
    max_body = opts.max_body or http.MAX_BODY,
    faults = faults_mod.new(),
    ratelimit = faults_mod.new_ratelimit(),
    stats = { requests = 0, in_flight = 0, max_in_flight = 0, connections = 0, total_connections = 0 },
    journal = {}, journal_bytes = 0,
    conns = {}, pool = {},
    stopping = false,
  }, Server)
  return self
end

-- Run fn(...) protected: a bug in the server must cost one connection, never the process.
local unpack = table.unpack or unpack  -- luacheck: ignore 143

local function guard(conn_ref, server, fn, ...)
  local n, args = select("#", ...), { ... }
  local ok, err = xpcall(function() return fn(unpack(args, 1, n)) end, debug.traceback)
  if not ok then
    io.stderr:write("gemini-emulator: internal error: ", tostring(err), "\n")
    if conn_ref and not conn_ref.closed then pcall(server.close_conn, server, conn_ref) end
  end
end

local function now_ms()
  return uv.hrtime() / 1e6
end

--- Bind and listen; returns host, port (the real port when 0 was asked) or nil, error.
function Server:listen()
  local tcp = uv.new_tcp()
  local ok, err = tcp:bind(self.host, self.port)
  if not ok then tcp:close(); return nil, err end
  ok, err = tcp:listen(511, function(e)
    if e then return end
    self:on_connection()
  end)
  if not ok then tcp:close(); return nil, err end
  local addr = tcp:getsockname()
  self.port = addr.port
  self.listener = tcp
  return self.host, self.port
end

--- Clear all state: the app's, faults, rate limit, stats and journal.
function Server:reset_state()
  if self.app.reset then self.app:reset() end
  self.faults:clear()
  self.ratelimit:reset()
  self:reset_stats()
  self.journal, self.journal_bytes = {}, 0
end

--- Reset the counters (open connections and in-flight requests are gauges and stay).
function Server:reset_stats()
  local s = self.stats
  s.requests = 0
  s.max_in_flight = s.in_flight
  s.total_connections = s.connections
end

-- ------------------------------------------------------------------------------------------
-- connections

function Server:on_connection()
  local tcp = uv.new_tcp()
  if not self.listener:accept(tcp) then tcp:close(); return end
  if self.stopping then tcp:close(); return end
  tcp:nodelay(true)
  local parser = table.remove(self.pool) or http.new_parser({ max_body = self.max_body })
  local conn = { tcp = tcp, parser = parser, busy = false, closed = false, eof = false }
  self.conns[conn] = true
  local s = self.stats
  s.connections = s.connections + 1
  s.total_connections = s.total_connections + 1
  tcp:read_start(function(err, data)
    guard(conn, self, self.on_read, self, conn, err, data)
  end)
end

function Server:on_read(conn, err, data)
  if conn.closed then return end
  if err or not data then
    conn.eof = true
    if conn.lingering then return self:close_conn(conn) end
    if conn.pending then return self:client_gone(conn, err or "EOF") end
    if not conn.busy then self:process(conn) end
    return
  end
  if conn.lingering then return end   -- discarding after an error reply
  conn.parser:feed(data)
  if not conn.busy then self:process(conn) end
end

function Server:close_conn(conn, reset)
  if conn.closed then return end
  conn.closed = true
  conn.pending = nil
  if conn.timer then conn.timer:stop(); conn.timer:close(); conn.timer = nil end
  if conn.linger_timer then conn.linger_timer:stop(); conn.linger_timer:close(); conn.linger_timer = nil end
  if conn.api then
    conn.api = false
    self.stats.in_flight = self.stats.in_flight - 1
  end
  local tcp = conn.tcp
  if not tcp:is_closing() then
    if reset and tcp.close_reset then
      tcp:read_stop()
      tcp:close_reset()
    else
      tcp:close()
    end
  end
  self.conns[conn] = nil
  self.stats.connections = self.stats.connections - 1
  conn.parser:reset()
  if #self.pool < 64 then self.pool[#self.pool + 1] = conn.parser end
  conn.parser = nil   -- every callback checks conn.closed before touching the parser
  self:maybe_done()
end

-- Send what is queued, then shut the write side and drain input for a while before closing, so that
-- the client reads our reply instead of a reset (used after 400/413 with unread input).
function Server:linger(conn)
  if conn.closed then return end
  conn.lingering = true
  conn.shutting = true
  conn.tcp:shutdown(function()
    if conn.closed then return end
    if conn.eof then return self:close_conn(conn) end
    local t = uv.new_timer()
    conn.linger_timer = t
    t:start(LINGER_MS, 0, function() self:close_conn(conn) end)
  end)
end

-- Close gracefully once everything written has been flushed.
function Server:finish_close(conn)
  if conn.closed or conn.shutting then return end
  conn.shutting = true
  local ok = conn.tcp:shutdown(function() self:close_conn(conn) end)
  if not ok then self:close_conn(conn) end
end

function Server:process(conn)
  while not conn.busy and not conn.closed do
    local ev = conn.parser:next()
    if not ev then break end
    if ev.type == "continue" then
      conn.tcp:write(http.CONTINUE)
    elseif ev.type == "error" then
      self:respond_malformed(conn, ev)
      return
    else
      self:dispatch(conn, ev)
    end
  end
  if not conn.busy and not conn.closed and (conn.eof or (self.stopping and not conn.parser:partial())) then
    self:finish_close(conn)
  end
end

function Server:respond_malformed(conn, ev)
  local resp
  if ev.status == 413 then
    resp = status.error_response("INVALID_ARGUMENT",
      string.format("Request payload size exceeds the limit: %d bytes.", self.max_body), nil, 413)
  else
    local code = ev.status
    resp = {
      status = code,
      headers = { ["Content-Type"] = "text/html; charset=UTF-8" },
      body = "<!DOCTYPE html>\n<html lang=en>\n  <meta charset=utf-8>\n  <title>Error " .. code
        .. " (" .. (http.reasons[code] or "Error") .. ")!!1</title>\n  <p><b>" .. code
        .. ".</b> <ins>That\226\128\153s an error.</ins>\n  <p>Your client has issued a malformed or illegal"
        .. " request.  <ins>That\226\128\153s all we know.</ins>\n",
    }
  end
  if self.log then self.log(string.format("- - %d malformed request: %s", ev.status, ev.message)) end
  conn.busy = true
  conn.tcp:write(http.serialize(resp, { close = true }))
  self:linger(conn)
end

-- ------------------------------------------------------------------------------------------
-- requests

local function redact(query)
  if query == nil or query == "" then return "" end
  local q = ("&" .. query):gsub("([&;])([kK][eE][yY])=[^&;]*", "%1%2=REDACTED"):sub(2)
  return "?" .. q
end

function Server:log_request(req, code, started, note)
  if not self.log then return end
  self.log(string.format("%s %s%s %s %dms%s", req.method, req.raw_path, redact(req.query),
    code and tostring(code) or "-", floor(now_ms() - started + 0.5), note and (" " .. note) or ""))
end

local function is_api(path)
  return path:sub(1, 9) == "/v1beta3/" or path:sub(1, 4) == "/v1/"
end

local function not_found_page(path)
  return {
    status = 404,
    headers = { ["Content-Type"] = "text/html; charset=UTF-8" },
    body = "<!DOCTYPE html>\n<html lang=en>\n  <meta charset=utf-8>\n  <title>Error 404 (Not Found)!!1</title>\n"
      .. "  <p><b>404.</b> <ins>That\226\128\153s an error.</ins>\n  <p>The requested URL <code>"
      .. path:gsub("[<>&\"]", "") .. "</code> was not found on this server.  <ins>That\226\128\153s all we"
      .. " know.</ins>\n",
  }
end

function Server:journal_add(req, route)
  local entry = { method = req.method, path = req.path, query = req.query, headers = req.headers,
                  body = req.body, rpc = route }
  local j = self.journal
  j[#j + 1] = entry
  self.journal_bytes = self.journal_bytes + #req.body
  if #j > JOURNAL_MAX or self.journal_bytes > JOURNAL_MAX_BYTES then
    local keep, bytes = {}, 0
    for i = floor(#j / 2) + 1, #j do
      keep[#keep + 1] = j[i]
      bytes = bytes + #j[i].body
    end
    self.journal, self.journal_bytes = keep, bytes
  end
  return entry
end

function Server:call_app(req)
  local ok, resp = xpcall(function() return self.app:handle(req) end, debug.traceback)
  if ok and type(resp) == "table" and resp.status then return resp end
  io.stderr:write("gemini-emulator: internal error: ", tostring(resp), "\n")
  return status.error_response("INTERNAL", "Internal error encountered.")
end

-- The client went away (EOF or an error on read, a failed write) while its reply was still waiting for
-- a timer (latency, delay) or being dripped: stop at once, as a real front end does. The timers go with
-- the connection (close_conn), and so does the request's place in the in-flight gauge. A `delay` whose
-- real reply was not made yet makes it now, so the journal records the status it always did.
function Server:client_gone(conn, why)
  local p = conn.pending
  if conn.closed or not p then return end
  conn.pending = nil
  if p.produce then p.produce() end
  local note = "(client gone: " .. tostring(why) .. ")"
  self:log_request(p.req, p.entry.status, p.opts.started, p.opts.note and (p.opts.note .. " " .. note) or note)
  self:close_conn(conn)
end

-- After `ms` milliseconds (now when 0) run fn, unless the connection closed meanwhile.
function Server:after(conn, ms, fn)
  if ms <= 0 then return fn() end
  local t = uv.new_timer()
  conn.timer = t
  t:start(ms, 0, function()
    t:close()
    if conn.timer == t then conn.timer = nil end
    if not conn.closed then guard(conn, self, fn) end
  end)
end

function Server:dispatch(conn, req)
  conn.busy = true
  local started = now_ms()
  if control.is_control(req.path) then
    local resp, post = control.handle(self, req)
    self:send(conn, req, resp, { started = started, after = post })
    return
  end
  if not is_api(req.path) then
    self:send(conn, req, not_found_page(req.path), { started = started })
    return
  end
  local s = self.stats
  s.requests = s.requests + 1
  s.in_flight = s.in_flight + 1
  if s.in_flight > s.max_in_flight then s.max_in_flight = s.in_flight end
  conn.api = true
  local route
  if self.app.route then
    local ok, r = pcall(self.app.route, self.app, req.method, req.path)
    if ok then route = r end
  end
  local entry = self:journal_add(req, route)
  local rule = self.faults:match(req, route)
  local latency = self.latency_ms

  local function real()
    local resp = self.ratelimit:check(now_ms()) or self:call_app(req)
    entry.status = resp.status
    return resp
  end
  local opts = { started = started, api = true, note = rule and ("fault=" .. rule.action) or nil }
  -- until its reply is handed to the socket whole (send), the request can be given up (client_gone)
  conn.pending = { req = req, opts = opts, entry = entry }

  if not rule then
    local resp = real()
    return self:after(conn, latency, function() self:send(conn, req, resp, opts) end)
  end
  local action = rule.action
  if action == "error" then
    local resp = faults_mod.error_response(rule)
    entry.status = resp.status
    return self:after(conn, latency, function() self:send(conn, req, resp, opts) end)
  elseif action == "invalid_json" then
    local resp = faults_mod.invalid_json_response(rule)
    entry.status = resp.status
    return self:after(conn, latency, function() self:send(conn, req, resp, opts) end)
  elseif action == "html" then
    local resp = faults_mod.html_response(rule)
    entry.status = resp.status
    return self:after(conn, latency, function() self:send(conn, req, resp, opts) end)
  elseif action == "delay" then
    local made
    local function produce()
      made = made or real()
      return made
    end
    conn.pending.produce = produce
    return self:after(conn, (rule.delayMs or 1000) + latency, function()
      self:send(conn, req, produce(), opts)
    end)
  elseif action == "reset" then
    if rule.bytes == nil then
      return self:after(conn, latency, function()
        self:log_request(req, nil, started, opts.note)
        self:close_conn(conn, true)
      end)
    end
    local resp = real()
    opts.cut, opts.reset = rule.bytes, true
    return self:after(conn, latency, function() self:send(conn, req, resp, opts) end)
  elseif action == "truncate" then
    local resp = real()
    opts.cut = rule.bytes or floor(#(resp.body or "") / 2)
    return self:after(conn, latency, function() self:send(conn, req, resp, opts) end)
  elseif action == "drip" then
    local resp = real()
    opts.drip_bytes, opts.drip_ms = rule.dripBytes or 16, rule.dripIntervalMs or 50
    return self:after(conn, latency, function() self:send(conn, req, resp, opts) end)
  end
end

-- Write a response. opts: started, api, note, after (fn run once written), cut (body bytes to send before
-- closing), reset (close with RST after the cut), drip_bytes/drip_ms (send the body in timed pieces).
function Server:send(conn, req, resp, opts)
  if conn.closed then return end
  local pending = conn.pending
  conn.pending = nil
  local body = resp.body or ""
  local close = not req.keep_alive or conn.eof or self.stopping or opts.cut ~= nil
  local head = http.head(resp.status, resp.headers, #body,
    { close = close, keep_alive_10 = req.version == "1.0" and req.keep_alive })
  if req.method == "HEAD" then body = "" end
  local function done(err)
    if conn.closed then return end
    if conn.api then
      conn.api = false
      self.stats.in_flight = self.stats.in_flight - 1
    end
    if err then
      -- the client went away before the reply was written
      local note = "(client gone: " .. tostring(err) .. ")"
      self:log_request(req, resp.status, opts.started, opts.note and (opts.note .. " " .. note) or note)
      if opts.after then opts.after() end
      return self:close_conn(conn)
    end
    local note = opts.note
    if conn.eof then note = (note and (note .. " ") or "") .. "(client closed first)" end
    self:log_request(req, resp.status, opts.started, note)
    conn.busy = false
    if opts.after then opts.after() end
    if opts.cut then
      if opts.reset then return self:close_conn(conn, true) end
      return self:finish_close(conn)
    end
    if close then return self:finish_close(conn) end
    self:process(conn)
  end
  if opts.cut then
    conn.tcp:write({ head, body:sub(1, opts.cut) }, function(err) guard(conn, self, done, err) end)
  elseif opts.drip_bytes and #body > 0 then
    -- every piece but the last can still be given up: a failed write, or EOF on read, ends the drip
    conn.pending = pending
    local function gone(err)
      if err then guard(conn, self, self.client_gone, self, conn, err) end
    end
    local function write(data)
      local ok, err = conn.tcp:write(data, gone)
      if not ok then gone(err or "write failed") end
    end
    write(head)
    if conn.closed then return end
    local pos, step = 1, opts.drip_bytes
    local t = uv.new_timer()
    conn.timer = t
    local function piece()
      if conn.closed then return end
      local last = pos + step > #body
      local chunk = body:sub(pos, pos + step - 1)
      pos = pos + step
      if last then
        t:stop(); t:close()
        if conn.timer == t then conn.timer = nil end
        conn.pending = nil
        conn.tcp:write(chunk, function(err) guard(conn, self, done, err) end)
      else
        write(chunk)
      end
    end
    piece()
    if not t:is_closing() then
      t:start(opts.drip_ms, opts.drip_ms, function() guard(conn, self, piece) end)
    end
  else
    conn.tcp:write({ head, body }, function(err) guard(conn, self, done, err) end)
  end
end

-- ------------------------------------------------------------------------------------------
-- stopping

function Server:maybe_done()
  if not self.stopping or next(self.conns) ~= nil or self.done then return end
  self.done = true
  if self.stop_timer then self.stop_timer:stop(); self.stop_timer:close(); self.stop_timer = nil end
  local cbs = self.on_stopped or {}
  self.on_stopped = nil
  for _, cb in ipairs(cbs) do cb() end
end

--- Stop: no new connections, idle connections close, busy ones close after their reply
-- (forced after 5 s); `cb` runs once every connection is closed.
-- @param cb optional function
function Server:stop(cb)
  self.on_stopped = self.on_stopped or {}
  if cb then self.on_stopped[#self.on_stopped + 1] = cb end
  if self.stopping then return self:maybe_done() end
  self.stopping = true
  if self.listener and not self.listener:is_closing() then self.listener:close() end
  local t = uv.new_timer()
  self.stop_timer = t
  t:start(STOP_GRACE_MS, 0, function()
    for conn in pairs(self.conns) do self:close_conn(conn) end
  end)
  for conn in pairs(self.conns) do
    if not conn.busy and not conn.parser:partial() then self:finish_close(conn) end
  end
  self:maybe_done()
end

return M
