--- Command line of `gemini-emulator` (see docs/emulator.md).
-- @module gemini.emulator.cli

local M = {}

M.USAGE = [[
Usage: gemini-emulator [options]

A local stand-in for Google's Generative Language API v1beta3 (PaLM era).

Options:
  --host HOST            address to listen on (default 127.0.0.1)
  --port PORT            port to listen on; 0 picks a free port (default 0)
  --api-key KEY[=EMAIL]  accept KEY as the identity EMAIL (repeatable); with no
                         --api-key, any non-empty key is accepted as one identity
  --latency MS           add MS milliseconds to every API reply (default 0)
  --tuning-step-ms MS    time one tuning step takes (default 100)
  --seed N               seed of the deterministic generators (default 0)
  --verbose              log one line per request on stderr (keys redacted)
  --help                 show this help and exit

When ready it prints one line on stdout:
  gemini-emulator listening on http://HOST:PORT
The control API for tests lives under /emulator/v1/ (see docs/emulator.md).
SIGTERM and SIGINT stop it cleanly.
]]

--- The identity of a key given without an email (the app's default identity when it names one).
M.DEFAULT_EMAIL = "user@example.com"

local function nonneg_int(name, v)
  local n = tonumber(v)
  if not n or n < 0 or n ~= math.floor(n) then
    return nil, name .. " needs a non-negative integer, got " .. tostring(v)
  end
  return n
end

--- Parse the command line.
-- @param args array of strings
-- @return options table, or nil, error message
function M.parse(args)
  local o = { host = "127.0.0.1", port = 0, latency = 0, tuning_step_ms = nil, seed = 0, verbose = false,
              api_keys = nil }
  local i = 1
  local n = #args
  while i <= n do
    local a = args[i]
    local name, inline = a:match("^(%-%-[%w%-]+)=(.*)$")
    name = name or a
    local function value()
      if inline then return inline end
      i = i + 1
      if i > n then return nil end
      return args[i]
    end
    local v, err
    if name == "--help" or name == "-h" then
      o.help = true
    elseif name == "--verbose" or name == "-v" then
      o.verbose = true
    elseif name == "--host" then
      v = value()
      if not v or v == "" then return nil, "--host needs an address" end
      o.host = v
    elseif name == "--port" then
      v, err = nonneg_int("--port", value())
      if not v or v > 65535 then return nil, err or "--port must be at most 65535" end
      o.port = v
    elseif name == "--latency" then
      v, err = nonneg_int("--latency", value())
      if not v then return nil, err end
      o.latency = v
    elseif name == "--tuning-step-ms" then
      v, err = nonneg_int("--tuning-step-ms", value())
      if not v then return nil, err end
      o.tuning_step_ms = v
    elseif name == "--seed" then
      v = tonumber(value() or "")
      if not v or v ~= math.floor(v) then return nil, "--seed needs an integer" end
      o.seed = v
    elseif name == "--api-key" then
      v = value()
      if not v or v == "" then return nil, "--api-key needs KEY or KEY=EMAIL" end
      local key, email = v:match("^([^=]+)=(.+)$")
      if not key then key, email = v, false end
      if key:find("^%s*$") or v:sub(1, 1) == "=" then return nil, "--api-key needs a non-empty KEY" end
      o.api_keys = o.api_keys or {}
      o.api_keys[key] = email
    else
      return nil, "unknown option " .. a
    end
    i = i + 1
  end
  return o
end

local function log_line(line)
  io.stderr:write(os.date("!%Y-%m-%dT%H:%M:%SZ "), line, "\n")
  io.stderr:flush()
end

--- Run the emulator until SIGTERM, SIGINT or POST /emulator/v1/shutdown; exits the process.
-- @param args the script's `arg` table
function M.main(args)
  local list = {}
  for i = 1, #(args or {}) do list[i] = args[i] end
  local o, err = M.parse(list)
  if not o then
    io.stderr:write("gemini-emulator: ", err, "\n\n", M.USAGE)
    os.exit(2)
  end
  if o.help then
    io.stdout:write(M.USAGE)
    io.stdout:flush()
    os.exit(0)
  end

  local uv = require "luv"
  local App = require "gemini.emulator.app"
  local Server = require "gemini.emulator.server"

  if o.api_keys then
    for k, email in pairs(o.api_keys) do
      if not email then o.api_keys[k] = App.DEFAULT_IDENTITY or M.DEFAULT_EMAIL end
    end
  end
  local app = App.new{
    api_keys = o.api_keys, tuning_step_ms = o.tuning_step_ms, seed = o.seed,
    now = function()
      local s, us = uv.gettimeofday()
      return s + us / 1e6
    end,
  }
  local server = Server.new{ app = app, host = o.host, port = o.port, latency_ms = o.latency,
                             log = o.verbose and log_line or nil }
  local host, port = server:listen()
  if not host then
    io.stderr:write("gemini-emulator: cannot listen on ", o.host, ":", tostring(o.port), ": ", tostring(port), "\n")
    os.exit(1)
  end

  local signals = {}
  local function close_signals()
    for _, s in ipairs(signals) do if not s:is_closing() then s:close() end end
  end
  local stopping = false
  local function on_signal()
    if stopping then os.exit(0) end   -- a second signal: do not wait any longer
    stopping = true
    server:stop()
  end
  for _, name in ipairs({ "sigterm", "sigint" }) do
    local s = uv.new_signal()
    s:start(name, on_signal)
    signals[#signals + 1] = s
  end
  local pipe = uv.new_signal()   -- a client that goes away must not kill us with SIGPIPE
  pipe:start("sigpipe", function() end)
  signals[#signals + 1] = pipe
  server.on_stopped = { close_signals }

  local shown = host:find(":", 1, true) and ("[" .. host .. "]") or host
  io.stdout:write("gemini-emulator listening on http://", shown, ":", tostring(port), "\n")
  io.stdout:flush()

  uv.run("default")
  io.stdout:flush()
  io.stderr:flush()
  os.exit(0)
end

return M
