-- bench/lua_profile.lua: where the Lua side of one lua-gemini request goes, by VM instructions.
-- A count hook samples the running Lua function every --every instructions (default 100) during N blocking
-- requests; it prints the top functions (self) and the top call sites with their callers.
--   lua5.4 bench/lua_profile.lua --url BASE_URL [--ca FILE] [--n 2000] [--mode generate|embed] [--top 25]
-- Complements `perf` (which sees the C side but not which Lua function runs).
local common = require("bench.common")
local a = common.args(arg)
local n, top, every = tonumber(a.n or 2000), tonumber(a.top or 25), tonumber(a.every or 100)
local gemini = require("gemini")
local client = gemini.new{ api_key = "bench-key", base_url = assert(a.url, "--url"), ca_file = a.ca }

local texts = {}
for i = 1, 100 do texts[i] = "benchmark text number " .. i .. ": the quick brown fox jumps over the lazy dog" end
local function one()
  if a.mode == "embed" then
    return assert(client:batch_embed_text("models/embedding-gecko-001", { texts = texts }))
  end
  return assert(client:generate_text("models/text-bison-001", { prompt = { text = "hi" } }))
end
for _ = 1, 20 do one() end

local self_count, site_count, total = {}, {}, 0
local getinfo = debug.getinfo
local function name_of(info)
  return (info.short_src or "?") .. ":" .. (info.linedefined or 0) .. " " .. (info.name or "?")
end
debug.sethook(function()
  local info = getinfo(2, "Sln")
  if not info then return end
  total = total + 1
  local key = name_of(info)
  self_count[key] = (self_count[key] or 0) + 1
  local line = (info.short_src or "?") .. ":" .. (info.currentline or 0)
  site_count[line] = (site_count[line] or 0) + 1
end, "", every)
local t0 = common.clock()
for _ = 1, n do one() end
local dt = common.clock() - t0
debug.sethook()

local function dump(t, title)
  local list = {}
  for k, v in pairs(t) do list[#list + 1] = { k, v } end
  table.sort(list, function(x, y) return x[2] > y[2] end)
  print(title)
  for i = 1, math.min(top, #list) do
    print(string.format("  %5.1f%%  %s", 100 * list[i][2] / total, list[i][1]))
  end
end
print(string.format("%d requests in %.3f s (hooked); %d samples (one every %d VM instructions)",
  n, dt, total, every))
dump(self_count, "functions (self):")
dump(site_count, "lines:")
