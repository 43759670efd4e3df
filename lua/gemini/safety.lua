--- Safety settings shorthand.
--
-- In a request body that takes `safetySettings` (generateText), write
--
--    safety = { derogatory = "none", toxicity = "low", violence = "medium", dangerous = "high" }
--
-- and it is expanded to the wire form
--
--    safetySettings = { { category = "HARM_CATEGORY_DEROGATORY", threshold = "BLOCK_NONE" }, ... }
--
-- Category and threshold aliases are case-insensitive. Categories: `derogatory`, `toxicity`,
-- `violence`, `sexual`, `medical`, `dangerous`, or the full `HARM_CATEGORY_*` names. Thresholds:
-- `none`/`block_none`, `low`/`block_low_and_above`, `medium`/`block_medium_and_above`,
-- `high`/`only_high`/`block_only_high`. A string instead of a table (`safety = "none"`) sets
-- every category to that threshold. A bad alias raises an error that lists the valid ones.
--
-- @module gemini.safety

local M = {}

--- Wire category names in enum order.
M.CATEGORIES = {
  "HARM_CATEGORY_DEROGATORY", "HARM_CATEGORY_TOXICITY", "HARM_CATEGORY_VIOLENCE",
  "HARM_CATEGORY_SEXUAL", "HARM_CATEGORY_MEDICAL", "HARM_CATEGORY_DANGEROUS",
}

--- Wire threshold names in enum order.
M.THRESHOLDS = { "BLOCK_LOW_AND_ABOVE", "BLOCK_MEDIUM_AND_ABOVE", "BLOCK_ONLY_HIGH", "BLOCK_NONE" }

local CATEGORY_ALIASES = {}
for _, c in ipairs(M.CATEGORIES) do
  CATEGORY_ALIASES[c:lower()] = c
  CATEGORY_ALIASES[c:sub(#"HARM_CATEGORY_" + 1):lower()] = c
end

local THRESHOLD_ALIASES = {
  none = "BLOCK_NONE", block_none = "BLOCK_NONE",
  low = "BLOCK_LOW_AND_ABOVE", block_low_and_above = "BLOCK_LOW_AND_ABOVE", low_and_above = "BLOCK_LOW_AND_ABOVE",
  medium = "BLOCK_MEDIUM_AND_ABOVE", block_medium_and_above = "BLOCK_MEDIUM_AND_ABOVE",
  medium_and_above = "BLOCK_MEDIUM_AND_ABOVE",
  high = "BLOCK_ONLY_HIGH", only_high = "BLOCK_ONLY_HIGH", block_only_high = "BLOCK_ONLY_HIGH",
}

local VALID_CATEGORIES = "derogatory, toxicity, violence, sexual, medical, dangerous (or HARM_CATEGORY_<NAME>)"
local VALID_THRESHOLDS = "none (block_none), low (block_low_and_above), medium (block_medium_and_above), "
  .. "high (only_high, block_only_high)"

local function norm(s)
  return (tostring(s):lower():gsub("^%s+", ""):gsub("%s+$", ""):gsub("[%s%-]", "_"))
end

--- Resolve a category alias to its wire name.
-- @tparam string alias e.g. `"toxicity"`, `"Toxicity"`, `"HARM_CATEGORY_TOXICITY"`
-- @treturn string the wire name; raises for an unknown alias, listing the valid ones
function M.category(alias)
  local c = type(alias) == "string" and CATEGORY_ALIASES[norm(alias)]
  if not c then
    error(("gemini.safety: unknown harm category %q; valid: %s"):format(tostring(alias), VALID_CATEGORIES), 2)
  end
  return c
end

--- Resolve a threshold alias to its wire name.
-- @tparam string alias e.g. `"none"`, `"LOW"`, `"only_high"`, `"BLOCK_MEDIUM_AND_ABOVE"`
-- @treturn string the wire name; raises for an unknown alias, listing the valid ones
function M.threshold(alias)
  local t = type(alias) == "string" and THRESHOLD_ALIASES[norm(alias)]
  if not t then
    error(("gemini.safety: unknown block threshold %q; valid: %s"):format(tostring(alias), VALID_THRESHOLDS), 2)
  end
  return t
end

--- Expand a shorthand to a list of wire SafetySettings, in category order.
-- @tparam table|string shorthand `{ category_alias = threshold_alias, ... }`, or one threshold alias for
--   every category
-- @treturn {table,...} `{ { category = "HARM_CATEGORY_...", threshold = "BLOCK_..." }, ... }`
function M.settings(shorthand)
  local by_cat = {}
  if type(shorthand) == "string" then
    local t = M.threshold(shorthand)
    for _, c in ipairs(M.CATEGORIES) do by_cat[c] = t end
  elseif type(shorthand) == "table" then
    for k, v in pairs(shorthand) do
      if type(k) ~= "string" then
        error("gemini.safety: shorthand keys must be category names, got " .. type(k)
          .. "; valid: " .. VALID_CATEGORIES, 2)
      end
      local c = CATEGORY_ALIASES[norm(k)]
      if not c then
        error(("gemini.safety: unknown harm category %q; valid: %s"):format(k, VALID_CATEGORIES), 2)
      end
      local t = type(v) == "string" and THRESHOLD_ALIASES[norm(v)]
      if not t then
        error(("gemini.safety: unknown block threshold %q for %s; valid: %s")
          :format(tostring(v), k, VALID_THRESHOLDS), 2)
      end
      if by_cat[c] and by_cat[c] ~= t then
        error(("gemini.safety: category %s given twice with different thresholds"):format(c), 2)
      end
      by_cat[c] = t
    end
  else
    error("gemini.safety: safety must be a table or a threshold string, got " .. type(shorthand), 2)
  end
  local out = {}
  for _, c in ipairs(M.CATEGORIES) do
    if by_cat[c] then out[#out + 1] = { category = c, threshold = by_cat[c] } end
  end
  return out
end

--- Expand `body.safety` into `body.safetySettings`.
-- Returns a new body (a shallow copy without `safety`); the argument is not modified. Settings already
-- in `body.safetySettings` (or `safety_settings`) are kept first; the shorthand adds the others, and
-- giving one category in both places raises. A body without `safety` is returned as it is.
-- @tparam table body a request body
-- @treturn table the body to send
function M.expand(body)
  if type(body) ~= "table" or body.safety == nil then return body end
  local expanded = M.settings(body.safety)
  local out = {}
  for k, v in pairs(body) do
    if k ~= "safety" then out[k] = v end
  end
  local key = "safetySettings"
  if out.safetySettings == nil and out.safety_settings ~= nil then key = "safety_settings" end
  local existing = out[key]
  local list, seen = {}, {}
  if type(existing) == "table" then
    for _, s in ipairs(existing) do
      list[#list + 1] = s
      if type(s) == "table" and type(s.category) == "string" then seen[s.category] = true end
      if type(s) == "table" and type(s.category) == "number" then
        seen[M.CATEGORIES[s.category] or s.category] = true
      end
    end
  end
  for _, s in ipairs(expanded) do
    if seen[s.category] then
      error(("gemini.safety: category %s is in both safety and %s"):format(s.category, key), 2)
    end
    list[#list + 1] = s
  end
  out[key] = list
  return out
end

return M
