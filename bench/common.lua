-- bench/common.lua: small helpers shared by the Lua contenders (argument parsing, a wall clock,
-- the RESULT line, RSS). Not part of lua-gemini.
local M = {}

--- Parse "--key value" pairs (and bare "--flag") into a table; numbers stay strings.
function M.args(argv)
  local t, i = {}, 1
  while i <= #argv do
    local k = argv[i]:match("^%-%-(.+)$")
    if not k then error("unexpected argument " .. argv[i]) end
    local v = argv[i + 1]
    if v == nil or v:match("^%-%-") then
      t[k] = true; i = i + 1
    else
      t[k] = v; i = i + 2
    end
  end
  return t
end

-- A wall clock with sub-millisecond resolution: luv's hrtime, else LuaSocket's gettime.
local clock
do
  local ok, uv = pcall(require, "luv")
  if ok and uv.hrtime then
    clock = function() return uv.hrtime() / 1e9 end
  else
    local ok2, socket = pcall(require, "socket")
    if ok2 then clock = socket.gettime else clock = os.clock end
  end
end
M.clock = clock

--- Print the line the harness parses: RESULT k=v k=v ... (keys in a stable order).
function M.result(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b)
    local order = { n = 1, secs = 2 }
    local oa, ob = order[a] or 9, order[b] or 9
    if oa ~= ob then return oa < ob end
    return a < b
  end)
  local parts = {}
  for _, k in ipairs(keys) do
    local v = t[k]
    if type(v) == "number" and math.type and math.type(v) == "float" then v = string.format("%.6f", v) end
    parts[#parts + 1] = k .. "=" .. tostring(v):gsub("%s", "_")
  end
  io.write("RESULT ", table.concat(parts, " "), "\n")
  io.flush()
end

--- Resident set size of this process in KiB (Linux /proc), or nil.
function M.rss_kib()
  local f = io.open("/proc/self/status", "r")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return tonumber(s:match("VmRSS:%s*(%d+)"))
end

function M.readfile(p)
  local f = assert(io.open(p, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

function M.shquote(s) return "'" .. (tostring(s):gsub("'", "'\\''")) .. "'" end

--- Stop with a message on stderr and no RESULT line (the harness then reports the contender as failed).
function M.fail(msg)
  io.stderr:write(tostring(msg), "\n")
  os.exit(1)
end

return M
