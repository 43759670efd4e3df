-- Embed many texts at once without blocking: chunks of 100 (the API's limit per batchEmbedText call)
-- are started together with callbacks, and client:run() drives them all until the last one ends.
--   lua5.4 examples/async_batch_embed.lua [N]
-- With a client that has no callback API (issue 4 not landed), it falls back to blocking calls,
-- one chunk after another.
local root = (arg and arg[0] or ""):match("^(.-)/?examples/[^/]*$")
if root then  -- run from a checkout: use its lua/ and build/
  root = root == "" and "." or root
  package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
  package.cpath = root .. "/build/lua" .. _VERSION:match("%d+%.%d+") .. "/?.so;" .. package.cpath
end

local gemini = require("gemini")

local n = tonumber(arg[1]) or 250
local texts = {}
for i = 1, n do texts[i] = ("document number %d about topic %d"):format(i, i % 7) end

local client = gemini.new{}
local model = "models/embedding-gecko-001"
local vectors, failures = {}, 0

local chunks = {}
for first = 1, n, 100 do
  local chunk = {}
  for i = first, math.min(first + 99, n) do chunk[#chunk + 1] = texts[i] end
  chunks[#chunks + 1] = { first = first, texts = chunk }
end

local function store(chunk, res, err)
  if not res then
    failures = failures + 1
    io.stderr:write("chunk at " .. chunk.first .. " failed: " .. tostring(err) .. "\n")
    return
  end
  for j, e in ipairs(res.embeddings) do vectors[chunk.first + j - 1] = e.value end
end

if type(client.run) == "function" then
  for _, chunk in ipairs(chunks) do
    client:batch_embed_text(model, { texts = chunk.texts }, function(res, err) store(chunk, res, err) end)
  end
  client:run()   -- or call client:poll(0) from a game or UI loop
  print(("embedded %d texts in %d concurrent requests"):format(#vectors, #chunks))
else
  for _, chunk in ipairs(chunks) do store(chunk, client:batch_embed_text(model, { texts = chunk.texts })) end
  print(("embedded %d texts in %d blocking requests"):format(#vectors, #chunks))
end

-- the vectors are in input order whatever order the replies came in
print(("text %d has %d dimensions"):format(n, #vectors[n]))
client:close()
os.exit(failures == 0 and 0 or 1)
