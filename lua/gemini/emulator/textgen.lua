--- Deterministic, readable text generation for generateText and generateMessage.
--
-- The output depends only on the prompt, the temperature, the emulator's seed and (when the
-- temperature is above 0) the candidate index. Markers in the prompt (see docs/emulator-api.md):
--   [[block:safety]] or [[block:safety:CATEGORY]]  -> blocked for SAFETY (default category
--                                                    HARM_CATEGORY_TOXICITY; CATEGORY may be the
--                                                    full enum name or its last word, e.g. violence)
--   [[block:other]]                                -> blocked for OTHER
-- A request safetySetting with threshold BLOCK_NONE for the marked category lets the text
-- through, rated HIGH for that category.
-- @module gemini.emulator.textgen

local rand = require "gemini.emulator.rand"
local tokenizer = require "gemini.emulator.tokenizer"

local M = {}

--- Harm categories rated on every candidate, in enum order.
M.CATEGORIES = {
  "HARM_CATEGORY_DEROGATORY", "HARM_CATEGORY_TOXICITY", "HARM_CATEGORY_VIOLENCE",
  "HARM_CATEGORY_SEXUAL", "HARM_CATEGORY_MEDICAL", "HARM_CATEGORY_DANGEROUS",
}

local OPENERS = {
  "Here is a short answer about %s.", "Let us talk about %s.", "A few thoughts on %s follow.",
  "Good question about %s.", "%s is an interesting topic.", "Consider %s for a moment.",
}
local SUBJECTS = {
  "The quiet river", "A curious engineer", "Every small library", "The morning train", "A patient teacher",
  "The old lighthouse", "A careful gardener", "The busy market", "A friendly robot", "The mountain village",
}
local VERBS = {
  "carries", "explains", "remembers", "builds", "paints", "measures", "welcomes", "follows", "shares", "finds",
}
local OBJECTS = {
  "a simple idea", "the evening light", "a bright new plan", "the open road", "a clear answer",
  "the lost notebook", "a warm cup of coffee", "the distant stars", "a patient reply", "the next chapter",
}
local ENDINGS = {
  "with great care", "before the rain", "in plain words", "for everyone nearby", "one step at a time",
  "without any hurry", "as the day begins", "under the blue sky",
}

local function keywords(text)
  local seen, out = {}, {}
  for w in text:gmatch("%a+") do
    local lw = w:lower()
    if #lw >= 4 and not seen[lw] then
      seen[lw] = true
      out[#out + 1] = lw
    end
  end
  return out
end

local function sentence(r)
  return SUBJECTS[r(#SUBJECTS)] .. " " .. VERBS[r(#VERBS)] .. " " .. OBJECTS[r(#OBJECTS)] .. " " ..
    ENDINGS[r(#ENDINGS)] .. "."
end

--- Compose a reply for a prompt text.
-- @param text prompt text
-- @param temperature number
-- @param seed emulator seed
-- @param index candidate index (1-based)
-- @param style "text" or "chat"
function M.compose(text, temperature, seed, index, style)
  local key = string.format("%s|%s|%.4f|%d", style or "text", text, temperature or 0, seed or 0)
  if (temperature or 0) > 0 then key = key .. "|" .. index end
  local r = rand.new(rand.hash(key))
  local kws = keywords(text)
  local topic
  if #kws == 0 then topic = "your request"
  else
    local a = kws[r(#kws)]
    local b = kws[r(#kws)]
    topic = (a == b) and a or (a .. " and " .. b)
  end
  local parts = {}
  if style == "chat" then
    parts[1] = "Thanks for your message about " .. topic .. "."
  else
    local o = OPENERS[r(#OPENERS)]
    local s = string.format(o, topic)
    parts[1] = s:sub(1, 1):upper() .. s:sub(2)
  end
  local n = 2 + r(3)
  for i = 2, n do parts[i] = sentence(r) end
  return table.concat(parts, " ")
end

--- Apply stop sequences then a token limit.
function M.finish(out, stop_sequences, max_tokens)
  if stop_sequences then
    local cut
    for _, s in ipairs(stop_sequences) do
      if s ~= "" then
        local a = out:find(s, 1, true)
        if a and (not cut or a < cut) then cut = a end
      end
    end
    if cut then out = out:sub(1, cut - 1) end
  end
  if max_tokens then out = tokenizer.truncate(out, max_tokens) end
  return out
end

local function normalize_category(c)
  if not c or c == "" then return "HARM_CATEGORY_TOXICITY" end
  c = c:upper()
  if not c:find("^HARM_CATEGORY_") then c = "HARM_CATEGORY_" .. c end
  for _, k in ipairs(M.CATEGORIES) do if k == c then return c end end
  return "HARM_CATEGORY_TOXICITY"
end

--- Find a blocking marker in a text.
-- @return nil, or { reason = "SAFETY"|"OTHER", category = ... }
function M.marker(text)
  local cat = text:match("%[%[block:safety:([%w_]+)%]%]")
  if cat then return { reason = "SAFETY", category = normalize_category(cat) } end
  if text:find("[[block:safety]]", 1, true) then return { reason = "SAFETY", category = "HARM_CATEGORY_TOXICITY" } end
  if text:find("[[block:other]]", 1, true) then return { reason = "OTHER" } end
  return nil
end

--- Safety ratings for a candidate (all NEGLIGIBLE except a HIGH category).
function M.ratings(high)
  local out = {}
  for i, c in ipairs(M.CATEGORIES) do
    out[i] = { category = c, probability = (c == high) and "HIGH" or "NEGLIGIBLE" }
  end
  return out
end

--- Decide blocking for a text and the request's safety settings.
-- @return block (table or nil), high_category (or nil)
function M.safety(text, settings)
  local m = M.marker(text)
  if not m then return nil end
  if m.reason == "OTHER" then return m end
  local threshold = "BLOCK_MEDIUM_AND_ABOVE"
  for _, s in ipairs(settings or {}) do
    if s.category == m.category and s.threshold and s.threshold ~= "HARM_BLOCK_THRESHOLD_UNSPECIFIED" then
      threshold = s.threshold
    end
  end
  if threshold == "BLOCK_NONE" then return nil, m.category end
  m.threshold = threshold
  return m
end

return M
