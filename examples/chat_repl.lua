-- A chat REPL: type a line, get a reply; the session keeps the history.
--   lua5.4 examples/chat_repl.lua            (talks to GEMINI_BASE_URL with GEMINI_API_KEY)
-- Commands: /undo drops the last exchange, /tokens counts the history, /history prints it, /quit.
local root = (arg and arg[0] or ""):match("^(.-)/?examples/[^/]*$")
if root then  -- run from a checkout: use its lua/ and build/
  root = root == "" and "." or root
  package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
  package.cpath = root .. "/build/lua" .. _VERSION:match("%d+%.%d+") .. "/?.so;" .. package.cpath
end

local gemini = require("gemini")

local client = gemini.new{}   -- api_key and base_url come from GEMINI_API_KEY / GEMINI_BASE_URL
local chat = client:model("chat-bison-001"):chat{
  context = "You are a friendly assistant who answers in one or two sentences.",
  examples = {
    { "Hello", "Hi! What would you like to talk about?" },                  -- a pair of strings
    { input = "Thanks", output = "You're welcome." },                       -- or input/output
  },
  temperature = 0.2,
}

io.write("Chat with chat-bison-001. /undo /tokens /history /quit\n")
while true do
  io.write("you> ")
  io.flush()
  local line = io.read("*l")
  if line == nil or line == "/quit" then break end
  if line == "/undo" then
    print("(forgot: " .. tostring(chat:undo()) .. ")")
  elseif line == "/tokens" then
    local n, err = chat:count_tokens()
    print(n and (n .. " tokens in the conversation") or ("error: " .. tostring(err)))
  elseif line == "/history" then
    for _, m in ipairs(chat.messages) do print(m.author .. ": " .. m.content) end
  elseif line:find("%S") then
    local reply, err = chat:send(line)
    if reply then
      print("model> " .. reply)
    elseif err.status == "BLOCKED" then
      -- a blocked reply is not added to the history: rephrase and try again
      print("(blocked: " .. err.message .. ")")
    else
      print("error: " .. tostring(err))
    end
  end
end
print(("\n%d messages in the history; last reply: %s"):format(#chat.messages, tostring(chat.last)))
client:close()
