--- Text of a reply: `gemini.text(response)`.
--
-- Works on the tables returned by `generate_text` (candidates carry `output`) and by
-- `generate_message` (candidates carry `content`). It never raises an index error: a blocked
-- reply, an empty reply or a value that is not a reply give `nil` plus a one-line reason.
--
--    local res = assert(client:generate_text("models/text-bison-001", { prompt = { text = "Hi" } }))
--    local text, why = gemini.text(res)
--    if not text then print("blocked: " .. why) end
--
-- @module gemini.text

local M = {}

-- Enum names for replies decoded with `enum-encoding=int`.
local REASONS = { [0] = "BLOCKED_REASON_UNSPECIFIED", "SAFETY", "OTHER" }
local CATEGORIES = {
  [0] = "HARM_CATEGORY_UNSPECIFIED", "HARM_CATEGORY_DEROGATORY", "HARM_CATEGORY_TOXICITY",
  "HARM_CATEGORY_VIOLENCE", "HARM_CATEGORY_SEXUAL", "HARM_CATEGORY_MEDICAL", "HARM_CATEGORY_DANGEROUS",
}
local PROBABILITIES = { [0] = "HARM_PROBABILITY_UNSPECIFIED", "NEGLIGIBLE", "LOW", "MEDIUM", "HIGH" }
local THRESHOLDS = {
  [0] = "HARM_BLOCK_THRESHOLD_UNSPECIFIED", "BLOCK_LOW_AND_ABOVE", "BLOCK_MEDIUM_AND_ABOVE",
  "BLOCK_ONLY_HIGH", "BLOCK_NONE",
}

local function enum_name(names, v)
  if type(v) == "number" then return names[v] or tostring(v) end
  if v == nil then return nil end
  return tostring(v)
end

local function candidate_text(c)
  if type(c) ~= "table" then return nil end
  local t = c.output
  if t == nil then t = c.content end
  if type(t) == "string" then return t end
  -- proto3 JSON omits an empty string: a candidate without output is an empty reply
  if t == nil then return "" end
  return nil
end

local function describe_feedback(fb)
  local parts = {}
  for _, f in ipairs(fb) do
    if type(f) == "table" then
      local rating = type(f.rating) == "table" and f.rating or {}
      local setting = type(f.setting) == "table" and f.setting or {}
      local cat = enum_name(CATEGORIES, rating.category or setting.category) or "unknown category"
      local s = cat
      local prob = enum_name(PROBABILITIES, rating.probability)
      if prob then s = s .. " rated " .. prob end
      local thr = enum_name(THRESHOLDS, setting.threshold)
      if thr then s = s .. " (threshold " .. thr .. ")" end
      parts[#parts + 1] = s
    end
  end
  return table.concat(parts, ", ")
end

--- Describe why a reply has no candidates.
-- @tparam table response a decoded GenerateTextResponse or GenerateMessageResponse
-- @treturn string|nil a one-line reason naming the filters (e.g.
--   `"blocked by filter SAFETY (HARM_CATEGORY_TOXICITY rated HIGH (threshold BLOCK_LOW_AND_ABOVE))"`),
--   or nil when the reply has a candidate
function M.blocked(response)
  if type(response) ~= "table" then
    return "no reply (got " .. type(response) .. ")"
  end
  local cands = response.candidates
  if type(cands) == "table" and cands[1] ~= nil then return nil end
  local filters = response.filters
  if type(filters) ~= "table" or filters[1] == nil then
    return "the reply has no candidates"
  end
  local parts = {}
  for _, f in ipairs(filters) do
    if type(f) == "table" then
      local s = enum_name(REASONS, f.reason) or "BLOCKED_REASON_UNSPECIFIED"
      if type(f.message) == "string" and f.message ~= "" then s = s .. ": " .. f.message end
      parts[#parts + 1] = s
    end
  end
  local msg = (#parts > 1 and "blocked by filters " or "blocked by filter ") .. table.concat(parts, "; ")
  if type(response.safetyFeedback) == "table" and response.safetyFeedback[1] ~= nil then
    local fb = describe_feedback(response.safetyFeedback)
    if fb ~= "" then msg = msg .. " (" .. fb .. ")" end
  end
  return msg
end

--- The text of the first candidate (or of candidate `i`).
-- @tparam table response a decoded GenerateTextResponse (`output`) or GenerateMessageResponse (`content`)
-- @tparam[opt=1] integer i which candidate
-- @treturn[1] string the candidate's text ("" for an empty candidate)
-- @treturn[2] nil
-- @treturn[2] string a reason: for a blocked reply it names the filters and the safety feedback
function M.text(response, i)
  local why = M.blocked(response)
  if why then return nil, why end
  i = i or 1
  local c = response.candidates[i]
  if c == nil then
    return nil, "the reply has " .. #response.candidates .. " candidate(s), no candidate " .. tostring(i)
  end
  local t = candidate_text(c)
  if t == nil then return nil, "candidate " .. tostring(i) .. " has no text" end
  return t
end

--- The texts of every candidate, in order.
-- @tparam table response a decoded reply
-- @treturn[1] {string,...} the texts
-- @treturn[2] nil
-- @treturn[2] string the reason, as for `text`
function M.all(response)
  local why = M.blocked(response)
  if why then return nil, why end
  local out = {}
  for _, c in ipairs(response.candidates) do
    out[#out + 1] = candidate_text(c) or ""
  end
  return out
end

return setmetatable(M, { __call = function(_, response, i) return M.text(response, i) end })
