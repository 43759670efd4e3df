-- luacheck: read globals vim
--- Headless Neovim test (issue 6), run by tools/portable/nvim-test.sh and `make test-all`:
--
--    nvim --headless -u NONE -c "luafile spec/nvim/run.lua"
--
-- Neovim 0.7 has no `-l`, so this runs as a luafile and ends the editor with `:qall!` (all passed) or
-- `:cquit 1`. It loads the LuaJIT build of gemini.core (build/luajit, or $GEMINI_NVIM_CPATH), starts the
-- emulator (lua5.4, --latency 200) as a child of the editor's own loop, and then returns: the rest runs
-- from the editor's event loop, exactly as a plugin would.
--
--  1. JSON: with GEMINI_NVIM_JSON=vim (default) `require "cjson"` is made to fail, so the client must fall
--     back to `vim.json` (null = vim.NIL); with GEMINI_NVIM_JSON=cjson the system lua-cjson is used. Both
--     modes also run a client given an explicit `json = { encode, decode, null }` built on vim.json, and
--     compare its results with the default client's.
--  2. 20 requests at once through `require("gemini.luv").attach(client, vim.uv or vim.loop)`, while a
--     10 ms repeating timer counts ticks: the ticks must keep coming (no gap near the emulator's 200 ms
--     latency), and every reply must arrive.
--  3. The example plugin (examples/nvim): `:GeminiSend` on a range inserts the reply below it, and the
--     editor keeps ticking meanwhile.
-- Prints one line per check and ends with "nvim: N passed, N failed".

local uv = vim.uv or vim.loop
local fmt = string.format

local function script_dir()
  local src = debug.getinfo(1, "S").source
  return src:match("^@(.*)/spec/nvim/run%.lua$")
end
local root = os.getenv("GEMINI_ROOT") or script_dir() or uv.cwd()
if root:sub(1, 1) ~= "/" then root = uv.cwd() .. "/" .. root end
local json_mode = os.getenv("GEMINI_NVIM_JSON") or "vim"
local cpath = os.getenv("GEMINI_NVIM_CPATH") or (root .. "/build/luajit/?.so")
local requests = tonumber(os.getenv("GEMINI_NVIM_REQUESTS") or "20")
local latency = tonumber(os.getenv("GEMINI_NVIM_LATENCY") or "200")
local API_KEY = "nvim-key"
local MODEL = "models/text-bison-001"

package.path = (os.getenv("GEMINI_NVIM_EXTRA_PATH") or "") .. root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;"
  .. package.path
package.cpath = cpath .. ";" .. package.cpath
if json_mode == "vim" then
  -- What a stock Neovim looks like: no lua-cjson on the path.
  package.loaded["cjson"], package.loaded["cjson.safe"] = nil, nil
  package.preload["cjson"] = function() error("cjson hidden by spec/nvim/run.lua (GEMINI_NVIM_JSON=vim)") end
  package.preload["cjson.safe"] = package.preload["cjson"]
end

local out = io.stdout
local passed, failed = 0, 0
local finished = false

local function say(s)
  out:write(s, "\n")
  out:flush()
end

local function check(name, ok, detail)
  if ok then
    passed = passed + 1
    say("ok     " .. name .. (detail and (" (" .. detail .. ")") or ""))
  else
    failed = failed + 1
    say("FAILED " .. name .. (detail and (": " .. tostring(detail)) or ""))
  end
  return ok
end

local emulator = { handle = nil, pid = nil, url = nil }

local function stop_emulator()
  if emulator.handle and not emulator.handle:is_closing() then
    pcall(function() emulator.handle:kill("sigterm") end)
  end
end

local function finish()
  if finished then return end
  finished = true
  stop_emulator()
  say(fmt("nvim: %d passed, %d failed", passed, failed))
  vim.schedule(function()
    if failed == 0 and passed > 0 then vim.cmd("qall!") else vim.cmd("cquit 1") end
  end)
end

-- Runs fn in a scheduled (non-fast) context; a Lua error fails the test instead of hanging it.
local function step(name, fn)
  return vim.schedule_wrap(function(...)
    if finished then return end
    local ok, err = xpcall(fn, debug.traceback, ...)
    if not ok then
      check(name .. " raised no error", false, err)
      finish()
    end
  end)
end

-- Guard: the whole test must end well within a minute.
local guard = uv.new_timer()
guard:start(60000, 0, step("guard", function()
  check("test finished within 60 s", false, "timed out")
  finish()
end))

