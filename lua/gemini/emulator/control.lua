--- The emulator's control API under /emulator/v1/ (no key, no latency, no faults, no rate limit).
--
--    POST   /emulator/v1/reset            clear all state (app, faults, rate limit, stats, journal)
--    GET|POST|DELETE /emulator/v1/faults list | append {"rules":[...]} | clear
--    GET|POST|DELETE /emulator/v1/ratelimit  show | set {"requests":N,"windowMs":M} | disable
--    GET    /emulator/v1/stats            {"requests","inFlight","maxInFlight","connections",...}
--    POST   /emulator/v1/stats/reset
--    GET|DELETE /emulator/v1/requests     the journal of API requests (newest last) | clear it
--    POST   /emulator/v1/shutdown         reply, then stop the server
-- @module gemini.emulator.control

local json = require "gemini.emulator.json"
local status = require "gemini.emulator.status"

local M = {}

M.PREFIX = "/emulator/v1/"

local function ok(value)
  return status.json_response(200, value or json.object(), true)
end

local function bad(message)
  return status.error_response("INVALID_ARGUMENT", message)
end

local function decode_body(req)
  if req.body == nil or req.body:match("^%s*$") then return json.object() end
  local v, err = json.decode(req.body)
  if v == nil and err then return nil, bad("Invalid JSON payload received. " .. err) end
  return v
end

local function stats_object(server)
  local s = server.stats
  return json.object("requests", s.requests, "inFlight", s.in_flight, "maxInFlight", s.max_in_flight,
    "connections", s.connections, "totalConnections", s.total_connections)
end

local function journal_array(server)
  local out = json.array()
  for i, e in ipairs(server.journal) do
    local h = json.object()
    local names = {}
    for k in pairs(e.headers) do names[#names + 1] = k end
    table.sort(names)
    for _, k in ipairs(names) do json.set(h, k, e.headers[k]) end
    out[i] = json.object("method", e.method, "path", e.path, "query", e.query, "rpc", e.rpc or json.null,
      "headers", h, "body", e.body, "status", e.status or json.null)
  end
  return out
end

local handlers = {}

handlers["reset"] = {
  POST = function(server)
    server:reset_state()
    return ok()
  end,
}

handlers["faults"] = {
  GET = function(server) return ok(json.object("rules", server.faults:list())) end,
  POST = function(server, req)
    local body, err = decode_body(req)
    if not body then return err end
    local rules = body
    if not json.is_array(body) then
      rules = body.rules
      if json.is_object(rules) and #json.keys(rules) == 0 then rules = json.array() end
    end
    local n, msg = server.faults:add(rules)
    if not n then return bad(msg) end
    return ok(json.object("added", n, "rules", server.faults:list()))
  end,
  DELETE = function(server)
    server.faults:clear()
    return ok()
  end,
}

handlers["ratelimit"] = {
  GET = function(server) return ok(server.ratelimit:describe()) end,
  POST = function(server, req)
    local body, err = decode_body(req)
    if not body then return err end
    local done, msg = server.ratelimit:configure(body)
    if not done then return bad(msg) end
    return ok(server.ratelimit:describe())
  end,
  DELETE = function(server)
    server.ratelimit:reset()
    return ok(server.ratelimit:describe())
  end,
}

handlers["stats"] = {
  GET = function(server) return ok(stats_object(server)) end,
}

handlers["stats/reset"] = {
  POST = function(server)
    server:reset_stats()
    return ok(stats_object(server))
  end,
}

handlers["requests"] = {
  GET = function(server) return ok(journal_array(server)) end,
  DELETE = function(server)
    server.journal = {}
    server.journal_bytes = 0
    return ok()
  end,
}

handlers["shutdown"] = {
  POST = function(server)
    return ok(), function() server:stop() end
  end,
}

--- Is this path part of the control API?
-- @param path request path
function M.is_control(path)
  return path:sub(1, #M.PREFIX) == M.PREFIX or path == "/emulator/v1"
end

--- Handle a control request.
-- @param server the server (state: app, faults, ratelimit, stats, journal; methods reset_state,
--   reset_stats, stop)
-- @param req parsed request
-- @return response, and optionally a function to run once the response is written
function M.handle(server, req)
  local name = req.path:sub(#M.PREFIX + 1):gsub("/+$", "")
  local h = handlers[name]
  if not h then
    return status.error_response("NOT_FOUND", "Unknown control endpoint " .. req.path .. ".")
  end
  local fn = h[req.method]
  if not fn then
    local allowed = {}
    for m in pairs(h) do allowed[#allowed + 1] = m end
    table.sort(allowed)
    local resp = status.error_response("INVALID_ARGUMENT",
      "Method " .. req.method .. " is not allowed on " .. req.path .. ".", nil, 405)
    resp.headers["Allow"] = table.concat(allowed, ", ")
    return resp
  end
  return fn(server, req)
end

return M
