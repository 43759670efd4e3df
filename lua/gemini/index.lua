--- Semantic search: an in-memory index of text embeddings.
--
--    local idx = gemini.index.new(client, { model = "models/embedding-gecko-001" })
--    assert(idx:add({ "Lua is a small language.", "Tuning adapts a model.", "Paris is in France." }))
--    for _, hit in ipairs(assert(idx:search("a scripting language", 2))) do
--      print(("%.3f  %s"):format(hit.score, hit.text))
--    end
--    assert(idx:save("index.json"))
--    local again = assert(gemini.index.load(client, "index.json"))
--
-- Texts are embedded through `client:batch_embed_text` (at most 100 texts per call) and the query
-- through `client:embed_text`. Scores are cosine similarities in [-1, 1]. When the C core is there
-- (`M.compact`), vectors are kept as compact `gemini.vector` userdata (float32, about 3 KiB for 768
-- values instead of 12-16 KiB as a table), the replies are decoded straight into them
-- (`compact_embeddings`) and similarity is a dot product in C; otherwise, or with `compact = false`,
-- they are Lua tables of numbers. Similarity goes through one local function (`cosine`, also `M.cosine`).
--
-- @module gemini.index

local M = {}

--- Texts per batchEmbedText call (the API's limit).
M.BATCH = 100
--- Default embedding model.
M.DEFAULT_MODEL = "models/embedding-gecko-001"

local cjson = require("cjson").new()
cjson.encode_number_precision(9)  -- float32 precision is all an embedding has

local core_ok, core = pcall(require, "gemini.core")
local vector = core_ok and type(core) == "table" and core.vector or nil

--- Whether indexes keep compact `gemini.vector` values by default (the C core is loadable).
M.compact = vector ~= nil

-- Cosine similarity of two vectors (tables of numbers or gemini.vector values), given their
-- precomputed norms. Two vectors of one length: the dot product in C.
local function cosine(a, na, b, nb)
  if na == 0 or nb == 0 then return 0 end
  if type(a) == "userdata" and type(b) == "userdata" and #a == #b then return a:dot(b) / (na * nb) end
  local dot = 0
  for i = 1, #a do dot = dot + a[i] * (b[i] or 0) end
  return dot / (na * nb)
end

local function norm(v)
  if type(v) == "userdata" then return v:norm() end
  local s = 0
  for i = 1, #v do s = s + v[i] * v[i] end
  return math.sqrt(s)
end

-- The index's representation of a vector: a gemini.vector when the index is compact (a table that
-- does not fit one, e.g. a value beyond float32, stays a table), else a table.
local function to_index(idx, v)
  if idx.compact then
    if type(v) == "table" then
      local ok, cv = pcall(vector, v)
      if ok then return cv end
    end
    return v
  end
  if type(v) == "userdata" then return v:totable() end
  return v
end

local Index = {}
Index.__index = Index

-- call options of the embedding calls: a compact index has the replies decoded into gemini.vector values
local function call_opts(idx)
  if idx.compact then return { compact_embeddings = true } end
  return nil
end

local function check_client(client, fname)
  if type(client) ~= "table" and type(client) ~= "userdata" then
    error(("bad argument #1 to '%s' (client expected, got %s)"):format(fname, type(client)), 3)
  end
end

--- A new, empty index.
-- @param client a client from `gemini.new`
-- @tparam[opt] table opts `model` (default "models/embedding-gecko-001"), `batch` (texts per call, ≤ 100),
--   `compact` (default `M.compact`: keep gemini.vector values and decode replies in C; false: tables)
-- @treturn table the index
function M.new(client, opts)
  check_client(client, "new")
  opts = opts or {}
  local batch = opts.batch or M.BATCH
  if type(batch) ~= "number" or batch < 1 or batch > M.BATCH then
    error("bad option 'batch' (a number from 1 to " .. M.BATCH .. " expected)", 2)
  end
  local compact = opts.compact
  if compact == nil then compact = M.compact end
  if compact and not vector then error("bad option 'compact' (the C core gemini.core is not available)", 2) end
  return setmetatable({
    client = client, model = opts.model or M.DEFAULT_MODEL, batch = batch,
    items = {}, next_id = 1, compact = compact and true or false,
  }, Index)
end

local function embedding_values(e)
  if type(e) ~= "table" then return nil end
  local v = e.value or e.values
  if type(v) ~= "table" and type(v) ~= "userdata" then return nil end
  return v
end

