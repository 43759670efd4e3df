-- Semantic search over a folder of text files.
--   lua5.4 examples/semantic_search.lua [FOLDER] [QUERY]
-- Embeds every .txt file of FOLDER (default: examples/data/docs) in batches, then prints the files
-- closest in meaning to QUERY. The index is saved to a file and loaded back, as an application would
-- do to avoid embedding the same texts again.
local root = (arg and arg[0] or ""):match("^(.-)/?examples/[^/]*$")
if root then  -- run from a checkout: use its lua/ and build/
  root = root == "" and "." or root
  package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
  package.cpath = root .. "/build/lua" .. _VERSION:match("%d+%.%d+") .. "/?.so;" .. package.cpath
end

local gemini = require("gemini")

local folder = arg[1] or ((root or ".") .. "/examples/data/docs")
local query = arg[2] or "which language do editors embed for plugins?"

-- list the folder's .txt files (POSIX ls; sorted so ids are stable)
local files = {}
local ls = assert(io.popen("ls -1 '" .. folder:gsub("'", "'\\''") .. "'"))
for name in ls:lines() do
  if name:match("%.txt$") then files[#files + 1] = name end
end
ls:close()
assert(#files > 0, "no .txt files in " .. folder)

local docs = {}
for i, name in ipairs(files) do
  local f = assert(io.open(folder .. "/" .. name, "r"))
  docs[i] = { id = name, text = f:read("*a") }
  f:close()
end

local client = gemini.new{}
local index = gemini.index.new(client, { model = "models/embedding-gecko-001" })
assert(index:add(docs))   -- one batchEmbedText call per 100 texts
print(("indexed %d files from %s"):format(index:size(), folder))

local saved = os.tmpname()
assert(index:save(saved))
local loaded = assert(gemini.index.load(client, saved))
os.remove(saved)

print("query: " .. query)
local hits, err = loaded:search(query, 3)
if not hits then error(tostring(err)) end
for rank, hit in ipairs(hits) do
  print(("%d. %-16s %.3f  %s"):format(rank, hit.id, hit.score, (hit.text:match("[^\n]*"))))
end
client:close()
