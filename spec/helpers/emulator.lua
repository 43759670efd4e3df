--- Spec helper: start a real `bin/gemini-emulator` process for a spec file and talk to it.
--
--    local emu = require("spec.helpers.emulator").start{ "--api-key", "k1=alice@example.com", latency = 200 }
--    emu.url, emu.port, emu.host, emu.pid
--    emu:control("POST", "/emulator/v1/faults", { rules = { ... } })   --> status, decoded body
--    emu:request{ method =, path =, headers =, body =, timeout =, args = }  --> status, headers, body
--    emu:raw("GET / HTTP/1.1\r\n\r\n", { timeout = 2 })                 --> bytes received, how it ended
--    emu:stop()
--
-- In a describe block, helper.with_emulator{...} starts it in setup, resets it before each test and
-- stops it in teardown; emu:client{...} makes a gemini client for it (key and base_url filled in);
-- emu:requests(), emu:last_request(), emu:stats(), emu:reset(), emu:fault(rule), emu:api(...) wrap
-- the control API and JSON calls (see each function below).
--
-- The emulator is spawned in the background with its stdout/stderr in temporary files; the helper waits
-- (with a timeout) for its listening line. A watchdog shell loop kills the emulator if the test process
-- dies without calling stop(), so no orphan survives a crashed or interrupted busted run.
-- @module spec.helpers.emulator

local M = {}

local cjson = require("cjson").new()
local has_socket, socket = pcall(require, "socket")

