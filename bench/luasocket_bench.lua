-- bench/luasocket_bench.lua: contender 5, LuaSocket's socket.http (LuaSec's ssl.https for https://)
-- with cjson, as pure-Lua clients do it. socket.http closes the connection after every request
-- (it sends "Connection: close"), so every HTTPS request pays a full TLS handshake.
--   lua5.4 bench/luasocket_bench.lua --url URL --data FILE [--ca FILE] [--n N] [--time S] [--check generate|embed]
local common = require("bench.common")
local cjson = require("cjson").new()
local ltn12 = require("ltn12")

local a = common.args(arg)
local url = assert(a.url, "--url")
local n, max_time = tonumber(a.n or 100), tonumber(a.time or 5)
local body = common.readfile(assert(a.data, "--data"))
local https = url:match("^https:")
local request
if https then
  local ok, ssl_https = pcall(require, "ssl.https")
  if not ok then common.fail("LuaSec (ssl.https) is not installed: " .. tostring(ssl_https)) end
  request = ssl_https.request
else
  request = require("socket.http").request
end

local function check(d)
  if a.check == "embed" then return #d.embeddings == 100 end
  return d.candidates[1].output ~= nil
end

local function one()
  local chunks = {}
  local req = {
    url = url, method = "POST",
    headers = { ["content-type"] = "application/json", ["x-goog-api-key"] = "bench-key",
                ["content-length"] = tostring(#body) },
    source = ltn12.source.string(body),
    sink = ltn12.sink.table(chunks),
  }
  if https then
    req.cafile = a.ca; req.verify = "peer"; req.mode = "client"; req.protocol = "any"
    req.options = { "all", "no_sslv2", "no_sslv3" }
  end
  local ok, code = request(req)
  if not ok or code ~= 200 then common.fail("luasocket: request failed: " .. tostring(code)) end
  local s = table.concat(chunks)
  local dok, d = pcall(cjson.decode, s)
  if not dok or not check(d) then common.fail("luasocket: bad reply: " .. s:sub(1, 200)) end
  return #s
end

local bytes = one() -- warm-up
local ac
if a.alloc then -- under bench/alloc_count: allocations per request
  ac = require("alloc_count")
  for _ = 1, 20 do one() end
  collectgarbage("collect")
  ac.reset()
end
local done, t0 = 0, common.clock()
local elapsed = 0
while done < n do
  bytes = one()
  done = done + 1
  elapsed = common.clock() - t0
  if elapsed >= max_time then break end
end
if ac then
  local s = ac.stats()
  common.result{ n = done, secs = elapsed, lua_allocs = s.lua_allocs / done, lua_bytes = s.lua_bytes / done,
                 lua_resizes = s.lua_resizes / done, c_allocs = s.c_allocs / done, c_bytes = s.c_bytes / done }
else
  common.result{ n = done, secs = elapsed, bytes = bytes }
end
