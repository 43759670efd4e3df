-- Tune a model from a CSV file, with a progress bar, then use it and share it.
--   lua5.4 examples/tune_from_csv.lua [CSV] [SHARE_WITH_EMAIL]
local root = (arg and arg[0] or ""):match("^(.-)/?examples/[^/]*$")
if root then  -- run from a checkout: use its lua/ and build/
  root = root == "" and "." or root
  package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
  package.cpath = root .. "/build/lua" .. _VERSION:match("%d+%.%d+") .. "/?.so;" .. package.cpath
end

local gemini = require("gemini")

local csv = arg[1] or ((root or ".") .. "/examples/data/numbers.csv")
local share_with = arg[2] or "reader@example.com"

-- 1. Training data: the CSV's "input" and "output" columns (quoted fields may hold commas).
local data, derr = gemini.dataset.from_csv(csv, { input = "input", output = "output" })
if not data then error("bad training data: " .. derr) end
print(("%d examples from %s"):format(data:count(), csv))

-- 2. Start tuning: create_tuned_model returns a long-running operation.
local client = gemini.new{}
local op = assert(client:create_tuned_model{
  displayName = "next number",
  baseModel = "models/text-bison-001",
  tuningTask = { trainingData = data, hyperparameters = { epochCount = 2, batchSize = 4, learningRate = 0.001 } },
})
print("operation " .. op.name)

-- 3. Wait, drawing a progress bar (plain lines when stdout is not a terminal).
local on_progress, finish = gemini.progress.bar()
local model, err = op:wait{ interval = 0.2, on_progress = on_progress }
finish()
if not model then error("tuning failed: " .. tostring(err)) end
print(model.name .. " is " .. model.state)

-- 4. Use it.
local res = assert(client:generate_text(model.name, { prompt = { text = "41" }, temperature = 0 }))
print("41 -> " .. tostring(gemini.text(res)))

-- 5. Share it: grant READER to someone, and list who has access.
local tuned = client:tuned_model(model.name)
assert(tuned:create_permission{ granteeType = "USER", emailAddress = share_with, role = "READER" })
for p in tuned:permissions() do
  print(("  %-7s %-6s %s"):format(p.role, p.granteeType, p.emailAddress or "(everyone)"))
end

-- 6. Clean up.
assert(tuned:delete())
print("deleted " .. model.name)
client:close()
