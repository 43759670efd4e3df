--- Event-loop adapter: drives a client from a luv (libuv) loop, e.g. Neovim's.
--
--    local uv = require("luv")                      -- in Neovim: vim.uv or vim.loop
--    local detach = require("gemini.luv").attach(client, uv)
--    client:generate_text("text-bison-001", { prompt = { text = "Hi" } }, function(res, err) ... end)
--    uv.run()                                       -- (Neovim runs its loop itself)
--    detach()                                       -- closes every handle the adapter made
--
-- It uses libcurl's socket interface through the C core: one poll handle per socket libcurl asks for
-- (started, changed and stopped as libcurl wants), and one timer that follows both libcurl's timeout and
-- the client's own timers (retry back-off, `op:wait` polling). Nothing wakes the loop at fixed intervals.
-- libcurl's callbacks only record into the C core; this module acts on the records after libcurl has
-- returned, then collects completions and runs the user callbacks, never from inside a C callback.
--
-- Errors raised by a user callback propagate out of the loop's callback with a traceback (standalone
-- luv prints "Uncaught Error" and exits; Neovim reports it and goes on), unless `opts.on_error` is given.
-- The client stays consistent either way: the remaining callbacks run at the next loop iteration.
--
-- Blocking calls (and `poll`/`run`) still work while attached: once the client is in event mode the C
-- core drives them through libcurl's socket interface too, so every socket they open, change or close
-- is recorded, and the adapter applies those records (one sync) as soon as the call returns. Transfers
-- started before attaching are announced by libcurl when the client enters event mode.
--
-- Poll handles do not outlive their sockets: libcurl also closes sockets outside the loop's callbacks
-- (`req:cancel()`, `client:close()`, a blocking call), and the adapter stops their poll handles right
-- then, before control returns to other code, because an fd closed under an active poll handle is soon
-- reused (the next socket, pipe or file anyone opens) and libuv then refuses a handle for it (EEXIST)
-- or hands its events to the stale poll. `client:close()` detaches the adapter at once.
-- @module gemini.luv

local M = {}

local clock = require("gemini.client").clock

local EVENTS = { ["in"] = "r", out = "w", inout = "rw" }

