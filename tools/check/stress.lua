-- make check, step "stress": many requests against the emulator, blocking and callbacks mixed, with
-- error replies and client create/close cycles among them; RSS is sampled from /proc/self/status after
-- a warm-up and at the end. Fails when RSS grows by more than the limit, when a request gives a wrong
-- result, or when the time budget runs out. Prints the numbers and one "check: stress ..." line.
--
--   lua5.4 tools/check/stress.lua [requests]     (LUA_PATH/LUA_CPATH must find gemini and gemini.core)
--   env: STRESS_REQUESTS (default 20000), STRESS_WARMUP (2000), STRESS_LIMIT_KIB (1024),
--        STRESS_SECONDS (time budget, default 600)
local N = tonumber(arg and arg[1] or nil) or tonumber(os.getenv("STRESS_REQUESTS")) or 20000
local WARMUP = tonumber(os.getenv("STRESS_WARMUP")) or 2000
local LIMIT_KIB = tonumber(os.getenv("STRESS_LIMIT_KIB")) or 1024
local BUDGET = tonumber(os.getenv("STRESS_SECONDS")) or 600
local ASYNC_BATCH = 8

local function result(ok, detail)
  print(("check: stress %s (%s)"):format(ok and "passed" or "failed", detail))
  os.exit(ok and 0 or 1, true)
end

local function status_kib(path, field)
  local f = io.open(path, "r")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return tonumber(s:match(field .. ":%s*(%d+) kB"))
end

local function settle()
  for _ = 1, 3 do collectgarbage("collect") end
end

local has_socket, socket = pcall(require, "socket")
local clock = has_socket and socket.gettime or os.time

local ok_emu, emulator = pcall(require, "spec.helpers.emulator")
if not ok_emu then result(false, "cannot load spec.helpers.emulator: " .. tostring(emulator)) end
local ok_g, gemini = pcall(require, "gemini")
if not ok_g then result(false, "cannot load gemini: " .. tostring(gemini)) end

local emu = emulator.start { "--api-key", "stress-key=stress@example.com" }
local opts = { api_key = "stress-key", base_url = emu.url, retry = false }
local client = gemini.new(opts)

local MODEL = "models/text-bison-001"
local function body(i) return { prompt = { text = "stress " .. (i % 97) }, candidateCount = 1 } end

-- Does the callback form exist? (issue 4; older builds raise on a function argument)
local async = pcall(function()
  local got
  client:generate_text(MODEL, body(0), function(res, err) got = res or err end)
  client:run()
  assert(got)
end)

local counts = { blocking = 0, async = 0, errors = 0, clients = 0 }
local failures = {}
local function fail(i, what)
  if #failures < 5 then failures[#failures + 1] = ("request %d: %s"):format(i, what) end
end

local function check_text(i, res, err)
  if not res then fail(i, "generate_text: " .. tostring(err)); return end
  if type(res.candidates) ~= "table" or type(res.candidates[1]) ~= "table"
    or type(res.candidates[1].output) ~= "string" then
    fail(i, "generate_text: unexpected reply shape")
  end
end

-- One step of the mix; returns how many requests it made.
local function step(i)
  local k = i % 20
  if k == 0 then
    -- an error reply: NOT_FOUND, an error object with details
    local res, err = client:get_model("models/no-such-model-" .. (i % 7))
    if res or type(err) ~= "table" or err.status ~= "NOT_FOUND" then fail(i, "expected NOT_FOUND") end
    counts.errors = counts.errors + 1
    return 1
  elseif k == 1 and i % 500 == 1 then
    -- a whole client lifetime: create, one request, close (and one left to the collector)
    local c = gemini.new(opts)
    check_text(i, c:generate_text(MODEL, body(i)))
    c:close()
    local c2 = gemini.new(opts)
    check_text(i, c2:generate_text(MODEL, body(i)))
    counts.clients = counts.clients + 2
    counts.blocking = counts.blocking + 2
    return 2
  elseif async and k >= 12 and k < 12 + ASYNC_BATCH / 4 then
    -- callbacks: a batch in flight at once, then run until done
    local done = 0
    for j = 1, ASYNC_BATCH do
      client:count_text_tokens(MODEL, { prompt = { text = ("a b c "):rep(j) } }, function(res, err)
        done = done + 1
        if not res or math.type and math.type(res.tokenCount) ~= "integer" then
          fail(i, "count_text_tokens callback: " .. tostring(err))
        end
      end)
    end
    client:run()
    if done ~= ASYNC_BATCH then fail(i, "only " .. done .. " callbacks ran") end
    counts.async = counts.async + ASYNC_BATCH
    return ASYNC_BATCH
  elseif k % 3 == 0 then
    local res, err = client:count_text_tokens(MODEL, { prompt = { text = "one two three" } })
    if not res then fail(i, "count_text_tokens: " .. tostring(err)) end
  else
    check_text(i, client:generate_text(MODEL, body(i)))
  end
  counts.blocking = counts.blocking + 1
  return 1
end

local started = clock()
local done, i = 0, 0
local rss_warm, heap_warm, t_warm
while done < N do
  i = i + 1
  done = done + step(i)
  if #failures >= 5 then break end
  if not rss_warm and done >= WARMUP then
    settle()
    rss_warm, heap_warm, t_warm = status_kib("/proc/self/status", "VmRSS"), collectgarbage("count"), clock()
    print(("stress: warm-up of %d requests in %.1f s; RSS %d KiB, Lua heap %.0f KiB"):format(
      done, t_warm - started, rss_warm or -1, heap_warm))
  end
  if i % 1000 == 0 and clock() - started > BUDGET then
    fail(i, ("time budget of %d s spent after %d requests"):format(BUDGET, done))
    break
  end
end
local elapsed = clock() - started
client:close()
settle()
local rss_end, heap_end = status_kib("/proc/self/status", "VmRSS"), collectgarbage("count")
local rss_hwm = status_kib("/proc/self/status", "VmHWM")
local emu_rss = emu.pid and status_kib("/proc/" .. emu.pid .. "/status", "VmRSS")
emu:stop()

print(("stress: %d requests (%d blocking, %d callbacks, %d error replies, %d clients opened) in %.1f s, %.0f req/s%s")
  :format(done, counts.blocking, counts.async, counts.errors, counts.clients, elapsed, done / elapsed,
    async and "" or "; callback form not available"))
for _, f in ipairs(failures) do print("stress: FAILED " .. f) end
if #failures > 0 then result(false, failures[1]) end
if not rss_warm or not rss_end then result(false, "could not read VmRSS") end
local growth = rss_end - rss_warm
print(("stress: RSS %d KiB after warm-up, %d KiB at the end (peak %d KiB): growth %d KiB (limit %d KiB); "
  .. "Lua heap %.0f -> %.0f KiB; emulator RSS %s KiB"):format(rss_warm, rss_end, rss_hwm or -1, growth, LIMIT_KIB,
  heap_warm, heap_end, tostring(emu_rss)))
local detail = ("%d requests, %.0f req/s, RSS growth %d KiB"):format(done, done / elapsed, growth)
result(growth <= LIMIT_KIB, detail)
