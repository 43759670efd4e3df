--- A tiny scripted HTTP server for conditions the emulator cannot produce (huge replies, redirects,
-- 200 replies with odd shapes), run as a separate process so a blocking client call can talk to it.
--
-- As a module (from specs):
--
--    local rogue = require("spec.helpers.rogue_server")
--    local srv = rogue.start { status = 302, headers = { "Location: http://127.0.0.1:1/x" }, body = "" }
--    srv.url, srv.port
--    srv:log()       --> array of connections: { head = "GET /... HTTP/1.1\r\n...", sent = bytes, ended = "..." }
--    srv:stop()
--
-- Reply options: `status` (200), `headers` (array of "Name: value" lines), `body` (string) or
-- `body_file` (a file whose bytes are the body), or `size` (bytes of filler streamed in 64 KiB
-- pieces), `content_length` (default true; false closes the connection to end the body),
-- `lifetime` (seconds before the process exits on its own, default 60); `raw` (bytes sent instead of
-- any reply, then the connection closes).
--
-- As a script: `lua5.4 spec/helpers/rogue_server.lua DIR` reads DIR/config.lua, writes DIR/port, and
-- appends what happened on each connection to DIR/log. Loopback only; every loop is bounded.
-- @module spec.helpers.rogue_server

local M = {}

local function readfile(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

local function serialize(v)
  if type(v) == "string" then return string.format("%q", v) end
  if type(v) == "number" or type(v) == "boolean" then return tostring(v) end
  local out = {}
  for k, x in pairs(v) do
    out[#out + 1] = "[" .. serialize(k) .. "]=" .. serialize(x)
  end
  return "{" .. table.concat(out, ",") .. "}"
end

local Server = {}
Server.__index = Server

local function repo_root()
  local src = debug.getinfo(1, "S").source
  local dir = src:match("^@(.*)spec/helpers/rogue_server%.lua$")
  if dir == nil or dir == "" then return "." end
  return (dir:gsub("/$", ""))
end

--- Starts a server process with the reply options (see the module doc).
function M.start(opts)
  local socket = require("socket")
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p '" .. dir .. "'"))
  local f = assert(io.open(dir .. "/config.lua", "wb"))
  f:write("return " .. serialize(opts or {}))
  f:close()
  local script = repo_root() .. "/spec/helpers/rogue_server.lua"
  local p = assert(io.popen("lua5.4 '" .. script .. "' '" .. dir .. "' >'" .. dir .. "/out' 2>&1 & echo $!"))
  local pid = p:read("*l")
  p:close()
  local port
  for _ = 1, 200 do
    local s = readfile(dir .. "/port")
    if s and s:match("^%d+\n") then port = tonumber(s:match("^(%d+)")); break end
    socket.sleep(0.025)
  end
  assert(port, "rogue server did not start: " .. tostring(readfile(dir .. "/out")))
  return setmetatable({ dir = dir, pid = pid, port = port, url = "http://127.0.0.1:" .. port }, Server)
end

--- The connections seen so far, oldest first.
function Server:log()
  local s = readfile(self.dir .. "/log") or ""
  local conns = {}
  for rec in s:gmatch("(.-)\n%-%-%-end%-%-%-\n") do
    local head = rec:match("^head (.-)\nsent ") or ""
    conns[#conns + 1] = { head = head, sent = tonumber(rec:match("\nsent (%d+)")), ended = rec:match("\nended (.*)$") }
  end
  return conns
end

--- Waits (bounded) until `n` connections have been logged; returns the log.
function Server:wait_log(n, seconds)
  local socket = require("socket")
  local stop = socket.gettime() + (seconds or 5)
  local log = self:log()
  while #log < n and socket.gettime() < stop do
    socket.sleep(0.02)
    log = self:log()
  end
  return log
end

function Server:stop()
  if self.pid then os.execute("kill " .. self.pid .. " 2>/dev/null") end
  self.pid = nil
  os.execute("rm -rf '" .. self.dir .. "'")
end

---------------------------------------------------------------------------------------------------
-- The server process

local function serve(dir)
  local socket = require("socket")
  local cfg = assert(loadfile(dir .. "/config.lua"))()
  if cfg.body_file then cfg.body = assert(readfile(cfg.body_file)) end
  local srv = assert(socket.bind("127.0.0.1", 0))
  local _, port = srv:getsockname()
  local pf = assert(io.open(dir .. "/port.tmp", "wb"))
  pf:write(port .. "\n")
  pf:close()
  assert(os.rename(dir .. "/port.tmp", dir .. "/port"))
  local stop_at = socket.gettime() + (cfg.lifetime or 60)
  srv:settimeout(0.2)
  local function log(s)
    local f = io.open(dir .. "/log", "ab")
    f:write(s)
    f:close()
  end
  while socket.gettime() < stop_at do
    local c = srv:accept()
    if c then
      c:settimeout(5)
      local head = {}
      for _ = 1, 200 do
        local line = c:receive("*l")
        if not line or line == "" then break end
        head[#head + 1] = line
      end
      local len = 0
      for _, h in ipairs(head) do
        local n = h:match("^[Cc]ontent%-[Ll]ength:%s*(%d+)")
        if n then len = tonumber(n) end
      end
      if len > 0 then c:receive(len) end
      local size = cfg.size or #(cfg.body or "")
      local lines = { "HTTP/1.1 " .. (cfg.status or 200) .. " X" }
      for _, h in ipairs(cfg.headers or {}) do lines[#lines + 1] = h end
      if cfg.content_length ~= false then lines[#lines + 1] = "Content-Length: " .. size end
      lines[#lines + 1] = "Connection: close"
      local sent, ended = 0, "complete"
      local ok, err
      if cfg.raw then
        ok, err = c:send(cfg.raw)
        sent = ok and #cfg.raw or 0
      else
        ok, err = c:send(table.concat(lines, "\r\n") .. "\r\n\r\n")
      end
      if not ok then
        ended = tostring(err)
      elseif cfg.raw then
        ended = "raw"
      elseif cfg.size then
        local piece = string.rep("x", 65536)
        while sent < size do
          local n = math.min(#piece, size - sent)
          local i, e, partial = c:send(n == #piece and piece or piece:sub(1, n))
          if not i then sent = sent + (partial or 0); ended = tostring(e); break end
          sent = sent + n
          if socket.gettime() > stop_at then ended = "lifetime"; break end
        end
      else
        local i, e = c:send(cfg.body or "")
        if i then sent = #(cfg.body or "") else ended = tostring(e) end
      end
      c:close()
      log("head " .. table.concat(head, "\r\n") .. "\nsent " .. sent .. "\nended " .. ended .. "\n---end---\n")
    end
  end
  srv:close()
end

if arg and arg[0] and arg[0]:match("rogue_server%.lua$") and arg[1] then
  serve(arg[1])
end

return M
