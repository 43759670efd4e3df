--- Progress display for tuning operations.
--
--    local op = assert(client:create_tuned_model(body))
--    local model, err = op:wait{ on_progress = gemini.progress.bar() }
--
-- On a terminal the bar redraws one line:
--
--    [############------------------]  40.0%  step 8/20  loss 0.532  0:12
--
-- When the output is not a terminal it prints one plain line each time the step changes:
--
--    tunedModels/x: 40.0% step 8/20 loss 0.532 elapsed 0:12
--
-- @module gemini.progress

local M = {}

local tty_cache

--- Whether the process's standard output is a terminal (POSIX `test -t 1`; false elsewhere).
-- @treturn boolean
function M.stdout_is_tty()
  if tty_cache == nil then
    local sep = package.config:sub(1, 1)
    if sep ~= "/" then
      tty_cache = false
    else
      local a, _, c = os.execute("test -t 1")
      if type(a) == "number" then tty_cache = (a == 0) else tty_cache = (a == true and (c or 0) == 0) end
    end
  end
  return tty_cache
end

--- Elapsed seconds as `M:SS` (or `H:MM:SS`).
-- @tparam number s seconds
-- @treturn string
function M.format_elapsed(s)
  s = math.floor((tonumber(s) or 0) + 0.5)
  if s < 0 then s = 0 end
  local h = math.floor(s / 3600)
  local m = math.floor((s - h * 3600) / 60)
  local sec = s - h * 3600 - m * 60
  if h > 0 then return ("%d:%02d:%02d"):format(h, m, sec) end
  return ("%d:%02d"):format(m, sec)
end

--- The numbers of a CreateTunedModelMetadata.
-- @tparam table metadata `{ totalSteps =, completedSteps =, completedPercent =, snapshots = {...}, tunedModel = }`
-- @treturn table `{ percent =, steps =, total =, loss =, name = }` (fields nil when unknown)
function M.read(metadata)
  local md = type(metadata) == "table" and metadata or {}
  local total = tonumber(md.totalSteps)
  local steps = tonumber(md.completedSteps)
  local percent = tonumber(md.completedPercent)
  local loss
  if type(md.snapshots) == "table" and #md.snapshots > 0 then
    local last = md.snapshots[#md.snapshots]
    if type(last) == "table" then
      loss = tonumber(last.meanLoss)
      steps = steps or tonumber(last.step)
    end
  end
  if percent == nil and steps and total and total > 0 then percent = steps / total * 100 end
  if steps == nil and percent ~= nil and total then steps = math.floor(total * percent / 100 + 0.5) end
  if percent == nil and total then percent, steps = 0, steps or 0 end
  return { percent = percent, steps = steps, total = total, loss = loss, name = md.tunedModel }
end

local function fmt_loss(l)
  return ("%.4g"):format(l)
end

--- One plain line for a metadata snapshot.
-- @tparam table metadata
-- @tparam number elapsed seconds
-- @treturn string
function M.line(metadata, elapsed)
  local r = M.read(metadata)
  local parts = {}
  if r.name then parts[#parts + 1] = tostring(r.name) .. ":" end
  parts[#parts + 1] = r.percent and ("%.1f%%"):format(r.percent) or "?%"
  if r.steps or r.total then
    parts[#parts + 1] = ("step %s/%s"):format(r.steps and tostring(math.floor(r.steps)) or "?",
      r.total and tostring(math.floor(r.total)) or "?")
  end
  if r.loss then parts[#parts + 1] = "loss " .. fmt_loss(r.loss) end
  parts[#parts + 1] = "elapsed " .. M.format_elapsed(elapsed)
  return table.concat(parts, " ")
end

--- The bar form (no carriage return, no newline).
-- @tparam table metadata
-- @tparam number elapsed seconds
-- @tparam[opt=30] integer width cells in the bar
-- @treturn string
function M.render(metadata, elapsed, width)
  width = width or 30
  local r = M.read(metadata)
  local p = r.percent or 0
  if p < 0 then p = 0 elseif p > 100 then p = 100 end
  local filled = math.floor(p / 100 * width + 0.5)
  local s = "[" .. ("#"):rep(filled) .. ("-"):rep(width - filled) .. "] " .. ("%5.1f%%"):format(p)
  if r.steps or r.total then
    s = s .. ("  step %s/%s"):format(r.steps and tostring(math.floor(r.steps)) or "?",
      r.total and tostring(math.floor(r.total)) or "?")
  end
  if r.loss then s = s .. "  loss " .. fmt_loss(r.loss) end
  return s .. "  " .. M.format_elapsed(elapsed)
end

local function default_clock()
  local ok, socket = pcall(require, "socket")
  if ok and type(socket) == "table" and socket.gettime then return socket.gettime end
  return os.time
end

--- A progress display to pass as `on_progress`.
-- @tparam[opt] table opts
--   `stream` (an object with `:write`, default io.stdout); `tty` (boolean: force the bar or plain lines;
--   default: a bar when the stream is io.stdout and it is a terminal); `width` (bar cells, default 30);
--   `clock` (function returning seconds, default socket.gettime or os.time); `label` (text before the bar)
-- @treturn function `on_progress(metadata)`: draws one update
-- @treturn function `finish(ok)`: ends the bar's line (call it after wait returns; harmless twice)
function M.bar(opts)
  opts = opts or {}
  local stream = opts.stream or io.stdout
  local tty = opts.tty
  if tty == nil then tty = (stream == io.stdout) and M.stdout_is_tty() end
  local clock = opts.clock or default_clock()
  local width = opts.width or 30
  local label = opts.label and (opts.label .. " ") or ""
  local start = clock()
  local last_plain, open_line = nil, false

  local function finish()
    if open_line then
      stream:write("\n")
      if stream.flush then stream:flush() end
      open_line = false
    end
  end

  local function update(metadata)
    local elapsed = clock() - start
    if tty then
      stream:write("\r" .. label .. M.render(metadata, elapsed, width) .. "\27[K")
      open_line = true
      local r = M.read(metadata)
      if r.percent and r.percent >= 100 then finish() end
    else
      local r = M.read(metadata)
      local key = tostring(r.steps) .. "/" .. tostring(r.total) .. "/" .. tostring(r.percent)
      if key ~= last_plain then
        last_plain = key
        stream:write(label .. M.line(metadata, elapsed) .. "\n")
      end
    end
    if stream.flush then stream:flush() end
  end

  return update, finish
end

return M
