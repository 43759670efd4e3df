--- Deterministic 768-dimensional text embeddings (a hashed bag of words).
--
-- Each lowercased word (run of letters and digits) adds a fixed pseudo-random vector of 768
-- components (seeded by the word alone); a small vector seeded by the whole text keeps
-- different texts apart. The sum is normalised to unit length and rounded to float32, so texts
-- that share words have a higher cosine similarity. Components are doubles here; the renderer prints
-- them as float32 (Embedding.value is `repeated float`).
-- @module gemini.emulator.embed

local rand = require "gemini.emulator.rand"

local M = {}

M.DIMENSIONS = 768

local cache = setmetatable({}, { __mode = "v" })

local function word_vector(w)
  local v = cache[w]
  if v then return v end
  v = {}
  local r = rand.new(rand.hash(w, 7))
  for i = 1, M.DIMENSIONS do v[i] = r() * 2 - 1 end
  cache[w] = v
  return v
end

--- The embedding of a text: an array of 768 numbers (float32 values) of unit length.
-- @param text string
function M.embed(text)
  local acc = {}
  local r = rand.new(rand.hash(text, 11))
  for i = 1, M.DIMENSIONS do acc[i] = (r() * 2 - 1) * 0.05 end
  for w in text:gmatch("[%w]+") do
    local v = word_vector(w:lower())
    for i = 1, M.DIMENSIONS do acc[i] = acc[i] + v[i] end
  end
  local norm = 0
  for i = 1, M.DIMENSIONS do norm = norm + acc[i] * acc[i] end
  norm = math.sqrt(norm)
  if norm == 0 then norm = 1 end
  local out = {}
  for i = 1, M.DIMENSIONS do out[i] = acc[i] / norm end -- rounded to float32 when rendered
  return out
end

return M
