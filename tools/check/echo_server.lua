-- A minimal HTTP/1.1 server for tests/threads.c under `make check` (tools/check/threads.sh): every
-- request (any method, any path, Content-Length bodies) gets "200 OK" with the request line as body,
-- on kept-alive connections. Prints "echo-server listening on http://127.0.0.1:PORT" when ready and
-- exits after --seconds (default 120) or on SIGTERM. Loopback only.
--   lua5.4 tools/check/echo_server.lua [--seconds N]
local uv = require "luv"

local seconds = 120
for i = 1, #arg do
  if arg[i] == "--seconds" then seconds = tonumber(arg[i + 1]) or seconds end
end

local server = uv.new_tcp()
assert(server:bind("127.0.0.1", 0))

local function serve(client)
  local buf = ""
  client:read_start(function(err, chunk)
    if err or not chunk then
      client:close()
      return
    end
    buf = buf .. chunk
    while true do
      local head_end = buf:find("\r\n\r\n", 1, true)
      if not head_end then break end
      local head = buf:sub(1, head_end - 1)
      local len = tonumber(head:lower():match("\r\ncontent%-length:%s*(%d+)")) or 0
      if #buf < head_end + 3 + len then break end
      buf = buf:sub(head_end + 4 + len)
      local line = head:match("^[^\r\n]*")
      local reply = line .. "\n"
      client:write("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " .. #reply
        .. "\r\n\r\n" .. reply)
    end
  end)
end

assert(server:listen(128, function(err)
  if err then return end
  local client = uv.new_tcp()
  server:accept(client)
  serve(client)
end))

local timer = uv.new_timer()
timer:start(seconds * 1000, 0, function() uv.stop() end)
local sig = uv.new_signal()
sig:start("sigterm", function() uv.stop() end)

io.stdout:write(("echo-server listening on http://127.0.0.1:%d\n"):format(server:getsockname().port))
io.stdout:flush()
uv.run()
os.exit(0, false)
