-- Quickstart: list models, generate text, chat, embed and count tokens.
--
--   GEMINI_BASE_URL=http://127.0.0.1:PORT GEMINI_API_KEY=... lua5.4 examples/quickstart.lua
--
-- Without GEMINI_BASE_URL it talks to https://generativelanguage.googleapis.com.
-- `make demo` runs it against the bundled emulator.
local root = (arg and arg[0] or ""):match("^(.-)/?examples/[^/]*$")
if root then  -- run from a checkout: use its lua/ and build/ (an installed rock needs none of this)
  root = root == "" and "." or root
  package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
  package.cpath = root .. "/build/lua" .. _VERSION:match("%d+%.%d+") .. "/?.so;" .. package.cpath
end

local gemini = require("gemini")

local client = gemini.new {}   -- api_key and base_url from GEMINI_API_KEY / GEMINI_BASE_URL
print(("lua-gemini %s, %s"):format(gemini.VERSION, tostring(client)))

-- Stop with one clear line on any error.
local function check(result, err)
  if result == nil then
    io.stderr:write("quickstart: ", tostring(err), "\n")
    os.exit(1)
  end
  return result
end

print("\n== Models")
for m in client:models() do
  print(("  %-32s in %5d / out %4d tokens  %s"):format(m.name, m.inputTokenLimit or 0, m.outputTokenLimit or 0,
    table.concat(m.supportedGenerationMethods or {}, ", ")))
end

print("\n== Text")
local text_model = client:model("text-bison-001")
local res = check(text_model:generate_text {
  prompt = { text = "Write a one-line tagline for a coffee shop." },
  temperature = 0.7, candidateCount = 2,
})
for i, c in ipairs(res.candidates or {}) do print(("  candidate %d: %s"):format(i, c.output or "")) end
if not res.candidates then print("  (blocked: " .. #(res.filters or {}) .. " filter(s))") end

print("\n== Chat")
local chat_model = client:model("chat-bison-001")
local prompt = { context = "You are a helpful barista.", messages = { { author = "user", content = "Hello!" } } }
local reply = check(chat_model:generate_message { prompt = prompt, temperature = 0.25 })
local answer = reply.candidates and reply.candidates[1]
print("  user:  Hello!")
print("  model: " .. (answer and answer.content or "(no reply)"))
if answer then
  prompt.messages[#prompt.messages + 1] = answer
  prompt.messages[#prompt.messages + 1] = { author = "user", content = "What do you recommend?" }
  local again = check(chat_model:generate_message { prompt = prompt })
  print("  user:  What do you recommend?")
  print("  model: " .. (again.candidates and again.candidates[1].content or "(no reply)"))
end

print("\n== Tokens")
local tt = check(text_model:count_text_tokens { prompt = { text = "How many tokens is this sentence?" } })
print(("  text:    %d tokens"):format(tt.tokenCount or 0))
local mt = check(chat_model:count_message_tokens { prompt = prompt })
print(("  chat:    %d tokens in %d messages"):format(mt.tokenCount or 0, #prompt.messages))

print("\n== Embeddings")
local embedder = client:model("embedding-gecko-001")
local one = check(embedder:embed_text { text = "The quick brown fox" })
local v = one.embedding.value
print(("  embed_text:       %d dimensions, first values %.4f %.4f %.4f"):format(#v, v[1], v[2], v[3]))
local batch = check(embedder:batch_embed_text { texts = { "coffee", "espresso", "bicycle" } })
local function cosine(a, b)
  local dot, na, nb = 0, 0, 0
  for i = 1, #a do dot, na, nb = dot + a[i] * b[i], na + a[i] * a[i], nb + b[i] * b[i] end
  return dot / math.sqrt(na * nb)
end
local e = batch.embeddings
print(("  batch_embed_text: %d embeddings"):format(#e))
print(("  similarity coffee/espresso %.3f, coffee/bicycle %.3f"):format(cosine(e[1].value, e[2].value),
  cosine(e[1].value, e[3].value)))

print("\n== Errors are values")
local _, err = client:get_model("no-such-model")
print("  " .. tostring(err))

client:close()
print("\ndone.")