-- luassert (busted's assert), loaded when a helper first asserts
local function luassert() return require("luassert") end

local Emulator = {}
Emulator.__index = Emulator

local function shquote(s)
  return "'" .. (tostring(s):gsub("'", "'\\''")) .. "'"
end

local function sleep(s)
  if has_socket then socket.sleep(s) else os.execute("sleep " .. s) end
end

local function readfile(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

local function writefile(path, data)
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
end

-- os.execute's result as (ok, code) on every Lua version.
local function execute(cmd)
  local a, _, c = os.execute(cmd)
  if type(a) == "number" then return a == 0, a >= 256 and math.floor(a / 256) or a end  -- 5.1: wait status
  return a == true, c or (a and 0 or 1)
end

local function repo_root()
  local src = debug.getinfo(1, "S").source
  local dir = src:match("^@(.*)spec/helpers/emulator%.lua$")
  if dir == nil or dir == "" then return "." end
  return (dir:gsub("/$", ""))
end

local function my_pid()
  local stat = readfile("/proc/self/stat")
  return stat and stat:match("^(%d+)")
end

local function tmpbase()
  local name = os.tmpname()
  os.remove(name)
  return name
end

local function alive(pid)
  return (execute("kill -0 " .. pid .. " 2>/dev/null"))
end

--- Start an emulator. Array items are extra command line arguments; named options:
-- `latency`, `tuning_step_ms`, `seed`, `host`, `port` (default 0), `verbose` (boolean),
-- `lua` (interpreter, default $GEMINI_EMULATOR_LUA or "lua5.4"), `timeout` (seconds to wait for the
-- listening line, default 10).
-- @param opts table
-- @return emulator object
local launch

function M.start(opts)
  return launch(setmetatable({}, Emulator), opts)
end

-- Start the emulator process behind `self` (a fresh object, or the one with_emulator handed out).
launch = function(self, opts)
  opts = opts or {}
  local root = repo_root()
  local args = { "--port", tostring(opts.port or 0) }
  if opts.host then args[#args + 1] = "--host"; args[#args + 1] = opts.host end
  if opts.latency then args[#args + 1] = "--latency"; args[#args + 1] = tostring(opts.latency) end
  if opts.tuning_step_ms then
    args[#args + 1] = "--tuning-step-ms"; args[#args + 1] = tostring(opts.tuning_step_ms)
  end
  if opts.seed then args[#args + 1] = "--seed"; args[#args + 1] = tostring(opts.seed) end
  if opts.verbose then args[#args + 1] = "--verbose" end
  for _, v in ipairs(opts) do args[#args + 1] = tostring(v) end
  local quoted = {}
  for i, v in ipairs(args) do quoted[i] = shquote(v) end

  local base = tmpbase()
  self.out_file, self.err_file, self.pid_file, self.tmp = base .. ".out", base .. ".err", base .. ".pid", base
  self.root = root
  -- the key of the first --api-key KEY[=EMAIL]: what client() and api() send unless told otherwise
  for i, v in ipairs(args) do
    if v == "--api-key" and args[i + 1] then self.key = args[i + 1]:match("^[^=]*"); break end
  end
  self.key = self.key or "k"
  local parent = my_pid()
  self.rc_file = base .. ".rc"
  local watchdog = ""
  if parent then
    watchdog = " ( while kill -0 " .. parent .. " 2>/dev/null && kill -0 $E 2>/dev/null; do sleep 1; done;"
      .. " kill $E 2>/dev/null ) </dev/null >/dev/null 2>&1 &"
  end
  -- a subshell runs the emulator in the background, records its pid, then waits for its exit status
  local lua = opts.lua or os.getenv("GEMINI_EMULATOR_LUA") or "lua5.4"
  local cmd = "cd " .. shquote(root) .. " && ( " .. shquote(lua) .. " bin/gemini-emulator "
    .. table.concat(quoted, " ") .. " </dev/null >" .. shquote(self.out_file) .. " 2>" .. shquote(self.err_file)
    .. " & E=$!; echo $E >" .. shquote(self.pid_file .. ".tmp") .. "; mv " .. shquote(self.pid_file .. ".tmp")
    .. " " .. shquote(self.pid_file) .. ";" .. watchdog
    .. " wait $E; echo $? >" .. shquote(self.rc_file .. ".tmp") .. "; mv " .. shquote(self.rc_file .. ".tmp")
    .. " " .. shquote(self.rc_file) .. " ) </dev/null >/dev/null 2>&1 &"
  assert(execute(cmd), "could not spawn the emulator")
  local pid_deadline = os.time() + 5
  while not self.pid do
    self.pid = tonumber((readfile(self.pid_file) or ""):match("%d+"))
    if not self.pid then
      if os.time() > pid_deadline then error("the emulator was not spawned") end
      sleep(0.01)
    end
  end

  local deadline = os.time() + (opts.timeout or 10)
  local n = 0
  while true do
    local out = readfile(self.out_file) or ""
    local line = out:match("^([^\n]*)\n")
    if line then
      local url, host, port = line:match("^gemini%-emulator listening on (http://([^/]+):(%d+))$")
      if not url then
        self:stop()
        error("unexpected first line from the emulator: " .. line)
      end
      self.url, self.host, self.port = url, host, tonumber(port)
      self.listening_line = line
      return self
    end
    n = n + 1
    if n % 10 == 0 and not alive(self.pid) then
      local err = readfile(self.err_file) or ""
      self:stop()
      error("the emulator exited before listening: " .. err)
    end
    if os.time() > deadline then
      local err = readfile(self.err_file) or ""
      self:stop()
      error("the emulator did not print its listening line in time: " .. err)
    end
    sleep(0.02)
  end
end

--- Whether the emulator process still runs.
function Emulator:alive()
  return self.pid ~= nil and alive(self.pid)
end

--- Everything the emulator wrote on stderr so far (the --verbose log).
function Emulator:stderr()
  if self.stopped then return self.final_stderr or "" end
  return readfile(self.err_file) or ""
end

--- Everything the emulator wrote on stdout so far.
function Emulator:stdout()
  if self.stopped then return self.final_stdout or "" end
  return readfile(self.out_file) or ""
end

--- Send a signal ("TERM", "INT", "KILL") to the emulator.
function Emulator:signal(sig)
  return execute("kill -" .. sig .. " " .. self.pid .. " 2>/dev/null")
end

--- Wait up to `timeout` seconds for the process to exit; returns true when it is gone.
function Emulator:wait_exit(timeout)
  local deadline = os.time() + (timeout or 5)
  while alive(self.pid) do
    if os.time() > deadline then return false end
    sleep(0.02)
  end
  return true
end

--- The emulator's exit status once it has exited (waits up to `timeout` seconds, default 5), or nil.
function Emulator:exit_code(timeout)
  local deadline = os.time() + (timeout or 5)
  while true do
    local rc = tonumber((readfile(self.rc_file) or ""):match("%d+"))
    if rc then return rc end
    if os.time() > deadline then return nil end
    sleep(0.02)
  end
end

--- Stop the emulator (SIGTERM, then SIGKILL after 5 s) and remove the temporary files (stdout() and
-- stderr() still return what it wrote). Idempotent.
function Emulator:stop()
  if self.stopped then return end
  self.stopped = true
  if self.pid then
    self:signal("TERM")
    if not self:wait_exit(5) then self:signal("KILL"); self:wait_exit(2) end
  end
  self:exit_code(2)
  self.final_stdout, self.final_stderr = readfile(self.out_file) or "", readfile(self.err_file) or ""
  for _, f in ipairs({ self.out_file, self.err_file, self.pid_file, self.rc_file, self.tmp .. ".body",
                       self.tmp .. ".hdr", self.tmp .. ".resp", self.tmp .. ".cerr" }) do
    os.remove(f)
  end
end

-- Parse curl's -D dump: the last header block (after any 100 Continue).
local function parse_headers(dump)
  local status, headers = nil, {}
  for line in (dump or ""):gmatch("([^\r\n]*)\r?\n") do
    local code = line:match("^HTTP/[%d%.]+ (%d%d%d)")
    if code then
      status, headers = tonumber(code), {}
    elseif line ~= "" then
      local k, v = line:match("^([^:]+):%s*(.-)%s*$")
      if k then headers[k:lower()] = v end
    end
  end
  return status, headers
end

--- Raw HTTP through the curl command line tool.
-- `req.headers` is a map {name = value} or an array of "Name: value" lines; a body gets
-- `Content-Type: application/json` unless one is given. `req.args` is an array of extra curl arguments,
-- `req.timeout` the curl --max-time (default 30).
-- @return status (number, or nil when curl failed), headers (lowercased names), body, curl error message
function Emulator:request(req)
  local method = req.method or "GET"
  local cmd = { "curl", "-sS", "-X", method, "--max-time", tostring(req.timeout or 30),
                "-D", self.tmp .. ".hdr", "-o", self.tmp .. ".resp" }
  local have_ct = false
  local function header(line)
    if line:lower():match("^content%-type:") then have_ct = true end
    cmd[#cmd + 1] = "-H"; cmd[#cmd + 1] = line
  end
  if req.headers then
    if req.headers[1] then
      for _, h in ipairs(req.headers) do header(h) end
    else
      local names = {}
      for k in pairs(req.headers) do names[#names + 1] = k end
      table.sort(names)
      for _, k in ipairs(names) do header(k .. ": " .. req.headers[k]) end
    end
  end
  if req.body then
    writefile(self.tmp .. ".body", req.body)
    cmd[#cmd + 1] = "--data-binary"; cmd[#cmd + 1] = "@" .. self.tmp .. ".body"
    if not have_ct then cmd[#cmd + 1] = "-H"; cmd[#cmd + 1] = "Content-Type: application/json" end
  end
  for _, a in ipairs(req.args or {}) do cmd[#cmd + 1] = a end
  cmd[#cmd + 1] = self.url .. (req.path or "/")
  local q = {}
  for i, v in ipairs(cmd) do q[i] = shquote(v) end
  os.remove(self.tmp .. ".hdr"); os.remove(self.tmp .. ".resp")
  local ok, code = execute(table.concat(q, " ") .. " 2>" .. shquote(self.tmp .. ".cerr"))
  local status, headers = parse_headers(readfile(self.tmp .. ".hdr"))
  local body = readfile(self.tmp .. ".resp") or ""
  if not ok then
    local err = (readfile(self.tmp .. ".cerr") or ""):gsub("%s+$", "")
    return nil, headers, body, "curl exit " .. tostring(code) .. ": " .. err, status
  end
  return status, headers, body
end

--- Call the control API. `body` is a table encoded as JSON (or a string sent as is).
-- @return status, decoded JSON body (or the raw body when it is not JSON), headers
function Emulator:control(method, path, body)
  local data
  if type(body) == "table" then data = cjson.encode(body) elseif body ~= nil then data = tostring(body) end
  local status, headers, raw, err = self:request{ method = method, path = path, body = data }
  if not status then error("control " .. method .. " " .. path .. " failed: " .. tostring(err)) end
  local ok, decoded = pcall(cjson.decode, raw)
  if ok then return status, decoded, headers end
  return status, raw, headers
end

-- A shallow copy of an options table (nil: an empty one), so the caller's table is never changed.
local function copy(t)
  local o = {}
  for k, v in pairs(t or {}) do o[k] = v end
  return o
end

--- The request journal, oldest first: `{ method, path, query, rpc, headers, body, status }` each.
function Emulator:requests()
  local _, j = self:control("GET", "/emulator/v1/requests")
  return j
end

--- The newest entry of the request journal (nil when it is empty).
function Emulator:last_request()
  local j = self:requests()
  return j[#j]
end

--- The emulator's request stats (`requests`, `inFlight`, `maxInFlight`, `connections`, `totalConnections`).
function Emulator:stats()
  local _, s = self:control("GET", "/emulator/v1/stats")
  return s
end

--- Clear all emulator state (models, permissions, faults, rate limit, stats, journal).
function Emulator:reset()
  return self:control("POST", "/emulator/v1/reset")
end

--- Add one fault rule; asserts that the emulator took it (200).
function Emulator:fault(rule)
  local status, body = self:control("POST", "/emulator/v1/faults", { rules = { rule } })
  luassert().equal(200, status, cjson.encode(body))
end

--- A JSON exchange: `body` a table (encoded) or a string; `headers` as for request().
-- @return status, decoded body (nil when not JSON), raw body, headers
function Emulator:json(method, path, headers, body)
  if type(body) == "table" then body = cjson.encode(body) end
  local status, hdrs, raw = self:request{ method = method, path = path, headers = headers or {}, body = body }
  local ok, decoded = pcall(cjson.decode, raw)
  return status, ok and decoded or nil, raw, hdrs
end

--- An API call with `x-goog-api-key: key` (default: the emulator's first --api-key); see json().
function Emulator:api(method, path, body, key)
  return self:json(method, path, { ["x-goog-api-key"] = key or self.key }, body)
end

--- A gemini client for this emulator: `opts` as for gemini.new, with `api_key` (default: the first
-- --api-key) and `base_url` (default: emu.url) filled in when absent. Nothing else is defaulted
-- (pass `retry = false` yourself). Under with_emulator, a client still alive at teardown is closed there.
function Emulator:client(opts)
  local o = copy(opts)
  if o.api_key == nil then o.api_key = self.key end
  if o.base_url == nil then o.base_url = self.url end
  local c = require("gemini").new(o)
  if self.clients then self.clients[c] = true end
  return c
end

--- client(opts) with debug hooks that record every attempt and every retry decision: returns
-- `{ client =, requests = { info... }, responses = { info... }, retries = { info... } }` (the infos
-- given to on_request, on_response and on_retry, in order).
function Emulator:traced(opts)
  local t = { requests = {}, retries = {}, responses = {} }
  local o = copy(opts)
  o.on_request = function(info) t.requests[#t.requests + 1] = info end
  o.on_response = function(info) t.responses[#t.responses + 1] = info end
  o.on_retry = function(info) t.retries[#t.retries + 1] = info end
  t.client = self:client(o)
  return t
end

--- Open a LuaSocket TCP connection to the emulator (for raw HTTP tests). Needs LuaSocket.
function Emulator:connect(timeout)
  assert(has_socket, "LuaSocket is required for raw connections")
  local c = assert(socket.tcp())
  c:settimeout(timeout or 5)
  assert(c:connect(self.host, self.port))
  return c
end

--- Send raw bytes on a new connection and read until the server closes it or `opts.timeout` (default 2 s)
-- passes without data. Returns the bytes received and "closed" or "timeout" (or another socket error).
function Emulator:raw(data, opts)
  opts = opts or {}
  local c = self:connect(opts.timeout or 2)
  if data and data ~= "" then assert(c:send(data)) end
  local parts = {}
  local why
  while true do
    local chunk, err, partial = c:receive(8192)
    if chunk then
      parts[#parts + 1] = chunk
    else
      if partial and partial ~= "" then parts[#parts + 1] = partial end
      why = err
      break
    end
  end
  c:close()
  return table.concat(parts), why
end

--- For a describe block: an emulator started in its setup (with start's options), reset before each
-- test, and stopped in its teardown (after closing the clients its client() made that are still
-- alive). Returns the emulator object at once; its url, port... are there from setup on.
-- Extra options: `reset = false` (no reset before each test), `stats_reset = true` (also
-- POST /emulator/v1/stats/reset before each test).
--
--    describe("...", function()
--      local emu = helper.with_emulator { "--api-key", "k1=alice@example.com" }
--      local client
--      setup(function() client = emu:client { retry = false } end)
--      it("...", function()
--        assert(client:get_model("text-bison-001"))
--        assert.equal("GET", emu:last_request().method)
--      end)
--    end)
function M.with_emulator(opts)
  opts = opts or {}
  local busted = require("busted")
  local emu = setmetatable({ clients = setmetatable({}, { __mode = "k" }) }, Emulator)
  busted.setup(function() launch(emu, opts) end)
  busted.teardown(function()
    for c in pairs(emu.clients) do c:close() end
    if emu.pid then emu:stop() end
  end)
  if opts.reset ~= false or opts.stats_reset then
    busted.before_each(function()
      if opts.reset ~= false then luassert().equal(200, (emu:reset())) end
      if opts.stats_reset then luassert().equal(200, (emu:control("POST", "/emulator/v1/stats/reset"))) end
    end)
  end
  return emu
end

--- Read a response head from a LuaSocket connection: status, headers (lowercased names), status line;
-- nil and the socket's error when no status line comes.
function M.read_head(c)
  local line, err = c:receive("*l")
  if not line then return nil, err end
  local status = tonumber(line:match("^HTTP/1%.%d (%d%d%d) "))
  local headers = {}
  while true do
    local l = luassert()(c:receive("*l"))
    if l == "" then break end
    local k, v = l:match("^([^:]+):%s*(.-)%s*$")
    headers[k:lower()] = v
  end
  return status, headers, line
end

--- Small tools for specs that run processes and read files.
M.shquote, M.readfile, M.execute = shquote, readfile, execute
--- The repository root (no trailing slash; "." when run from there).
M.root = repo_root

--- Decode a JSON string with the helper's private cjson (errors on invalid JSON).
M.decode = function(s) return cjson.decode(s) end
--- Encode a table as JSON with the helper's private cjson.
M.encode = function(v) return cjson.encode(v) end

return M
