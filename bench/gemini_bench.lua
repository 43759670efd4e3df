-- bench/gemini_bench.lua: contenders 1 and 2, lua-gemini blocking and non-blocking, plus the
-- require-time, RSS and allocation cases.
--
--   lua5.4 bench/gemini_bench.lua --mode MODE [--url BASE_URL] [--ca FILE] [--n N] [--time S] [--conc C]
-- MODE: probe     one blocking request, then whether the callback form works (prints version, callback=0|1)
--       seq       blocking generate_text in a loop
--       core      the same requests from gemini.core in a bare loop (start, await) + cjson.decode: no Lua layer
--       conc      callback form with C requests in flight (refilled from the callbacks), client:run();
--                 --maxconn N passes max_connections = N too
--       embed     blocking batch_embed_text of 100 texts (100 x 768 reply); --compact uses the C decoder
--       rss       blocking requests; RSS (after a full GC) at 100 and at N requests
--       alloc     (under bench/alloc_count) allocations per blocking request after a warm-up
--       require   time of require(--module, default "gemini") in a fresh process
-- Every loop is bounded by --n and --time. Prints one RESULT line (see bench/common.lua).
local common = require("bench.common")
local clock = common.clock

local a = common.args(arg)
local mode = a.mode or "seq"
local n, max_time = tonumber(a.n or 1000), tonumber(a.time or 5)
local MODEL, EMBED_MODEL = "models/text-bison-001", "models/embedding-gecko-001"

if mode == "require" then
  local name = a.module or "gemini"
  local t0 = clock()
  local ok, err = pcall(require, name)
  local dt = clock() - t0
  if not ok then common.fail(err) end
  common.result{ n = 1, secs = dt }
  return
end

local ok_req, gemini = pcall(require, "gemini")
if not ok_req then common.fail("require 'gemini' failed: " .. tostring(gemini)) end
if type(gemini) ~= "table" or type(gemini.new) ~= "function" then common.fail("gemini.new is missing") end

local function new_client(extra)
  local opts = { api_key = "bench-key", base_url = assert(a.url, "--url"), ca_file = a.ca }
  for k, v in pairs(extra or {}) do opts[k] = v end
  local ok, c = pcall(gemini.new, opts)
  if not ok then common.fail("gemini.new failed: " .. tostring(c)) end
  return c
end

local function check_gen(res, err)
  if not res then common.fail("generate_text failed: " .. tostring(err)) end
  if type(res.candidates) ~= "table" or not res.candidates[1] then
    common.fail("generate_text: unexpected result")
  end
end

local function gen_body() return { prompt = { text = "hi" } } end

local texts = {}
for i = 1, 100 do texts[i] = "benchmark text number " .. i .. ": the quick brown fox jumps over the lazy dog" end

if mode == "probe" then
  -- --headers-out FILE: the request header lines the client sent (from its on_request hook, with the
  -- redacted key put back), so that bench/limit.c sends exactly the same
  local seen
  local okc, client = pcall(gemini.new, { api_key = "bench-key", base_url = assert(a.url, "--url"), ca_file = a.ca,
    on_request = function(r) seen = r.headers end })
  if not okc then client = new_client() end
  local ok, res, err = pcall(client.generate_text, client, MODEL, gen_body())
  if not ok then common.fail("generate_text raised: " .. tostring(res)) end
  check_gen(res, err)
  if a["headers-out"] and type(seen) == "table" then
    local f = assert(io.open(a["headers-out"], "w"))
    for _, h in ipairs(seen) do
      local k = h:match("^([^:]+):")
      if k and k:lower() == "x-goog-api-key" then h = k .. ": bench-key" end
      f:write(h, "\n")
    end
    f:close()
  end
  local out = { n = 1, secs = 0, version = tostring(gemini.VERSION), callback = 0 }
  local got
  local ok2, e2 = pcall(function()
    local h = client:generate_text(MODEL, gen_body(), function(r, e) got = { r, e } end)
    if h == nil then error("the callback form returned no request handle") end
    local deadline = clock() + 10
    while not got and clock() < deadline do client:poll(0.1) end
  end)
  if ok2 and got and got[1] and type(got[1].candidates) == "table" then
    out.callback = 1
  else
    out.why = ok2 and ("callback result: " .. tostring(got and (got[2] or "no candidates") or "never called"))
      or tostring(e2):sub(1, 120)
  end
  common.result(out)
  return
end

if mode == "core" then
  -- the floor under the Lua layer: gemini.core driven from a bare loop (start, await) with the request
  -- bytes the client sends (its on_request hook), then cjson.decode of the body; no schema, names, retries
  local core = require("gemini.core")
  local cjson = require("cjson").new()
  local spec
  local client = new_client{ on_request = function(r)
    spec = { method = r.method, url = r.url, headers = r.headers, body = r.body }
  end }
  check_gen(client:generate_text(MODEL, gen_body()))
  client:close()
  for i, h in ipairs(spec.headers) do
    local k = h:match("^([^:]+):")
    if k and k:lower() == "x-goog-api-key" then spec.headers[i] = k .. ": bench-key" end
  end
  -- the client's default User-Agent, which its hook does not list
  local raw = core.client{ ca_file = a.ca, user_agent = require("gemini.client").default_user_agent() }
  local function one()
    local id = raw:start(spec)
    local r = raw:await(id, 60)
    if not (r and r.status == 200) then common.fail("gemini.core request failed: " .. tostring(r and r.error)) end
    return cjson.decode(r.body)
  end
  one() -- warm-up: connect, TLS
  local done, t0 = 0, clock()
  while done < n do
    one()
    done = done + 1
    if clock() - t0 >= max_time then break end
  end
  common.result{ n = done, secs = clock() - t0 }
  return
