-- bench/curl_proc.lua: contender 4, a `curl` process per request spawned from Lua with io.popen,
-- the way most Neovim plugins call the API, then cjson.decode of its output.
--   lua5.4 bench/curl_proc.lua --url URL --data FILE [--ca FILE] [--n N] [--time S] [--check generate|embed]
local common = require("bench.common")
local cjson = require("cjson").new()

local a = common.args(arg)
local url = assert(a.url, "--url")
local n, max_time = tonumber(a.n or 100), tonumber(a.time or 5)
local q = common.shquote
local cmd = "curl -sS --max-time 30 -X POST -H 'Content-Type: application/json' -H 'x-goog-api-key: bench-key'"
  .. " --data-binary @" .. q(assert(a.data, "--data"))
  .. (a.ca and (" --cacert " .. q(a.ca)) or "") .. " " .. q(url)

local function check(d)
  if a.check == "embed" then return #d.embeddings == 100 end
  return d.candidates[1].output ~= nil
end

local function one()
  local p = assert(io.popen(cmd, "r"))
  local body = p:read("*a")
  p:close()
  local ok, d = pcall(cjson.decode, body)
  if not ok or not check(d) then common.fail("curl_proc: bad reply: " .. body:sub(1, 200)) end
  return #body
end

local bytes = one() -- warm-up (page cache, TLS libs)
local done, t0 = 0, common.clock()
local elapsed = 0
while done < n do
  bytes = one()
  done = done + 1
  elapsed = common.clock() - t0
  if elapsed >= max_time then break end
end
common.result{ n = done, secs = elapsed, bytes = bytes }
