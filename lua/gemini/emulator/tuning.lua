--- Tuned models and their long-running create operation, advanced lazily from elapsed time.
--
-- totalSteps = ceil(examples * epochCount / batchSize). Step k completes `step_ms * k`
-- milliseconds after the start; reading a model or its operation computes the state from the
-- clock, so no timer is needed. Each completed step adds a snapshot (step, epoch =
-- floor(step * batchSize / examples), a decreasing meanLoss, computeTime). A training example
-- whose output contains `[[fail]]` makes tuning stop FAILED after half of the steps. Cancelling the
-- operation (`cancel`) freezes a running record at its current step, FAILED, operation error CANCELLED.
-- @module gemini.emulator.tuning

local rand = require "gemini.emulator.rand"
local json = require "gemini.emulator.json"
local proto = require "gemini.emulator.proto"

local M = {}

local floor, ceil = math.floor, math.ceil

M.ID_PATTERN = "^[a-z][a-z0-9%-]*$"

--- Is `id` a valid tunedModelId ([a-z]([a-z0-9-]{0,38}[a-z0-9])?)?
function M.valid_id(id)
  if #id < 1 or #id > 40 then return false end
  if not id:match(M.ID_PATTERN) then return false end
  if #id > 1 and id:sub(-1) == "-" then return false end
  return true
end

--- Derive the id prefix from a display name ("number generator" -> "number-generator";
-- underscores are dropped: "test_number_generator" -> "testnumbergenerator").
function M.slug(display)
  local s = (display or ""):lower():gsub("_", ""):gsub("[^a-z0-9]+", "-"):gsub("^%-+", ""):gsub("%-+$", "")
  s = s:gsub("^[0-9%-]+", "")
  if #s > 27 then s = s:sub(1, 27):gsub("%-+$", "") end
  return s
end

--- Default hyperparameters for a number of examples.
function M.defaults(n)
  if n > 500 then return { batchSize = 64, learningRate = 0.0002 } end
  return { batchSize = 16, learningRate = 0.002 }
end

--- Progress of a record at time `now`: completed steps, state, finish time.
function M.progress(rec, now)
  local c = rec.cancelled
  if c then return c.steps, "FAILED", c.time end
  local step_s = rec.step_ms / 1000
  local limit = rec.fail_step or rec.total_steps
  local done_steps
  if step_s <= 0 then
    done_steps = limit -- --tuning-step-ms 0: tuning completes at once
  else
    done_steps = floor((now - rec.start_time) / step_s + 1e-9)
    if done_steps < 0 then done_steps = 0 end
  end
  if done_steps >= limit then
    done_steps = limit
    local t = rec.start_time + limit * step_s
    if rec.fail_step then return done_steps, "FAILED", t end
    return done_steps, "ACTIVE", t
  end
  return done_steps, "CREATING", nil
end

--- The loss after step k (deterministic, decreasing with noise).
function M.loss(rec, k)
  local r = rand.new(rand.hash(rec.name .. "#" .. k))
  local base = 16 * math.exp(-5 * k / rec.total_steps)
  return base * (0.8 + 0.4 * r()) + 0.0001 * r()
end

-- Google printed startTime and computeTime with 9 fractional digits: deterministic nanoseconds below
-- the microsecond.
local function ns(rec, tag) return rand.hash(rec.name .. "@" .. tag) % 1000 end

local function snapshots(rec, n)
  local out = {}
  for k = 1, n do
    out[k] = { step = k, epoch = floor(k * rec.hyper.batchSize / rec.n_examples),
               meanLoss = M.loss(rec, k),
               computeTime = proto.timestamp_ns(rec.start_time + k * rec.step_ms / 1000, ns(rec, k)) }
  end
  return out
end

--- The state of a record now (also updates rec.state).
function M.state(rec, now)
  local _, state = M.progress(rec, now)
  return state
end

--- Plain TunedModel fields (for proto.render("TunedModel", ...)).
function M.model_fields(rec, now)
  local steps, state, finished = M.progress(rec, now)
  local update = rec.update_time
  if finished and finished > update then update = finished end
  local task = { startTime = proto.timestamp_ns(rec.start_time, ns(rec, "start")), hyperparameters = rec.hyper }
  if steps > 0 then task.snapshots = snapshots(rec, steps) end
  if state == "ACTIVE" then task.completeTime = finished end
  local m = rec.model
  return {
    name = rec.name, baseModel = m.baseModel, tunedModelSource = m.tunedModelSource,
    displayName = m.displayName, description = m.description, state = state,
    createTime = rec.create_time, updateTime = update, tuningTask = task,
    temperature = m.temperature, topP = m.topP, topK = m.topK,
  }
end

--- The Operation JSON object for a record.
-- @param rec tuned-model record
-- @param now current time
-- @param opts render options ({ enum_int = bool })
-- @param fresh true for the create response (metadata has only totalSteps and tunedModel)
function M.operation(rec, now, opts, fresh)
  local steps, state = M.progress(rec, now)
  local md = { tunedModel = rec.name, totalSteps = rec.total_steps }
  if not fresh then
    md.completedSteps = steps
    md.completedPercent = steps / rec.total_steps * 100
    if steps > 0 then md.snapshots = snapshots(rec, steps) end
  end
  local op = json.object("name", rec.op_name, "metadata", proto.any("CreateTunedModelMetadata", md, opts))
  if fresh then return op end
  if state == "ACTIVE" then
    json.set(op, "done", true)
    json.set(op, "response", proto.any("TunedModel", M.model_fields(rec, now), opts))
  elseif rec.cancelled then
    json.set(op, "done", true)
    json.set(op, "error", json.object("code", 1, "message", M.CANCELLED_MESSAGE))
  elseif state == "FAILED" then
    json.set(op, "done", true)
    json.set(op, "error", json.object("code", 13, "message",
      "Tuning failed at step " .. steps .. ": the training data made the loss diverge ([[fail]] marker)."))
  end
  return op
end

--- The message of a cancelled operation's error (google.rpc.Code CANCELLED = 1).
M.CANCELLED_MESSAGE = "Operation was cancelled."

--- Cancel tuning at `now` (google.longrunning CancelOperation): a record still CREATING stops with
-- the steps completed so far, state FAILED and its operation done with error CANCELLED; a finished
-- record is unchanged. Returns true when it was running.
-- @param rec tuned-model record
-- @param now current time
function M.cancel(rec, now)
  local steps, state = M.progress(rec, now)
  if state ~= "CREATING" then return false end
  rec.cancelled = { steps = steps, time = now }
  return true
end

--- Number of examples * epochs / batch, rounded up.
function M.total_steps(n, epochs, batch)
  return ceil(n * epochs / batch)
end

return M
