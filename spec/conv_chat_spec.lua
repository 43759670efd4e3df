-- Chat sessions against the emulator: history, examples, blocked replies, undo, token counts.
local gemini = require("gemini")
local chatmod = require("gemini.chat")
local helper = require("spec.helpers.emulator")
local cjson = require("cjson").new()

describe("chat sessions", function()
  local emu = helper.with_emulator{ reset = false }
  local client
  setup(function() client = emu:client{ api_key = "chat-key" } end)

  local function last_request(rpc)
    local journal = emu:requests()
    for i = #journal, 1, -1 do
      if journal[i].path:find(":" .. rpc, 1, true) then return cjson.decode(journal[i].body) end
    end
  end

  local function new_chat(opts, model)
    return chatmod.new(client:model(model or "chat-bison-001"), opts)
  end

  it("model:chat{} starts a session on the model handle", function()
    local chat = client:model("chat-bison-001"):chat{ context = "Be brief." }
    local reply = assert(chat:send("Hello"))
    assert.is_string(reply)
    assert.are.equal(2, #chat.messages)
  end)

  it("send returns the reply text and the full response, and records the exchange", function()
    local chat = new_chat{}
    local reply, res = chat:send("Hello there")
    assert.is_string(reply)
    assert.is_true(#reply > 0)
    assert.are.equal(res.candidates[1].content, reply)
    assert.are.equal(gemini.text(res), reply)
    assert.are.same({ { author = "0", content = "Hello there" }, { author = "1", content = reply } }, chat.messages)
    assert.are.equal(reply, chat.last)
  end)

  it("sends context, examples (pairs or input/output) and the whole history", function()
    local chat = new_chat{ context = "Answer like a pirate.", temperature = 0.3,
      examples = { { "Hi", "Ahoy!" }, { input = "Bye", output = "Fair winds!" } } }
    local first = assert(chat:send("What is Lua?"))
    local second = assert(chat:send("And Python?"))
    local body = last_request("generateMessage")
    assert.are.equal("Answer like a pirate.", body.prompt.context)
    assert.are.same({ { input = { content = "Hi" }, output = { content = "Ahoy!" } },
      { input = { content = "Bye" }, output = { content = "Fair winds!" } } }, body.prompt.examples)
    assert.are.equal(3, #body.prompt.messages)
    assert.are.equal("What is Lua?", body.prompt.messages[1].content)
    assert.are.equal(first, body.prompt.messages[2].content)
    assert.are.equal("And Python?", body.prompt.messages[3].content)
    assert.is_true(math.abs(body.temperature - 0.3) < 1e-9)
    assert.are.equal(4, #chat.messages)
    assert.are.equal(second, chat.last)
  end)

  it("signals a blocked reply clearly and keeps it out of the history", function()
    local chat = new_chat{}
    local first = assert(chat:send("Hello"))
    local reply, err, res = chat:send("[[block:other]] something")
    assert.is_nil(reply)
    assert.are.equal("BLOCKED", err.status)
    assert.matches("blocked by filter OTHER", err.message, 1, true)
    assert.matches("^BLOCKED: blocked by filter OTHER", tostring(err))
    assert.are.equal("OTHER", err.filters[1].reason)
    assert.is_table(res)
    assert.are.equal(2, #chat.messages)
    assert.are.equal(first, chat.last)
    -- the session goes on after a blocked reply
    assert.is_string(chat:send("Tell me about tables"))
    assert.are.equal(4, #chat.messages)
  end)

  it("names the safety category of a reply blocked for SAFETY", function()
    local chat = new_chat{}
    local reply, err = chat:send("[[block:safety:violence]] fight")
    assert.is_nil(reply)
    assert.matches("SAFETY", err.message, 1, true)
    assert.are.equal(0, #chat.messages)
  end)

  it("undo drops the last exchange and restores the previous reply", function()
    local chat = new_chat{}
    local first = assert(chat:send("one"))
    assert(chat:send("two"))
    assert.are.equal("two", chat:undo())
    assert.are.equal(2, #chat.messages)
    assert.are.equal(first, chat.last)
    assert.are.equal("one", chat:undo())
    assert.are.equal(0, #chat.messages)
    assert.is_nil(chat.last)
    assert.is_nil(chat:undo())
  end)

  it("counts the tokens of the history, as countMessageTokens does", function()
    local chat = new_chat{ context = "ctx" }
    assert(chat:send("How many tokens is this conversation?"))
    local n = assert(chat:count_tokens())
    assert.is_number(n)
    assert.are.equal(math.floor(n), n)
    if math.type then assert.are.equal("integer", math.type(n)) end
    local direct = assert(client:count_message_tokens("models/chat-bison-001", { prompt = chat:prompt() }))
    assert.are.equal(direct.tokenCount, n)
    assert(chat:send("And now?"))
    assert.is_true(assert(chat:count_tokens()) > n)
  end)

  it("returns the client's error and keeps the history when the request fails", function()
    local chat = new_chat({}, "no-such-chat-model")
    local reply, err = chat:send("Hello")
    assert.is_nil(reply)
    assert.are.equal("NOT_FOUND", err.status)
    assert.are.equal(404, err.code)
    assert.are.equal(0, #chat.messages)
    local n, cerr = chat:count_tokens()
    assert.is_nil(n)
    assert.are.equal("NOT_FOUND", cerr.status)
  end)

  it("sends without blocking when given a callback, one send at a time", function()
    local chat = new_chat{}
    local got
    local req = chat:send("Hello async", function(reply, res) got = { reply = reply, res = res } end)
    assert.is_not_nil(req)
    assert.is_nil(got)
    assert.are.equal(0, #chat.messages)
    assert.has_error(function() chat:send("too soon", function() end) end,
      "gemini.chat: a send is already in flight on this session; wait for its callback")
    client:run()
    assert.is_string(got.reply)
    assert.are.equal(got.res.candidates[1].content, got.reply)
    assert.are.equal(2, #chat.messages)
    assert.are.equal(got.reply, chat.last)
    -- a blocked reply through the callback: nil, the BLOCKED error, the response; history unchanged
    local blocked
    chat:send("[[block:other]] x", function(reply, err, res) blocked = { reply = reply, err = err, res = res } end)
    client:run()
    assert.is_nil(blocked.reply)
    assert.are.equal("BLOCKED", blocked.err.status)
    assert.is_table(blocked.res)
    assert.are.equal(2, #chat.messages)
  end)

  it("refuses a tuned model, which cannot generate messages in v1beta3", function()
    local h = client:tuned_model("some-model")
    assert.has_error(function() chatmod.new(h, {}) end,
      "bad argument #1 to 'chat' (tunedModels/some-model has no generate_message: chat needs a base model such as "
      .. "models/chat-bison-001; tuned models of v1beta3 only generate text)")
  end)

  it("raises on misuse", function()
    assert.has_error(function() new_chat{ examples = { "not a pair" } } end)
    assert.has_error(function() new_chat{ context = 5 } end)
    local chat = new_chat{}
    assert.has_error(function() chat:send(42) end, "bad argument #1 to 'send' (string expected, got number)")
  end)
end)
