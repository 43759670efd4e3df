-- luv lifecycles: the luv module and loop across spec files in one process (a child process, so a
-- crash fails a test instead of killing busted), and poll handles that never outlive their sockets
-- when the client closes or cancels outside the loop's callbacks.
local helper = require("spec.helpers.emulator")
local adapter = require("gemini.luv")
local uv = require("spec.helpers.luv")

local root = helper.root() .. "/"

-- Runs `body` (Lua source) in a child lua5.4 with this checkout's paths; returns its output and
-- whether it exited 0. The child is lua5.4 whatever runs busted: it loads the 5.4 build of the core.
local function child(body)
  local script = os.tmpname()
  local f = assert(io.open(script, "w"))
  f:write(("package.path = %q .. package.path\npackage.cpath = %q .. package.cpath\n"):format(
    root .. "lua/?.lua;" .. root .. "lua/?/init.lua;" .. root .. "?.lua;", root .. "build/lua5.4/?.so;"))
  f:write(body)
  f:close()
  local p = assert(io.popen("timeout -k 5 60 lua5.4 " .. script .. " 2>&1; echo EXIT=$?"))
  local out = p:read("*a")
  p:close()
  os.remove(script)
  return out, out:match("EXIT=(%d+)%s*$") == "0"
end

-- Poll handles in the loop that are active and not closing.
local function live_polls()
  local n = 0
  uv.walk(function(h)
    if tostring(h):match("^uv_poll_t") and not h:is_closing() and h:is_active() then n = n + 1 end
  end)
  return n
end

-- Steps the shared loop until `cond()` or `limit` seconds passed; returns cond().
local function step_until(cond, limit)
  local dog = uv.new_timer()
  dog:start(math.floor(limit * 1000), 0, function() end)
  uv.unref(dog)
  local deadline = uv.hrtime() + limit * 1e9
  while not cond() and uv.hrtime() < deadline do uv.run("once") end
  dog:close()
  uv.run("nowait")
  return cond()
end