--- Drives `client` from the luv loop `uv`.
-- @param client a gemini client (`gemini.new{...}`)
-- @param uv the luv module (`require "luv"`, `vim.uv` or `vim.loop`)
-- @param opts optional table:
--   `schedule` (function(fn)): runs user callbacks through it, e.g. `vim.schedule` in Neovim;
--   `on_error` (function(err)): called with an error (message and traceback) raised by a user callback,
--   instead of raising it from the loop's callback.
-- @return detach function: stops and closes every handle made here; the client stays usable (blocking
--   calls, `poll`, `run`, or a later `attach`). Calling it twice is harmless.
function M.attach(client, uv, opts)
  if type(client) ~= "table" or type(client._core) == "nil" or type(client._collect) ~= "function" then
    error("bad argument #1 to 'attach' (a gemini client expected)", 2)
  end
  if type(uv) ~= "table" or type(uv.new_timer) ~= "function" then
    error("bad argument #2 to 'attach' (the luv module expected, e.g. require('luv') or vim.uv)", 2)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error("bad argument #3 to 'attach' (table expected, got " .. type(opts) .. ")", 2)
  end
  opts = opts or {}
  local schedule, on_error = opts.schedule, opts.on_error
  if schedule ~= nil and type(schedule) ~= "function" then
    error("bad argument #3 to 'attach' (option 'schedule' must be a function)", 2)
  end
  if on_error ~= nil and type(on_error) ~= "function" then
    error("bad argument #3 to 'attach' (option 'on_error' must be a function)", 2)
  end
  if client._closed then error("bad argument #1 to 'attach' (client is closed)", 2) end
  if client._luv_detach then error("bad argument #1 to 'attach' (client already attached to a loop)", 2) end

  local core = client._core
  local new_poll = uv.new_socket_poll or uv.new_poll
  local polls = {}          -- fd -> poll handle
  local timer = uv.new_timer()
  local curl_at             -- when libcurl wants socket_action(-1), in client clock seconds, or nil
  local rerun = false       -- callbacks left after an error: run them at the next iteration
  local busy = false        -- inside our own dispatch or callback run: it syncs and runs callbacks at its end
  local scheduled = false
  local detached = false
  local deferred            -- an error of a sync run from wake(): reported from the loop's callback
  local detach, on_timer, dispatch, step

  local function report(err)
    if on_error then on_error(err) else error(err, 0) end
  end

  -- Applies what libcurl asked for since the last time (sockets, timeout) and arms the one timer.
  local function sync()
    if detached then return end
    if client._closed then detach(); return end
    local ev = core:take_events()
    for _, s in ipairs(ev.sockets) do
      local fd = s.fd
      local p = polls[fd]
      if s.want == "remove" then
        if p then
          polls[fd] = nil
          if not p:is_closing() then p:close() end
        end
      else
        if not p then
          p = new_poll(fd)
          polls[fd] = p
        end
        local this = p
        p:start(EVENTS[s.want] or "rw", function(err, events)
          -- a poll error (e.g. the socket went bad): stop watching it and tell libcurl
          -- (CURL_CSELECT_ERR); it fails the transfer or announces the socket again
          if err ~= nil and not this:is_closing() then this:stop() end
          local r = events ~= nil and events:find("r", 1, true) ~= nil
          local w = events ~= nil and events:find("w", 1, true) ~= nil
          dispatch(fd, r, w, err ~= nil)
        end)
      end
    end
    if ev.timeout_ms ~= nil then
      if ev.timeout_ms < 0 then curl_at = nil else curl_at = clock() + ev.timeout_ms / 1000 end
    end
    local now = clock()
    local at = curl_at
    local left = client:_next_timer()
    if left and (not at or now + left < at) then at = now + left end
    -- callbacks left by an error, or collected outside our dispatch (a blocking call): run them soon
    -- (inside our dispatch, or while a schedule()d run is pending, they are taken care of already)
    if not scheduled and (rerun or (not busy and #client._ready > 0)) then at = now end
    if at then
      local ms = math.ceil((at - now) * 1000)
      if ms < 0 then ms = 0 end
      if uv.update_time then uv.update_time() end
      timer:start(ms, 0, on_timer)
    else
      timer:stop()
    end
  end

  local function run_callbacks()
    scheduled = false
    if detached or client._closed then return end
    rerun = false
    busy = true
    local ok, err = pcall(client._run_callbacks, client)
    busy = false
    if not ok then rerun = true end    -- the others stay due: the timer fires at once for them
    sync()
    if not ok then report(err) end
  end

  -- One round: tell libcurl what happened (fd, or the timer when fd is nil), collect what finished,
  -- re-arm, then run the user callbacks (directly, or through opts.schedule).
  function dispatch(fd, readable, writable, failed)
    if detached then return end
    if client._closed then detach(); return end
    busy = true
    local ok, err = pcall(function()
      if fd then
        core:socket_action(fd, readable, writable, failed)
      elseif curl_at and curl_at <= clock() + 0.001 then
        curl_at = nil
        core:socket_action(-1)
      end
      client:_collect()
    end)
    if not ok then rerun = true end    -- whatever was collected still gets its callbacks, next iteration
    sync()
    busy = false
    local failure = (not ok and err) or deferred
    deferred = nil
    if failure then report(failure) end
    if #client._ready > 0 or rerun then
      if schedule then
        if not scheduled then
          scheduled = true
          schedule(run_callbacks)
        end
      else
        run_callbacks()
      end
    end
  end

  function on_timer() dispatch(nil) end

  -- The client calls this when it starts a transfer, sets a timer, cancels or closes (and `step` when a
  -- blocking call returns), from user code or from our own dispatch. libcurl may just have closed
  -- sockets (a cancelled transfer's connection, every socket on close, one a blocking call ended): their
  -- poll handles go now, not at the loop's next iteration, before any other code can get the same fd
  -- number (see the module comment). A closed client detaches at once. Then, outside our own dispatch,
  -- the loop runs one round at its next iteration (the caller may be about to queue a callback: cancel).
  local function wake()
    if detached then return end
    if client._closed then detach(); return end
    -- wake runs in the middle of the client's bookkeeping (start, cancel): never raise into it
    local ok, err = pcall(sync)
    if not ok then deferred = deferred or err end
    if busy and ok then return end
    if uv.update_time then uv.update_time() end
    timer:start(0, 0, on_timer)
  end

  function detach()
    if detached then return end
    detached = true
    for fd, p in pairs(polls) do
      polls[fd] = nil
      if not p:is_closing() then p:close() end
    end
    if not timer:is_closing() then timer:close() end
    if client._wake == wake then client._wake = nil end
    if rawget(client, "_step") == step then client._step = nil end
    if client._luv_detach == detach then client._luv_detach = nil end
    -- nothing more is recorded for a loop (the record would grow with every socket libcurl opens)
    if not client._closed then core:event_mode(false) end
  end

  client._wake = wake
  -- blocking calls, poll() and run() drive transfers through Client._step: the sockets they opened or
  -- closed are recorded in the core; sync once when each step returns
  local class_step = getmetatable(client).__index._step
  function step(self, wait)
    local n = class_step(self, wait)
    wake()
    return n
  end
  client._step = step
  client._luv_detach = detach
  -- transfers already started (or timers set) before attaching
  -- (event mode on: libcurl announces their sockets, and the first sync gets every socket and the timer)
  busy = true
  core:event_mode(true)
  if client:_pending() > 0 then core:socket_action(-1) end
  busy = false
  sync()
  return detach
end

return M
