--- Chat sessions over generateMessage.
--
--    local chat = client:model("chat-bison-001"):chat{
--      context = "You are a terse assistant.",
--      examples = { { "Hi", "Hello." }, { input = "Bye", output = "Goodbye." } },
--      temperature = 0.2,
--    }
--    local reply, res = chat:send("What is Lua?")
--    if not reply then print("no reply: " .. tostring(res)) end
--    print(#chat.messages, chat.last)
--    chat:undo()                      -- forget the last exchange
--    print(chat:count_tokens())       -- tokens of context + examples + history
--
-- `chat.messages` is the history, a list of `{ author =, content = }` (the server names the user "0"
-- and the model "1"). A blocked reply or a failed request leaves the history as it was.
--
-- @module gemini.chat

local text = require("gemini.text")

local M = {}

local Chat = {}
Chat.__index = Chat

--- Error value of a blocked reply: `status = "BLOCKED"`, `message`, `filters`, `safety_feedback`,
-- `response`; `tostring(err)` is one line.
local Blocked = {}
Blocked.__index = Blocked
Blocked.__tostring = function(e) return "BLOCKED: " .. e.message end
M.Blocked = Blocked

local function copy_messages(list)
  local out = {}
  for i, m in ipairs(list) do
    out[i] = { author = m.author, content = m.content }
  end
  return out
end

local function to_example(e, i)
  if type(e) ~= "table" then
    error(("bad example #%d (table expected, got %s)"):format(i, type(e)), 4)
  end
  local input, output
  if e[1] ~= nil or e[2] ~= nil then
    input, output = e[1], e[2]
  else
    input, output = e.input, e.output
  end
  if type(input) == "table" then input = input.content end
  if type(output) == "table" then output = output.content end
  if type(input) ~= "string" or type(output) ~= "string" then
    error(("bad example #%d (expected { input, output } strings or { input =, output = })"):format(i), 4)
  end
  return { input = { content = input }, output = { content = output } }
end

-- Request options copied into every generateMessage body (Lua-style and wire names).
local OPTIONS = {
  temperature = "temperature", candidate_count = "candidateCount", candidateCount = "candidateCount",
  top_p = "topP", topP = "topP", top_k = "topK", topK = "topK",
}

--- Start a chat with a model handle (normally through `model:chat{...}`).
-- @param model a model handle (or any object with `generate_message(self, body)` and
--   `count_message_tokens(self, body)`), e.g. `client:model("chat-bison-001")`
-- @tparam[opt] table opts `context` (string), `examples` (list of `{ "in", "out" }` or
--   `{ input =, output = }`), `messages` (initial history, strings alternate user/model or
--   `{ author =, content = }`), `temperature`, `top_p`, `top_k`, `candidate_count`
-- @treturn table the chat session
function M.new(model, opts)
  if type(model) ~= "table" and type(model) ~= "userdata" then
    error("bad argument #1 to 'chat' (model handle expected, got " .. type(model) .. ")", 2)
  end
  if type(model.generate_message) ~= "function" then
    error("bad argument #1 to 'chat' (" .. tostring(model.name or model)
      .. " has no generate_message: chat needs a base model such as models/chat-bison-001;"
      .. " tuned models of v1beta3 only generate text)", 2)
  end
  opts = opts or {}
  if type(opts) ~= "table" then error("bad argument #2 to 'chat' (table expected, got " .. type(opts) .. ")", 2) end
  if opts.context ~= nil and type(opts.context) ~= "string" then
    error("bad option 'context' (string expected, got " .. type(opts.context) .. ")", 2)
  end
  local examples = {}
  for i, e in ipairs(opts.examples or {}) do examples[i] = to_example(e, i) end
  local params = {}
  for k, wire in pairs(OPTIONS) do
    if opts[k] ~= nil then params[wire] = opts[k] end
  end
  local messages = {}
  for i, m in ipairs(opts.messages or {}) do
    if type(m) == "string" then
      messages[i] = { author = (i % 2 == 1) and "0" or "1", content = m }
    else
      messages[i] = { author = m.author, content = m.content }
    end
  end
  local self = setmetatable({
    model = model,
    context = opts.context,
    examples = examples,
    params = params,
    messages = messages,
    last = nil,
    last_response = nil,
  }, Chat)
  for i = #messages, 2, -1 do
    if messages[i].author ~= messages[1].author then self.last = messages[i].content; break end
  end
  return self
end

--- The prompt (MessagePrompt) for the current history plus optional extra messages.
-- @tparam[opt] {table,...} extra messages appended after the history
-- @treturn table `{ context =, examples =, messages = }`
function Chat:prompt(extra)
  local msgs = copy_messages(self.messages)
  for _, m in ipairs(extra or {}) do msgs[#msgs + 1] = m end
  local p = { messages = msgs }
  if self.context then p.context = self.context end
  if #self.examples > 0 then p.examples = self.examples end
  return p
end

-- Records the outcome of a generateMessage call for `message`; returns what send returns.
local function finish(self, message, res, err)
  if not res then return nil, err end
  self.last_response = res
  local reply, why = text.text(res)
  if not reply then
    return nil, setmetatable({
      status = "BLOCKED", message = why, filters = res.filters, safety_feedback = res.safetyFeedback,
      response = res,
    }, Blocked), res
  end
  -- the server echoes the prompt's messages with authors assigned; the first candidate is the reply
  local echoed = res.messages
  if type(echoed) == "table" and #echoed == #self.messages + 1 then
    self.messages = copy_messages(echoed)
  else
    self.messages[#self.messages + 1] = { author = "0", content = message }
  end
  local cand = res.candidates[1]
  self.messages[#self.messages + 1] = { author = cand.author or "1", content = reply }
  self.last = reply
  return reply, res
end

--- Send a message and record the exchange.
-- With a callback (the non-blocking form of the client), `send` returns the request handle at once
-- and later calls `callback(reply, res_or_err, blocked_response)` with what the blocking form returns;
-- one send at a time may be in flight on a session.
-- @tparam string message the user's message
-- @tparam[opt] function callback for the non-blocking form
-- @treturn[1] string the reply text
-- @treturn[1] table the full GenerateMessageResponse
-- @treturn[2] nil
-- @treturn[2] table the error: the client's error for a failed request, or for a blocked reply a
--   `gemini.chat.Blocked` value (`err.status == "BLOCKED"`, `err.message` names the filters)
-- @treturn[2] table|nil the full response of a blocked reply
function Chat:send(message, callback)
  if type(message) ~= "string" then
    error("bad argument #1 to 'send' (string expected, got " .. type(message) .. ")", 2)
  end
  if callback ~= nil and type(callback) ~= "function" then
    error("bad argument #2 to 'send' (function expected, got " .. type(callback) .. ")", 2)
  end
  if self.pending then
    error("gemini.chat: a send is already in flight on this session; wait for its callback", 2)
  end
  local body = { prompt = self:prompt({ { content = message } }) }
  for k, v in pairs(self.params) do body[k] = v end
  if callback then
    self.pending = true
    local ok, req = pcall(self.model.generate_message, self.model, body, function(res, err)
      self.pending = nil
      callback(finish(self, message, res, err))
    end)
    if not ok then
      self.pending = nil
      error(req, 0)
    end
    return req
  end
  return finish(self, message, self.model:generate_message(body))
end

--- Drop the last exchange (the last user message and the reply to it).
-- @treturn string|nil the user message that was dropped, or nil when the history is empty
function Chat:undo()
  local n = #self.messages
  if n == 0 then return nil end
  local dropped
  if n >= 2 then
    dropped = self.messages[n - 1].content
    self.messages[n] = nil
    self.messages[n - 1] = nil
  else
    dropped = self.messages[1].content
    self.messages[1] = nil
  end
  self.last = nil
  local user = self.messages[1] and self.messages[1].author
  for i = #self.messages, 2, -1 do
    if self.messages[i].author ~= user then
      self.last = self.messages[i].content
      break
    end
  end
  return dropped
end

--- Count the tokens of the whole prompt (context, examples and history) with countMessageTokens.
-- @treturn[1] integer the token count
-- @treturn[2] nil
-- @treturn[2] table the client's error
function Chat:count_tokens()
  local res, err = self.model:count_message_tokens({ prompt = self:prompt() })
  if not res then return nil, err end
  return res.tokenCount or 0
end

--- Forget the whole history (context and examples stay).
function Chat:reset()
  self.messages = {}
  self.last = nil
end

Chat.__tostring = function(c)
  return ("gemini.chat (%d messages)"):format(#c.messages)
end

M.Chat = Chat

return M