describe("luv lifecycle", function()
  local emu = helper.with_emulator {}
  local client

  before_each(function() client = emu:client { retry = false } end)
  after_each(function()
    client:close()
    uv.run("nowait")
  end)

  -- attaches `client` with getModel answering after 3 s (requests stay in flight); returns the count of
  -- live poll handles before, and the detach function
  local function attach_slow()
    emu:fault { match = { method = "getModel" }, action = "delay", delayMs = 3000, times = 0 }
    uv.run("nowait")
    local base = live_polls()
    return base, adapter.attach(client, uv)
  end

  -- What spec/core_spec.lua and spec/async_luv_spec.lua did in one busted process (which crashed it in
  -- uv_walk / uv_run): one file drives an event-mode core client on raw luv polls, busted's insulation
  -- then drops every module the file required, and the next file requires luv again, attaches a client,
  -- closes it with requests in flight and walks the loop. Specs take luv from spec/helpers/luv.lua.
  it("luv used by one spec file, unloaded by insulation, then used by the next: no crash", function()
    local out, ok = child(([[
      local url = %q
      local before = {}
      for k in pairs(package.loaded) do before[k] = true end
      -- file 1 (as core_spec): an event-mode core client driven from raw poll handles
      do
        local uv = require("spec.helpers.luv")
        local core = require("gemini.core")
        local c = core.client {}
        local polls, timer = {}, uv.new_timer()
        local function apply()
          local ev = c:take_events()
          for _, s in ipairs(ev.sockets) do
            local p = polls[s.fd]
            if s.want == "remove" then
              if p then p:close(); polls[s.fd] = nil end
            else
              if not p then p = (uv.new_socket_poll or uv.new_poll)(s.fd); polls[s.fd] = p end
              local fd = s.fd
              p:start("rw", function(_, events)
                c:socket_action(fd, events and events:find("r") ~= nil, events and events:find("w") ~= nil)
                apply()
              end)
            end
          end
          if ev.timeout_ms then
            timer:stop()
            if ev.timeout_ms >= 0 then
              timer:start(ev.timeout_ms, 0, function() c:socket_action(-1); apply() end)
            end
          end
        end
        c:take_events()
        for i = 1, 3 do c:start { url = url .. "/v1beta3/models?key=k&n=" .. i } end
        apply()
        local deadline = core.now() + 20
        while c:in_flight() > 0 and core.now() < deadline do uv.run("once") end
        assert(c:in_flight() == 0, "file 1: transfers still in flight")
        assert(#c:completions() == 3, "file 1: completions")
        timer:close()
        for _, p in pairs(polls) do p:close() end
        uv.run("nowait")
        c:close()
      end
      -- busted's insulation: what the file required is dropped, and collected
      for k in pairs(package.loaded) do if not before[k] then package.loaded[k] = nil end end
      collectgarbage("collect"); collectgarbage("collect")
      local churn = {}                           -- reuse what was freed
      for i = 1, 20000 do churn[i] = { i, tostring(i), { i } } end
      churn = nil
      collectgarbage("collect")
      -- file 2 (as async_luv_spec): attach, close with requests in flight, walk the loop
      local uv = require("spec.helpers.luv")
      local gemini = require("gemini")
      local function count()
        local n = 0
        uv.walk(function(h) if not h:is_closing() then n = n + 1 end end)
        return n
      end
      local base = count()
      local client = gemini.new { api_key = "k", base_url = url, retry = false }
      require("gemini.luv").attach(client, uv)
      local done = 0
      for _ = 1, 5 do client:get_model("text-bison-001", function() done = done + 1 end) end
      local t = uv.new_timer()
      t:start(50, 0, function() t:close(); client:close() end)
      uv.run()
      uv.run("nowait")
      assert(count() == base, "file 2: handles left in the loop")
      assert(done == 5, "file 2: callbacks " .. done)
      print("CHILD OK")
    ]]):format(emu.url))
    assert.is_true(ok, out)
    assert.matches("CHILD OK", out, 1, true)
  end)

  it("every spec file takes luv from spec/helpers/luv.lua (code run by busted, not child scripts)", function()
    local offenders = {}
    local list = assert(io.popen("find " .. helper.shquote(root .. "spec") .. " -name '*.lua' | sort"))
    for path in list:lines() do
      if not path:match("/spec/helpers/luv%.lua$") and not path:match("/spec/nvim/") then
        local src = helper.readfile(path)
        src = src:gsub("%[(=*)%[.-%]%1%]", ""):gsub("%-%-[^\n]*", "")   -- long strings and comments
        if src:match("require%s*%(?%s*[\"']luv[\"']") then offenders[#offenders + 1] = path end
      end
    end
    list:close()
    assert.same({}, offenders)
  end)

  it("client:close() outside the loop stops its poll handles at once, before other code gets their fds",
    function()
    local base = attach_slow()
    local errs = {}
    for i = 1, 3 do client:get_model("text-bison-001", function(_, e) errs[i] = e end) end
    assert.is_true(step_until(function() return live_polls() >= base + 3 end, 10), "no poll handles")
    client:close()
    -- no callback of the loop ran in between: the sockets libcurl just closed are watched no more
    assert.equal(base, live_polls())
    for i = 1, 3 do assert.equal("CANCELLED", errs[i] and errs[i].status) end
    -- sockets opened now (they get the fds just closed) work with the loop
    local connected = 0
    local tcps = {}
    for i = 1, 4 do
      tcps[i] = uv.new_tcp()
      tcps[i]:connect("127.0.0.1", emu.port, function(err) if not err then connected = connected + 1 end end)
    end
    local all = step_until(function() return connected == 4 end, 5)
    for i = 1, 4 do tcps[i]:close() end
    uv.run("nowait")
    assert.is_true(all, connected .. " of 4 connections reported")
  end)

  it("req:cancel() outside the loop stops the poll handle of the socket it closed; the callback still runs",
    function()
    local base, detach = attach_slow()
    local calls, cerr = 0, nil
    local req = client:get_model("text-bison-001", function(_, e) calls = calls + 1; cerr = e end)
    assert.is_true(step_until(function() return live_polls() > base end, 10), "no poll handle")
    assert.is_true(req:cancel())
    assert.equal(base, live_polls())
    assert.is_true(step_until(function() return calls > 0 end, 5), "no callback after cancel")
    assert.equal(1, calls)
    assert.equal("CANCELLED", cerr.status)
    detach()
    uv.run("nowait")
  end)
end)