local function http(method, path, body)
  local cmd = { "curl", "-sS", "-X", method, emulator.url .. path }
  if body then
    cmd[#cmd + 1] = "-H"; cmd[#cmd + 1] = "Content-Type: application/json"
    cmd[#cmd + 1] = "--data-binary"; cmd[#cmd + 1] = body
  end
  local text = vim.fn.system(cmd)
  local ok, decoded = pcall(vim.json.decode, text)
  return ok and decoded or nil, text
end

local function deep_equal(a, b, nulls_a, nulls_b)
  if a == nulls_a and b == nulls_b then return true end
  if type(a) ~= type(b) then return false end
  if type(a) ~= "table" then return a == b end
  for k, v in pairs(a) do
    if not deep_equal(v, b[k], nulls_a, nulls_b) then return false end
  end
  for k in pairs(b) do
    if a[k] == nil then return false end
  end
  return true
end

local function is_integral(v)
  return type(v) == "number" and v == math.floor(v)
end

---------------------------------------------------------------------------------------------------
-- Phase 3: the example plugin

local function phase_plugin(done)
  vim.opt.runtimepath:prepend(root .. "/examples/nvim")
  vim.cmd("runtime! plugin/gemini_nvim.lua")
  local plugin = require("gemini_nvim")
  plugin.setup { api_key = API_KEY, base_url = emulator.url, model = MODEL }
  check("plugin defines :GeminiSend", vim.fn.exists(":GeminiSend") == 2)

  local buf = vim.api.nvim_create_buf(true, false)
  vim.api.nvim_set_current_buf(buf)
  vim.api.nvim_buf_set_lines(buf, 0, -1, false, { "Write one line", "about Lua.", "-- end --" })

  local ticks, t0 = 0, uv.now()
  local timer = uv.new_timer()
  timer:start(10, 10, function() ticks = ticks + 1 end)
  local issued = uv.hrtime()
  vim.cmd("1,2GeminiSend")
  local issue_ms = (uv.hrtime() - issued) / 1e6
  check("plugin: :GeminiSend returns at once", issue_ms < 150, fmt("%.1f ms", issue_ms))

  local poll = uv.new_timer()
  local deadline = uv.now() + 15000
  poll:start(20, 20, step("plugin", function()
    local lines = vim.api.nvim_buf_get_lines(buf, 0, -1, false)
    local expired = uv.now() > deadline
    if #lines <= 3 and not expired then return end
    poll:stop(); poll:close(); timer:stop(); timer:close()
    local elapsed = uv.now() - t0
    check("plugin: reply inserted below the selection", #lines > 3 and lines[1] == "Write one line"
      and lines[2] == "about Lua." and lines[#lines] == "-- end --",
      table.concat(lines, " | "):sub(1, 160))
    local text = table.concat(lines, "\n", 3, math.max(3, #lines - 1))
    check("plugin: reply is not an error message", #lines > 3 and not text:find("gemini: ", 1, true), text:sub(1, 160))
    check("plugin: editor kept ticking while waiting", ticks >= math.max(3, math.floor(elapsed / 10 * 0.25)),
      fmt("%d ticks in %d ms", ticks, elapsed))
    done()
  end))
end

---------------------------------------------------------------------------------------------------
-- Phase 2: 20 requests at once through the luv adapter, a 10 ms timer ticking throughout

local function phase_concurrent(done)
  local gemini = require("gemini")
  local ok_luv, luv_adapter = pcall(require, "gemini.luv")
  if not check("require 'gemini.luv'", ok_luv, not ok_luv and luv_adapter or nil) then return done() end

  local client = gemini.new { api_key = API_KEY, base_url = emulator.url }
  -- json=vim run: user callbacks through vim.schedule (the plugin way); json=cjson run: straight from the
  -- loop's callbacks (fast events), the adapter's default.
  local use_schedule = os.getenv("GEMINI_NVIM_SCHEDULE") or (json_mode == "vim" and "1" or "0")
  use_schedule = use_schedule == "1"
  local detach = luv_adapter.attach(client, uv, use_schedule and { schedule = vim.schedule } or nil)
  check("attach returns a detach function" .. (use_schedule and " (schedule = vim.schedule)" or ""),
    type(detach) == "function", type(detach))
  http("POST", "/emulator/v1/stats/reset", "{}")

  local ticks, max_gap, last = 0, 0, uv.hrtime()
  local timer = uv.new_timer()
  timer:start(10, 10, function()
    local now = uv.hrtime()
    local gap = (now - last) / 1e6
    if gap > max_gap then max_gap = gap end
    last, ticks = now, ticks + 1
  end)

  local results, errors, count, in_fast = {}, {}, 0, 0
  local t0 = uv.hrtime()
  local finished_phase = false
  local function complete()
    if finished_phase then return end
    finished_phase = true
    local elapsed = (uv.hrtime() - t0) / 1e6
    timer:stop(); timer:close()
    -- one last gap: from the last tick to now
    local tail = (uv.hrtime() - last) / 1e6
    if tail > max_gap then max_gap = tail end
    check(fmt("all %d replies arrived", requests), count == requests and #errors == 0,
      fmt("%d callbacks, %d errors%s", count, #errors, errors[1] and (": " .. errors[1]) or ""))
    local good = 0
    for i = 1, requests do
      local r = results[i]
      if type(r) == "table" and type(r.candidates) == "table" and type((r.candidates[1] or {}).output) == "string" then
        good = good + 1
      end
    end
    check("every reply has candidates[1].output", good == requests, fmt("%d of %d", good, requests))
    local min_ticks = math.max(5, math.floor(elapsed / 10 * 0.3))
    check("10 ms timer kept ticking", ticks >= min_ticks, fmt("%d ticks in %.0f ms, need >= %d", ticks, elapsed,
      min_ticks))
    check("no tick gap near the emulator latency", max_gap < latency * 0.9, fmt("max gap %.1f ms", max_gap))
    check("requests overlapped (elapsed well under 20 x latency)", elapsed < requests * latency / 2,
      fmt("%.0f ms", elapsed))
    local stats = http("GET", "/emulator/v1/stats")
    check("emulator saw requests in flight together", stats and (stats.maxInFlight or 0) > 1,
      stats and fmt("maxInFlight %s", tostring(stats.maxInFlight)) or "no stats")
    if use_schedule then
      check("callbacks ran through vim.schedule (Neovim API usable)", count > 0 and in_fast == 0,
        fmt("%d callbacks in a fast event", in_fast))
    end
    detach()
    client:close()
    done()
  end

  local issued = uv.hrtime()
  for i = 1, requests do
    client:generate_text(MODEL, { prompt = { text = "nvim request " .. i } }, function(res, err)
      count = count + 1
      if vim.in_fast_event() then in_fast = in_fast + 1 end
      results[i] = res
      if not res then errors[#errors + 1] = tostring(err) end
      if count == requests then vim.schedule(step("concurrent", complete)) end
    end)
  end
  local issue_ms = (uv.hrtime() - issued) / 1e6
  check(fmt("%d non-blocking calls returned at once", requests), issue_ms < latency * 0.75, fmt("%.1f ms", issue_ms))

  local deadline = uv.new_timer()
  deadline:start(20000, 0, step("concurrent deadline", function()
    deadline:close()
    if not finished_phase then complete() end
  end))
end

---------------------------------------------------------------------------------------------------
-- Phase 1: JSON through vim.json (cjson hidden) or cjson, default codec vs an explicit json option

local function phase_json()
  local gemini = require("gemini")
  local gjson = require("gemini.json")
  if json_mode == "vim" then
    check("require 'cjson' fails (as in a stock Neovim)", not pcall(require, "cjson"))
    if gjson.default_codec then
      local ok, codec = pcall(gjson.default_codec)
      check("gemini.json falls back to vim.json", ok and codec.name == "vim.json" and codec.null == vim.NIL,
        ok and tostring(codec.name) or codec)
    end
  end
  local explicit = { encode = vim.json.encode, decode = vim.json.decode, null = vim.NIL }
  local default_client = gemini.new { api_key = API_KEY, base_url = emulator.url }
  local explicit_client = gemini.new { api_key = API_KEY, base_url = emulator.url, json = explicit }

  local m1, e1 = default_client:get_model(MODEL)
  local m2, e2 = explicit_client:get_model(MODEL)
  check("get_model with the default codec (" .. json_mode .. ")", type(m1) == "table" and m1.name == MODEL,
    e1 and tostring(e1))
  check("get_model with json = vim.json option", type(m2) == "table" and m2.name == MODEL, e2 and tostring(e2))
  check("both codecs decode the same model", deep_equal(m1, m2, nil, nil))
  check("integer fields are integral numbers",
    m1 and is_integral(m1.inputTokenLimit) and is_integral(m1.outputTokenLimit),
    m1 and fmt("inputTokenLimit=%s", tostring(m1.inputTokenLimit)))
  if math.type and m1 then
    check("integer fields are Lua integers", math.type(m1.inputTokenLimit) == "integer")
  end

  local n1, ne1 = default_client:count_text_tokens(MODEL, { prompt = { text = "one two three" } })
  local n2, ne2 = explicit_client:count_text_tokens(MODEL, { prompt = { text = "one two three" } })
  check("count_text_tokens with both codecs",
    n1 and n2 and is_integral(n1.tokenCount) and n1.tokenCount == n2.tokenCount,
    (ne1 or ne2) and tostring(ne1 or ne2) or (n1 and tostring(n1.tokenCount)))

  http("POST", "/emulator/v1/reset", "{}")
  for _, c in ipairs { default_client, explicit_client } do
    local r, e = c:generate_text(MODEL, { prompt = { text = "empty arrays" }, safetySettings = {}, stopSequences = {} })
    check("generate_text with empty repeated fields", type(r) == "table", e and tostring(e))
  end
  local journal = http("GET", "/emulator/v1/requests")
  local arrays = 0
  for _, req in ipairs(type(journal) == "table" and journal or {}) do
    local body = type(req.body) == "string" and req.body or vim.json.encode(req.body or {})
    if body:find('"stopSequences":%[%]') and body:find('"safetySettings":%[%]') then arrays = arrays + 1 end
  end
  check("empty repeated fields are sent as [] by both clients", arrays == 2, fmt("%d of 2 request bodies", arrays))

  local none, err = default_client:get_model("models/no-such-model")
  local none2, err2 = explicit_client:get_model("models/no-such-model")
  check("API error decoded (default codec)", none == nil and type(err) == "table" and err.code == 404
    and err.status == "NOT_FOUND", err and tostring(err))
  check("API error decoded (json option)", none2 == nil and type(err2) == "table" and err2.code == 404
    and err2.status == "NOT_FOUND", err2 and tostring(err2))
  check("no vim.NIL leaks into results", not (function()
    local function has_nil(t, depth)
      if t == vim.NIL then return true end
      if type(t) ~= "table" or depth > 20 then return false end
      for _, v in pairs(t) do if has_nil(v, depth + 1) then return true end end
      return false
    end
    return has_nil(m1, 0) or has_nil(m2, 0) or has_nil(n1, 0)
  end)())
  default_client:close()
  explicit_client:close()
end

---------------------------------------------------------------------------------------------------
-- Start the emulator from the editor's loop, then run the phases

local function start_emulator(on_ready)
  local stdout, stderr = uv.new_pipe(false), uv.new_pipe(false)
  local buffer, errbuf = "", ""
  local handle, pid = uv.spawn("lua5.4", {
    args = { root .. "/bin/gemini-emulator", "--port", "0", "--latency", tostring(latency),
             "--api-key", API_KEY .. "=nvim@example.com" },
    cwd = root,
    stdio = { nil, stdout, stderr },
  }, function(code)
    if not emulator.url then
      vim.schedule(function()
        check("emulator started", false, fmt("exited with %s: %s", tostring(code), errbuf))
        finish()
      end)
    end
  end)
  if not handle then
    check("emulator spawned", false, tostring(pid))
    return finish()
  end
  emulator.handle, emulator.pid = handle, pid
  stderr:read_start(function(_, data) if data then errbuf = errbuf .. data end end)
  stdout:read_start(function(_, data)
    if not data or emulator.url then return end
    buffer = buffer .. data
    local url = buffer:match("gemini%-emulator listening on (http://[^%s]+)")
    if url then
      emulator.url = url
      vim.schedule(function() on_ready(url) end)
    end
  end)
end

say(fmt("nvim test: %s, %s, json=%s, core from %s", tostring(vim.version and vim.version().minor and
  fmt("nvim 0.%d.%d", vim.version().minor, vim.version().patch) or "nvim"), jit and jit.version or _VERSION,
  json_mode, cpath))
local ok_core, core = pcall(require, "gemini.core")
if not check("require 'gemini.core' (LuaJIT build)", ok_core, not ok_core and core or core.VERSION) then
  finish()
else
  start_emulator(step("start", function(url)
    say("emulator at " .. url)
    phase_json()
    phase_concurrent(step("concurrent", function()
      phase_plugin(step("plugin", finish))
    end))
  end))
end
