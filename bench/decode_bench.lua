-- bench/decode_bench.lua: the decode side of the batchEmbedText case, without any transfer.
--
--   lua5.4 bench/decode_bench.lua --mode MODE --file BODY [--n N] [--time S]
-- MODE: cjson        cjson.decode of the 100 x 768 body (the baseline: transfer + this)
--       probe        whether lua-gemini offers a C decoder of embeddings into compact float vectors
--       compact      that decoder on the same body
--       mem-cjson    Lua heap held by the decoded tables of numbers (KiB)
--       mem-compact  Lua heap held by the compact vectors (KiB; userdata payload included)
local common = require("bench.common")
local clock = common.clock
local a = common.args(arg)
local mode = a.mode or "cjson"
local n, max_time = tonumber(a.n or 100), tonumber(a.time or 5)
local body = common.readfile(assert(a.file, "--file"))

-- Known places for the opt-in C decoder; the first that exists wins.
local function find_compact()
  local tried = {}
  local ok, core = pcall(require, "gemini.core")
  if ok and type(core) == "table" then
    for _, name in ipairs({ "decode_embeddings", "embeddings_decode", "decode_vectors" }) do
      if type(core[name]) == "function" then return core[name], "gemini.core." .. name end
      tried[#tried + 1] = "gemini.core." .. name
    end
  end
  for _, mod in ipairs({ "gemini.embeddings", "gemini.vectors" }) do
    local okm, m = pcall(require, mod)
    if okm and type(m) == "table" and type(m.decode) == "function" then return m.decode, mod .. ".decode" end
    tried[#tried + 1] = mod .. ".decode"
  end
  return nil, "tried " .. table.concat(tried, ", ")
end

local function check_tables(d)
  if #d.embeddings ~= 100 or #d.embeddings[1].value ~= 768 then common.fail("unexpected shape") end
end

local function check_compact(d)
  local e = d.embeddings or d
  local v = e[1].value or e[1]
  if #e ~= 100 or #v ~= 768 or type(v[1]) ~= "number" then common.fail("compact: unexpected shape") end
end

local function timed(fn, check)
  check(fn(body))
  local done, t0, elapsed = 0, clock(), 0
  while done < n do
    fn(body)
    done = done + 1
    elapsed = clock() - t0
    if elapsed >= max_time then break end
  end
  common.result{ n = done, secs = elapsed, bytes = #body }
end

local function heap_of(fn)
  collectgarbage("collect"); collectgarbage("collect")
  local before = collectgarbage("count")
  local keep = fn(body)
  collectgarbage("collect"); collectgarbage("collect")
  local after = collectgarbage("count")
  common.result{ n = 1, secs = 0, kib = after - before, bytes = #body, kept = type(keep) }
end

if mode == "cjson" or mode == "mem-cjson" then
  local cjson = require("cjson").new()
  if mode == "cjson" then timed(cjson.decode, check_tables) else heap_of(cjson.decode) end
  return
end

local decode, where = find_compact()
if not decode then common.fail("no C embedding decoder: " .. where) end
if mode == "probe" then
  common.result{ n = 0, secs = 0, where = where }
elseif mode == "compact" then
  timed(decode, check_compact)
elseif mode == "mem-compact" then
  heap_of(decode)
else
  common.fail("unknown --mode " .. mode)
end