end

if mode == "seq" or mode == "rss" or mode == "alloc" then
  local client = new_client()
  local res, err = client:generate_text(MODEL, gen_body()) -- warm-up: connect, TLS
  check_gen(res, err)
  if mode == "alloc" then
    local ac = require("alloc_count")
    for _ = 1, 100 do client:generate_text(MODEL, gen_body()) end
    collectgarbage("collect")
    ac.reset()
    local t0 = clock()
    for _ = 1, n do
      res, err = client:generate_text(MODEL, gen_body())
      if not res then common.fail(err) end
    end
    local dt = clock() - t0
    local s = ac.stats()
    common.result{ n = n, secs = dt, lua_allocs = s.lua_allocs / n, lua_bytes = s.lua_bytes / n,
                   lua_resizes = s.lua_resizes / n, c_allocs = s.c_allocs / n, c_bytes = s.c_bytes / n }
    return
  end
  local done, t0, elapsed, rss100 = 0, clock(), 0, nil
  while done < n do
    res, err = client:generate_text(MODEL, gen_body())
    if not res then common.fail("generate_text failed: " .. tostring(err)) end
    done = done + 1
    if mode == "rss" and done == 100 then
      collectgarbage("collect")
      rss100 = common.rss_kib()
    end
    elapsed = clock() - t0
    if elapsed >= max_time then break end
  end
  if mode == "rss" then
    collectgarbage("collect")
    local rss_end = common.rss_kib()
    common.result{ n = done, secs = elapsed, rss100_kib = rss100 or -1, rss_end_kib = rss_end,
                   growth_kib = rss_end - (rss100 or rss_end), lua_kib = collectgarbage("count") }
  else
    check_gen(res, err)
    common.result{ n = done, secs = elapsed }
  end
  return
end

if mode == "conc" then
  local conc = tonumber(a.conc or 8)
  -- --maxconn N also raises the core's connection cap (max_connections, default 16 in the core)
  local client = new_client{ max_in_flight = conc, max_connections = tonumber(a.maxconn) }
  local started, done, failed = 0, 0, nil
  local stop_at = math.huge
  local start
  local function on_done(res, err)
    if not res then failed = failed or tostring(err); return end
    done = done + 1
    if started < n and clock() < stop_at then start() end
  end
  start = function()
    started = started + 1
    client:generate_text(MODEL, gen_body(), on_done)
  end
  -- run() until every started request is done (bounded; early clients returned from run() while
  -- callbacks had just started more requests)
  local function drive(deadline)
    for _ = 1, 1e7 do
      client:run()
      if done >= started or failed or clock() > deadline then return end
    end
  end
  -- warm-up: one round at full width (opens the connections, TLS, HTTP/2 settings)
  local wn = n
  n = conc
  for _ = 1, conc do start() end
  drive(clock() + 30)
  if failed then common.fail("warm-up failed: " .. failed) end
  n, started, done = wn, 0, 0
  local t0 = clock()
  stop_at = t0 + max_time
  for _ = 1, math.min(conc, n) do start() end
  drive(stop_at + 30)
  local elapsed = clock() - t0
  if failed then common.fail("a request failed: " .. failed) end
  common.result{ n = done, secs = elapsed, conc = conc }
  return
end

if mode == "embed" then
  local client = new_client()
  local opts
  if a.compact then
    -- the client's opt-in for compact vectors: the first of these call options that yields userdata
    local candidates = { { compact_embeddings = true }, { compact = true }, { vectors = true } }
    local tried = {}
    for _, o in ipairs(candidates) do
      local k, v = next(o)
      tried[#tried + 1] = k .. " = " .. tostring(v)
      local ok, res = pcall(client.batch_embed_text, client, EMBED_MODEL, { texts = texts }, o)
      if ok and type(res) == "table" and type(res.embeddings) == "table" and res.embeddings[1]
        and type(res.embeddings[1].value) == "userdata" then
        opts = o
        break
      end
    end
    if not opts then
      common.fail("no compact-vector option in batch_embed_text (tried " .. table.concat(tried, ", ") .. ")")
    end
  end
  local function one()
    local res, err
    if opts then
      res, err = client:batch_embed_text(EMBED_MODEL, { texts = texts }, opts)
    else
      res, err = client:batch_embed_text(EMBED_MODEL, { texts = texts })
    end
    if not res then common.fail("batch_embed_text failed: " .. tostring(err)) end
    local e = res.embeddings
    if #e ~= 100 or #(e[1].value) ~= 768 then common.fail("batch_embed_text: unexpected shape") end
    return res
  end
  one()
  local done, t0, elapsed = 0, clock(), 0
  while done < n do
    one()
    done = done + 1
    elapsed = clock() - t0
    if elapsed >= max_time then break end
  end
  common.result{ n = done, secs = elapsed }
  return
end

common.fail("unknown --mode " .. tostring(mode))