--- Embed texts and add them.
-- Either all texts are added or none: when a batch fails, the index is unchanged.
-- @tparam string|{string,...}|{table,...} texts one text, a list of texts, or a list of `{ text =, id = }`
-- @treturn[1] {integer|string,...} the ids of the added texts (ids are 1, 2, ... unless given)
-- @treturn[2] nil
-- @treturn[2] table the client's error (or a string for a reply without embeddings)
function Index:add(texts)
  if type(texts) == "string" then texts = { texts } end
  if type(texts) ~= "table" then
    error("bad argument #1 to 'add' (string or table expected, got " .. type(texts) .. ")", 2)
  end
  local entries = {}
  for i, t in ipairs(texts) do
    if type(t) == "string" then
      entries[i] = { text = t }
    elseif type(t) == "table" and type(t.text) == "string" then
      entries[i] = { text = t.text, id = t.id }
    else
      error(("bad argument #1 to 'add' (item %d: string or { text = } expected, got %s)"):format(i, type(t)), 2)
    end
  end
  local vectors = {}
  for first = 1, #entries, self.batch do
    local chunk = {}
    for i = first, math.min(first + self.batch - 1, #entries) do chunk[#chunk + 1] = entries[i].text end
    local res, err = self.client:batch_embed_text(self.model, { texts = chunk }, call_opts(self))
    if not res then return nil, err end
    local embs = type(res) == "table" and res.embeddings or nil
    if type(embs) ~= "table" or #embs ~= #chunk then
      return nil, ("batchEmbedText returned %s embeddings for %d texts")
        :format(type(embs) == "table" and tostring(#embs) or "no", #chunk)
    end
    for j, e in ipairs(embs) do
      local v = embedding_values(e)
      if not v then return nil, "batchEmbedText returned an embedding without values" end
      vectors[first + j - 1] = to_index(self, v)
    end
  end
  local ids = {}
  for i, e in ipairs(entries) do
    local id = e.id
    if id == nil then
      id = self.next_id
      self.next_id = self.next_id + 1
    end
    self.items[#self.items + 1] = { id = id, text = e.text, vector = vectors[i], norm = norm(vectors[i]) }
    ids[i] = id
  end
  return ids
end

--- Number of indexed texts.
-- @treturn integer
function Index:size()
  return #self.items
end

--- Remove a text by id.
-- @param id
-- @treturn boolean whether it was there
function Index:remove(id)
  for i, it in ipairs(self.items) do
    if it.id == id then
      table.remove(self.items, i)
      return true
    end
  end
  return false
end

--- The texts most similar to a query, best first.
-- @tparam string query
-- @tparam[opt=10] integer k how many hits at most
-- @treturn[1] {table,...} hits `{ text =, score =, id = }`, highest score first (ties: insertion order)
-- @treturn[2] nil
-- @treturn[2] table the client's error
function Index:search(query, k)
  if type(query) ~= "string" then
    error("bad argument #1 to 'search' (string expected, got " .. type(query) .. ")", 2)
  end
  k = k or 10
  if type(k) ~= "number" or k < 0 then
    error("bad argument #2 to 'search' (non-negative number expected)", 2)
  end
  if #self.items == 0 or k == 0 then return {} end
  local res, err = self.client:embed_text(self.model, { text = query }, call_opts(self))
  if not res then return nil, err end
  local q = embedding_values(type(res) == "table" and res.embedding)
  if not q then return nil, "embedText returned no embedding" end
  return self:search_vector(q, k)
end

--- Like `search`, with a query vector you already have.
-- @tparam {number,...}|userdata q a table of numbers or a gemini.vector
-- @tparam[opt=10] integer k
-- @treturn {table,...} hits
function Index:search_vector(q, k)
  k = k or 10
  q = to_index(self, q)
  local qn = norm(q)
  local scored = {}
  for i, it in ipairs(self.items) do
    scored[i] = { score = cosine(q, qn, it.vector, it.norm), pos = i, item = it }
  end
  table.sort(scored, function(a, b)
    if a.score ~= b.score then return a.score > b.score end
    return a.pos < b.pos
  end)
  local hits = {}
  for i = 1, math.min(k, #scored) do
    local s = scored[i]
    hits[i] = { text = s.item.text, score = s.score, id = s.item.id }
  end
  return hits
end

--- Save the index (model, texts, ids and vectors) as JSON.
-- @tparam string path
-- @treturn[1] boolean true
-- @treturn[2] nil
-- @treturn[2] string the I/O error
function Index:save(path)
  local items = {}
  for i, it in ipairs(self.items) do
    local v = it.vector
    items[i] = { id = it.id, text = it.text, vector = type(v) == "userdata" and v:totable() or v }
  end
  local doc = cjson.encode({ format = "lua-gemini-index", version = 1, model = self.model,
    next_id = self.next_id, items = items })
  local tmp = path .. ".tmp"
  local f, err = io.open(tmp, "wb")
  if not f then return nil, err end
  local ok, werr = f:write(doc)
  f:close()
  if not ok then os.remove(tmp); return nil, werr end
  local rok, rerr = os.rename(tmp, path)
  if not rok then os.remove(tmp); return nil, rerr end
  return true
end

--- Load an index saved with `save`.
-- @param client the client to embed queries and new texts with
-- @tparam string path
-- @tparam[opt] table opts as for `new` (`model` defaults to the saved one)
-- @treturn[1] table the index
-- @treturn[2] nil
-- @treturn[2] string what is wrong with the file
function M.load(client, path, opts)
  check_client(client, "load")
  if type(path) ~= "string" then
    error("bad argument #2 to 'load' (string expected, got " .. type(path) .. ")", 2)
  end
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local s = f:read("*a")
  f:close()
  local ok, doc = pcall(cjson.decode, s)
  if not ok or type(doc) ~= "table" or doc.format ~= "lua-gemini-index" or type(doc.items) ~= "table" then
    return nil, path .. ": not a lua-gemini index file"
  end
  if doc.version ~= 1 then return nil, path .. ": unsupported index version " .. tostring(doc.version) end
  local o = {}
  for k, v in pairs(opts or {}) do o[k] = v end
  o.model = o.model or doc.model
  local idx = M.new(client, o)
  for i, it in ipairs(doc.items) do
    if type(it) ~= "table" or type(it.text) ~= "string" or type(it.vector) ~= "table" then
      return nil, ("%s: item %d is malformed"):format(path, i)
    end
    local id = it.id
    if type(id) == "number" and id == math.floor(id) then id = math.floor(id) end
    local v = to_index(idx, it.vector)
    idx.items[i] = { id = id, text = it.text, vector = v, norm = norm(v) }
  end
  idx.next_id = math.floor(tonumber(doc.next_id) or (#idx.items + 1))
  return idx
end

Index.__tostring = function(idx)
  return ("gemini.index (%d texts, %s)"):format(#idx.items, idx.model)
end

M.Index = Index
M.cosine = cosine

return M
