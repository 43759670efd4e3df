--- Long-running operations (tuned model creation): handles with `done`, `refresh`, `wait`, `result`.
--
--    local op = assert(client:create_tuned_model(body))
--    local tuned, err = op:wait{ interval = 5, on_progress = function(md)
--      print(md.completedPercent) end }
--
-- Fields: `.name`, `.metadata` (the decoded CreateTunedModelMetadata, `@type` kept; updated by each
-- poll), `.error` (an error object when the operation failed), `.response` (the TunedModel when it
-- succeeded). An operation is polled with `GET /v1beta3/{name}`.
-- @module gemini.operation

local core = require("gemini.core")
local errors = require("gemini.errors")

local M = {}

--- gRPC canonical codes by number (an Operation's error carries the number).
M.CODES = { [0] = "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
  "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED",
  "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED" }

local Op = {}

local function client_mod() return require("gemini.client") end

local function apply(op, client, t)
  local json = client.json
  op.metadata = type(t.metadata) == "table" and json:decode_any(t.metadata) or nil
  op._done = t.done == true
  op.response = nil
  op.error = nil
  if type(t.response) == "table" then
    op.response = json:decode_any(t.response)
    op._done = true
  end
  if type(t.error) == "table" then
    local e = t.error
    local code = tonumber(e.code)
    local status = type(e.status) == "string" and e.status or (code and M.CODES[code]) or "UNKNOWN"
    op.error = errors.new({ status = status, rpc_code = code, message = type(e.message) == "string" and e.message
      or status, details = type(e.details) == "table" and e.details or nil, method = "GET",
      path = "/v1beta3/" .. op.name, rpc = "getOperation" }, client._secrets)
    if type(e.details) == "table" then
      for _, d in ipairs(e.details) do
        if type(d) == "table" and tostring(d["@type"]):match("ErrorInfo$") then op.error.reason = d.reason end
      end
    end
    op._done = true
  end
end

local registered = false
local function register()
  if registered then return end
  core.handle_methods("operation", Op)
  registered = true
end

--- Makes an operation handle from a decoded google.longrunning.Operation.
-- @param client the client
-- @param t decoded table
-- @return handle, or nil plus an error object when `t` is not an operation
function M.from_wire(client, t)
  register()
  if type(t) ~= "table" or type(t.name) ~= "string" or t.name == "" then
    return nil, errors.new({ status = "UNKNOWN", code = 200,
      message = "reply is not a long-running operation (no name)", rpc = "getOperation" }, client._secrets)
  end
  local op = core.handle("operation", t.name, { client = client, kind = "operation" })
  apply(op, client, t)
  return op
end

local function check(op, fname)
  if type(op) ~= "userdata" or op.kind ~= "operation" then
    error("bad self to '" .. fname .. "' (an operation handle; call it with ':')", 3)
  end
end

--- Is the operation finished (successfully or not), as of the last poll?
-- @return boolean
function Op:done()
  check(self, "done")
  return self._done == true
end

--- Polls the operation once (`GET /v1beta3/{name}`), updating `.metadata`, `.error`, `.response`.
-- @return true, or nil plus an error object (the handle is left as it was)
function Op:refresh()
  check(self, "refresh")
  local fresh, err = self.client:_invoke("get_operation", "refresh", 0, 2, { self.name }, 1)
  if not fresh then return nil, err end
  self.metadata, self._done, self.response, self.error = fresh.metadata, fresh._done, fresh.response, fresh.error
  return true
end

--- Asks the server to cancel the operation (`POST /v1beta3/{name}:cancel`), then polls it once: a running
-- tuning ends with `.error.status == "CANCELLED"`; a finished operation is left as it was.
-- @return true, or nil plus an error object
function Op:cancel()
  check(self, "cancel")
  local ok, err = self.client:_invoke("cancel_operation", "cancel", 0, 2, { self.name }, 1)
  if not ok then return nil, err end
  return self:refresh()
end

--- The result: the TunedModel table when done, `nil, err` when it failed, `nil` while running.
function Op:result()
  check(self, "result")
  if self.error then return nil, self.error end
  if self._done then
    if self.response then return self.response end
    return nil, errors.new({ status = "UNKNOWN", message = "operation done without a response",
      path = "/v1beta3/" .. self.name, method = "GET", rpc = "getOperation" })
  end
  return nil
end

local function progress_key(md)
  if type(md) ~= "table" then return "" end
  local snaps = type(md.snapshots) == "table" and #md.snapshots or 0
  return tostring(md.completedSteps) .. "/" .. tostring(md.completedPercent) .. "/" .. tostring(md.totalSteps) ..
    "/" .. snaps
end

--- Waits until the operation is done, polling every `interval` seconds.
-- With a callback (`op:wait(opts, callback)` or `op:wait(callback)`) it does not block: polls are
-- scheduled on the client's timers and run from `client:poll()`/`client:run()` (or any blocking
-- call); `callback(tuned_model, err)` is called at the end, and `on_progress` as metadata changes.
-- `client:close()` ends a wait with a callback like a request: the callback is called once, inside
-- close, with `nil, err` (`err.status == "CANCELLED"`), whether a poll is in flight or not.
-- @param opts optional `{ interval = 5, timeout = nil (none), on_progress = function(metadata, op) end }`
-- @param callback optional function(tuned_model, err)
-- @return the final TunedModel table, or nil plus an error object (callback form: nothing)
function Op:wait(opts, callback)
  check(self, "wait")
  if type(opts) == "function" and callback == nil then opts, callback = nil, opts end
  if opts ~= nil and type(opts) ~= "table" then
    error("bad argument #1 to 'wait' (table expected, got " .. type(opts) .. ")", 2)
  end
  if callback ~= nil and type(callback) ~= "function" then
    error("bad argument #2 to 'wait' (function expected, got " .. type(callback) .. ")", 2)
  end
  opts = opts or {}
  local interval = opts.interval or 5
  if type(interval) ~= "number" or interval < 0 then
    error("bad argument #1 to 'wait' (interval must be a non-negative number)", 2)
  end
  if opts.timeout ~= nil and type(opts.timeout) ~= "number" then
    error("bad argument #1 to 'wait' (timeout must be a number)", 2)
  end
  if opts.on_progress ~= nil and type(opts.on_progress) ~= "function" then
    error("bad argument #1 to 'wait' (on_progress must be a function)", 2)
  end
  local C = client_mod()
  local client = self.client
  if client._closed then error("gemini: client is closed", 2) end
  local start = C.clock()
  local last
  local function progress()
    if not opts.on_progress or self.metadata == nil then return end
    local key = progress_key(self.metadata)
    if key ~= last then
      last = key
      opts.on_progress(self.metadata, self)
    end
  end
  local function timed_out()
    return nil, errors.new({ status = "DEADLINE_EXCEEDED", kind = "deadline",
      message = "operation not done within the wait timeout = " .. tostring(opts.timeout) .. " s",
      method = "GET", path = "/v1beta3/" .. self.name, rpc = "getOperation" })
  end
  -- the pause before the next poll, or nil when the timeout is over
  local function next_pause()
    local pause = interval
    if opts.timeout then
      local left = opts.timeout - (C.clock() - start)
      if left <= 0 then return nil end
      if pause > left then pause = left end
    end
    return pause
  end

  if callback then
    local poll_once
    -- Between two polls no request of the client is pending, so close() would not know this wait.
    -- A stand-in record sits in the client's `_open` set meanwhile (close ends every record there
    -- with CANCELLED and runs its callback once, inside close); the next poll takes it out again.
    local between
    local function schedule()
      local pause = next_pause()
      if not pause then callback(timed_out()); return end
      client._seq = client._seq + 1
      between = { _seq = client._seq, attempts = 1, method = "GET", path = "/v1beta3/" .. self.name,
                  rpc = "getOperation", callback = function(_, err) callback(nil, err) end }
      client._open[between] = true
      client:_after(pause, poll_once)
    end
    function poll_once()
      if between then
        client._open[between] = nil
        between = nil
      end
      client:_invoke("get_operation", "wait", 0, 2, { self.name, function(fresh, err)
        if not fresh then callback(nil, err); return end
        self.metadata, self._done, self.response, self.error = fresh.metadata, fresh._done, fresh.response,
          fresh.error
        progress()
        if self._done then callback(self:result()) else schedule() end
      end }, 2)
    end
    progress()
    if self._done then poll_once() else schedule() end
    return
  end

  progress()
  while not self._done do
    local pause = next_pause()
    if not pause then return timed_out() end
    client:_idle(pause)
    local ok, err = self:refresh()
    if not ok then return nil, err end
    progress()
  end
  return self:result()
end

M.methods = Op
return M
