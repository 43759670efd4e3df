-- bench/whatif.lua: what the per-request hot spots of findings.md are worth, measured by patching them out
-- at run time (nothing in lua/ is changed). CPU time per blocking generate_text (os.clock), best and median
-- of 10 interleaved rounds, for:
--   as is  |  names.check memoized  |  + no reply shape check  |  + the schema encode/decode replaced by
--   plain cjson (the floor of the JSON work)  |  gemini.core + cjson.decode from a bare loop (no Lua layer)
--   lua5.4 bench/whatif.lua --url http://127.0.0.1:PORT [--n 2000]
-- It relies on internals (client.json, gemini.names.check) and says so when they are not there.
local common = require("bench.common")
local a = common.args(arg)
local N = tonumber(a.n or 2000)
local gemini = require("gemini")
local names = require("gemini.names")
local core = require("gemini.core")
local cj = require("cjson").new()
local url = assert(a.url, "--url")
local cl = gemini.new{ api_key = "bench-key", base_url = url }
local MODEL, BODY = "models/text-bison-001", '{"prompt":{"text":"hi"}}'

local function run()
  local t0 = os.clock()
  for _ = 1, N do assert(cl:generate_text(MODEL, { prompt = { text = "hi" } })) end
  return (os.clock() - t0) / N * 1e6
end

local raw_client = core.client{}
local spec = { method = "POST", url = url .. "/v1beta3/" .. MODEL .. ":generateText", body = BODY,
               headers = { "Accept: application/json", "x-goog-api-key: bench-key", "Content-Type: application/json" } }
local function raw()
  local t0 = os.clock()
  for _ = 1, N do
    raw_client:start(spec)
    local done
    for _ = 1, 1e6 do
      raw_client:perform(1)
      done = raw_client:completions()[1]
      if done then break end
    end
    assert(done and done.status == 200, "raw request failed")
    cj.decode(done.body)
  end
  return (os.clock() - t0) / N * 1e6
end

local orig_check = names.check
local memo = {}
local function memo_check(kind, name)
  local m = memo[kind]
  if not m then m = {}; memo[kind] = m end
  local v = m[name]
  if v then return v end
  local full, why = orig_check(kind, name)
  if full then m[name] = full end
  return full, why
end
local J = cl.json
if type(J) ~= "table" or not J.decode_message or not J.encode_message then
  common.fail("client.json has no encode_message/decode_message: internals changed")
end
local dm, em, se = J.decode_message, J.encode_message, J.shape_error
local function no_shape()
  if se then J.shape_error = function() return nil end end
end
local function plain()
  J.decode_message = function(_, _, t) return t end
  J.encode_message = function(_, _, v) return cj.encode(v) end
end
local function restore()
  names.check = orig_check; J.decode_message = dm; J.encode_message = em; J.shape_error = se
end

local rows = { { "as is", function() restore() end },
               { "names.check memoized", function() restore(); names.check = memo_check end },
               { "+ no reply shape check (shape_error)",
                 function() restore(); names.check = memo_check; no_shape() end },
               { "+ plain cjson instead of the schema codec",
                 function() restore(); names.check = memo_check; no_shape(); plain() end } }
local res = {}
for i = 1, #rows + 1 do res[i] = {} end
for _ = 1, 10 do
  for i, r in ipairs(rows) do r[2](); local x = run(); res[i][#res[i] + 1] = x end
  restore()
  res[#rows + 1][#res[#rows + 1] + 1] = raw()
end
rows[#rows + 1] = { "gemini.core + cjson.decode, bare loop" }
for i, r in ipairs(rows) do
  table.sort(res[i])
  print(string.format("%-45s best %6.1f us   median %6.1f us", r[1], res[i][1], res[i][math.floor(#res[i] / 2) + 1]))
end
