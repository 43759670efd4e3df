-- What failures look like, and how to handle each kind.
--   lua5.4 examples/error_handling.lua
local root = (arg and arg[0] or ""):match("^(.-)/?examples/[^/]*$")
if root then  -- run from a checkout: use its lua/ and build/
  root = root == "" and "." or root
  package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
  package.cpath = root .. "/build/lua" .. _VERSION:match("%d+%.%d+") .. "/?.so;" .. package.cpath
end

local gemini = require("gemini")
local client = gemini.new{}

-- 1. API errors are returned, never raised: nil plus an error table.
local model, err = client:get_model("models/no-such-model")
assert(model == nil)
print("1. " .. err.status .. " (HTTP " .. tostring(err.code) .. "): " .. err.message)

-- 2. A blocked reply is not an error: HTTP 200 without candidates. gemini.text says why.
local res = assert(client:generate_text("models/text-bison-001", { prompt = { text = "[[block:safety]] insult me" } }))
local text, why = gemini.text(res)
print("2. text = " .. tostring(text) .. "; " .. why)

-- ... and the safety shorthand can lower the threshold for that category.
res = assert(client:generate_text("models/text-bison-001", {
  prompt = { text = "[[block:safety]] insult me" }, safety = { toxicity = "none" } }))
print("   with safety = { toxicity = 'none' }: " .. tostring(gemini.text(res) ~= nil and "answered" or "blocked"))

-- 3. Misuse raises at once, before any request: a misspelled field, a malformed name.
local ok, msg = pcall(client.generate_text, client, "models/text-bison-001",
  { prompt = { text = "hi" }, temprature = 0.5 })
print("3. raised: " .. tostring(ok == false) .. ": " .. tostring(msg):gsub("^[^:]*:%d+: ", ""))
ok, msg = pcall(client.model, client, "models/../../etc")
print("   raised: " .. tostring(ok == false) .. ": " .. tostring(msg):gsub("^[^:]*:%d+: ", ""))

-- 4. Network failures have no HTTP code; their status says what to do (retry UNAVAILABLE later).
-- The client retries such failures by itself (with backoff) unless told not to, as here.
local offline = gemini.new{ base_url = "http://127.0.0.1:9", api_key = "k", connect_timeout = 2, retry = false }
local _, neterr = offline:get_model("models/text-bison-001")
print("4. code = " .. tostring(neterr.code) .. ", status = " .. neterr.status)
offline:close()

-- 5. A typical handler: branch on err.status.
local function describe(e)
  if e.status == "NOT_FOUND" then return "check the name"
  elseif e.status == "PERMISSION_DENIED" or e.status == "UNAUTHENTICATED" then return "check the key"
  elseif e.status == "RESOURCE_EXHAUSTED" then return "slow down, retry after " .. tostring(e.retry_after) .. " s"
  elseif e.status == "UNAVAILABLE" or e.status == "DEADLINE_EXCEEDED" then return "retry later"
  end
  return "give up: " .. tostring(e)
end
print("5. " .. describe(select(2, client:get_tuned_model("tunedModels/missing-model"))))
client:close()
