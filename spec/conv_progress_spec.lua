-- gemini.progress: a tuning progress bar (TTY) or plain lines, drawn from operation metadata.
local progress = require("gemini.progress")

local function sink()
  local s = { out = {} }
  function s:write(...)
    for _, v in ipairs({ ... }) do self.out[#self.out + 1] = v end
    return self
  end
  function s.flush() end
  function s:text() return table.concat(self.out) end
  return s
end

local function clock_at(times)
  local i = 0
  return function()
    i = i + 1
    return times[math.min(i, #times)]
  end
end

local function md(steps, total, loss)
  local m = { tunedModel = "tunedModels/num-gen", totalSteps = total }
  if steps then
    m.completedSteps = steps
    m.completedPercent = steps / total * 100
    m.snapshots = { { step = steps, epoch = 1, meanLoss = loss } }
  end
  return m
end

describe("gemini.progress", function()
  it("prints one plain line per step change when not on a terminal", function()
    local out = sink()
    local update, finish = progress.bar{ stream = out, tty = false, clock = clock_at({ 100, 100, 105, 106, 171 }) }
    update(md(nil, 20))                -- fresh operation: only totalSteps
    update(md(8, 20, 0.5321))
    update(md(8, 20, 0.5321))          -- unchanged: no line
    update(md(20, 20, 0.0125))
    finish()
    assert.are.equal(
      "tunedModels/num-gen: 0.0% step 0/20 elapsed 0:00\n" ..
      "tunedModels/num-gen: 40.0% step 8/20 loss 0.5321 elapsed 0:05\n" ..
      "tunedModels/num-gen: 100.0% step 20/20 loss 0.0125 elapsed 1:11\n", out:text())
  end)

  it("redraws one line with a bar on a terminal and ends it at 100%", function()
    local out = sink()
    local update, finish = progress.bar{ stream = out, tty = true, width = 10, clock = clock_at({ 0, 3, 62 }) }
    update(md(5, 20, 1.25))
    update(md(20, 20, 0.01))
    finish()  -- already ended: writes nothing more
    assert.are.equal(
      "\r[###-------]  25.0%  step 5/20  loss 1.25  0:03\27[K" ..
      "\r[##########] 100.0%  step 20/20  loss 0.01  1:02\27[K\n", out:text())
  end)

  it("finish() ends an unfinished bar line once", function()
    local out = sink()
    local update, finish = progress.bar{ stream = out, tty = true, width = 4, clock = clock_at({ 0, 1 }),
      label = "tuning" }
    update(md(1, 4))
    finish()
    finish()
    assert.are.equal("\rtuning [#---]  25.0%  step 1/4  0:01\27[K\n", out:text())
  end)

  it("copes with missing or odd metadata", function()
    local out = sink()
    local update = progress.bar{ stream = out, tty = false, clock = clock_at({ 0, 0 }) }
    update(nil)
    assert.are.equal("?% elapsed 0:00\n", out:text())
    local r = progress.read("x")
    assert.is_nil(r.percent)
    assert.is_nil(r.steps)
    assert.is_nil(r.loss)
  end)

  it("derives percent from steps, and steps from the last snapshot", function()
    local r = progress.read({ totalSteps = 188, snapshots = { { step = 40, meanLoss = 2.4871845 } } })
    assert.are.equal(40, r.steps)
    assert.are.equal(188, r.total)
    assert.is_true(math.abs(r.percent - 21.2766) < 0.001)
    assert.are.equal(2.4871845, r.loss)
    r = progress.read({ totalSteps = 10, completedPercent = 50 })
    assert.are.equal(5, r.steps)
  end)

  it("formats elapsed time", function()
    assert.are.equal("0:00", progress.format_elapsed(0))
    assert.are.equal("1:05", progress.format_elapsed(65))
    assert.are.equal("1:01:01", progress.format_elapsed(3661))
  end)

  it("draws plain lines when stdout is not a terminal, a bar when it is", function()
    local root = debug.getinfo(1, "S").source:match("^@(.*)spec/conv_progress_spec%.lua$") or ""
    local script = os.tmpname()
    local f = assert(io.open(script, "w"))
    f:write([[
      package.path = arg[1] .. "lua/?.lua;" .. package.path
      local progress = require("gemini.progress")
      io.write(tostring(progress.stdout_is_tty()), "\n")
      local update, finish = progress.bar{ clock = function() return 0 end }
      update({ totalSteps = 4, completedSteps = 2, completedPercent = 50 })
      finish()
    ]])
    f:close()
    local cmd = "lua5.4 " .. script .. " '" .. (root == "" and "./" or root) .. "'"
    local p = assert(io.popen(cmd .. " | cat"))
    local out = p:read("*a")
    p:close()
    assert.are.equal("false\n50.0% step 2/4 elapsed 0:00\n", out)
    -- and a bar when stdout is a terminal (a pseudo-terminal from script(1), where it exists)
    local has_script = os.execute("command -v script >/dev/null 2>&1")
    if has_script == true or has_script == 0 then
      p = assert(io.popen("script -qec \"" .. cmd .. "\" /dev/null"))
      out = p:read("*a"):gsub("\r\n", "\n")
      p:close()
      assert.are.equal("true\n\r[###############---------------]  50.0%  step 2/4  0:00\27[K\n", out)
    end
    os.remove(script)
  end)
end)
