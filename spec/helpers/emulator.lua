--- Spec helper: start a real `bin/gemini-emulator` process for a spec file and talk to it.
--
--    local emu = require("spec.helpers.emulator").start{ "--api-key", "k1=alice@example.com", latency = 200 }
--    emu.url, emu.port, emu.host, emu.pid
--    emu:control("POST", "/emulator/v1/faults", { rules = { ... } })   --> status, decoded body
--    emu:request{ method =, path =, headers =, body =, timeout =, args = }  --> status, headers, body
--    emu:raw("GET / HTTP/1.1\r\n\r\n", { timeout = 2 })                 --> bytes received, how it ended
--    emu:stop()
--
-- The emulator is spawned in the background with its stdout/stderr in temporary files; the helper waits
-- (with a timeout) for its listening line. A watchdog shell loop kills the emulator if the test process
-- dies without calling stop(), so no orphan survives a crashed or interrupted busted run.
-- @module spec.helpers.emulator

local M = {}

local cjson = require("cjson").new()
local has_socket, socket = pcall(require, "socket")

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
function M.start(opts)
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
  local self = setmetatable({
    out_file = base .. ".out", err_file = base .. ".err", pid_file = base .. ".pid", tmp = base,
    root = root,
  }, Emulator)
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

--- Decode a JSON string with the helper's private cjson (errors on invalid JSON).
M.decode = function(s) return cjson.decode(s) end
--- Encode a table as JSON with the helper's private cjson.
M.encode = function(v) return cjson.encode(v) end

return M
