--- Resource names: validation, short names, and query-string encoding.
--
-- Every name that goes into a URL path passes through `names.check`, which either returns the
-- canonical full name or a reason why it is refused. A name is refused when it is malformed or
-- could change the URL: an extra path segment, a query (`?`), a fragment (`#`), `..`, `%`,
-- `:`, whitespace or control characters. A short name (`"text-bison-001"`) gets the collection of
-- the kind that accepts short names (`models/text-bison-001`).
-- @module gemini.names

local M = {}

local type, format = type, string.format

local ESC = { ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t", ['"'] = '\\"', ["\\"] = "\\\\" }

-- A name quoted on one line: control characters and non-ASCII bytes as escapes (unlike %q, which
-- breaks the line at a newline and passes other bytes through on Lua 5.1).
local function quote(s)
  return '"' .. s:gsub('[%z\1-\31\127-\255"\\]', function(c) return ESC[c] or format("\\%d", c:byte()) end) .. '"'
end
--- Quotes a value on one line for messages (escapes control characters and non-ASCII bytes).
M.quote = quote

--- The kinds of name, each a list of accepted forms (collections), and whether a bare id is expanded.
-- `parts` is the number of `/`-separated segments; `shape` checks collection names.
M.kinds = {
  model = { forms = { "models/{id}" }, short = "models/" },
  generative_model = { forms = { "models/{id}", "tunedModels/{id}" }, short = "models/" },
  tuned_model = { forms = { "tunedModels/{id}" }, short = "tunedModels/" },
  corpus = { forms = { "corpora/{id}" }, short = "corpora/" },
  permission_parent = { forms = { "tunedModels/{id}", "corpora/{id}" } },
  permission = { forms = { "tunedModels/{id}/permissions/{id}", "corpora/{id}/permissions/{id}" } },
  operation = { forms = { "tunedModels/{id}/operations/{id}" } },
}

--- Checks one id (a single path segment).
-- @param id string
-- @return true, or nil plus a reason
function M.check_id(id)
  if id == "" then return nil, "has an empty segment" end
  local bad = id:match("[%z\1-\31\127]")
  if bad then return nil, format("contains a control character (\\%d)", bad:byte()) end
  if id:find("%s") then return nil, "contains whitespace" end
  if id:find("?", 1, true) then return nil, "contains '?' (would add a query)" end
  if id:find("#", 1, true) then return nil, "contains '#' (would add a fragment)" end
  if id:find("..", 1, true) then return nil, "contains '..'" end
  if id:find("%", 1, true) then return nil, "contains '%' (percent-escapes are not allowed in names)" end
  if id:find(":", 1, true) then return nil, "contains ':' (would change the method)" end
  if id == "." then return nil, "has a '.' segment" end
  if not id:match("^[%w][%w%._~%-]*$") then
    local c = id:match("[^%w%._~%-]") or id:sub(1, 1)
    return nil, format("contains '%s' (ids may use letters, digits, '-', '_', '.' and '~', starting with a " ..
      "letter or digit)", c)
  end
  return true
end

local function split(name)
  local parts = {}
  local start = 1
  while true do
    local i = name:find("/", start, true)
    if not i then parts[#parts + 1] = name:sub(start); break end
    parts[#parts + 1] = name:sub(start, i - 1)
    start = i + 1
  end
  return parts
end

local function matches(form, parts)
  local fparts = split(form)
  if #fparts ~= #parts then return false end
  for i, fp in ipairs(fparts) do
    if fp ~= "{id}" and fp ~= parts[i] then return false end
  end
  return true
end

-- check without the memo (k: the kind's table)
local function check_uncached(k, name)
  if type(name) ~= "string" then
    return nil, "expected a resource name (string), got " .. type(name)
  end
  if name == "" then return nil, "empty resource name" end
  local expected = table.concat(k.forms, " or ")
  local bad = name:match("[%z\1-\31\127]")
  if bad then return nil, format("invalid name %s: contains a control character (\\%d)", quote(name), bad:byte()) end
  local full = name
  if k.short and not name:find("/", 1, true) then full = k.short .. name end
  local parts = split(full)
  for _, p in ipairs(parts) do
    local ok, why = M.check_id(p)
    if not ok then return nil, format("invalid name %s: %s", quote(name), why) end
  end
  for _, form in ipairs(k.forms) do
    if matches(form, parts) then return full end
  end
  return nil, format("invalid name %s: expected %s", quote(name), expected)
end

-- Names that passed, per kind table: a client names the same model on every call. Bounded: emptied
-- when it holds more than MEMO_MAX names.
local MEMO_MAX = 256
local memo, memo_n = setmetatable({}, { __mode = "k" }), 0

--- Validates a resource name of `kind` and returns it in full form.
-- @param kind one of the keys of `names.kinds`
-- @param name the user's value
-- @return full name, or nil plus a reason (a phrase without the argument position)
function M.check(kind, name)
  local k = M.kinds[kind]
  if not k then error("gemini.names: unknown kind " .. tostring(kind), 2) end
  local seen = memo[k]
  local hit = seen and seen[name]
  if hit then return hit end
  local full, why = check_uncached(k, name)
  if full then
    if memo_n >= MEMO_MAX then memo, memo_n = setmetatable({}, { __mode = "k" }), 0 end
    seen = memo[k]
    if not seen then seen = {}; memo[k] = seen end
    seen[name] = full
    memo_n = memo_n + 1
  end
  return full, why
end

--- Like `check`, but raises `bad argument #pos to 'fname' (...)` at `level`.
-- @param kind name kind
-- @param name value
-- @param pos argument position
-- @param fname function name for the message
-- @param level error level (default 3: the caller of the caller)
-- @return full name
function M.arg(kind, name, pos, fname, level)
  local full, why = M.check(kind, name)
  if not full then
    error(format("bad argument #%d to '%s' (%s)", pos, fname, why), (level or 2) + 1)
  end
  return full
end

--- Percent-encodes a query value (everything except RFC 3986 unreserved characters).
-- @param s string
-- @return string
function M.escape(s)
  return (tostring(s):gsub("[^%w%-%._~]", function(c) return format("%%%02X", c:byte()) end))
end

--- Builds a query string from an ordered list of `{ key, value }` pairs ("" when empty).
-- @param pairs_list array of `{ key, value }` with string values
-- @return "?k=v&..." or ""
function M.query(pairs_list)
  if #pairs_list == 0 then return "" end
  local out = {}
  for i, kv in ipairs(pairs_list) do
    out[i] = M.escape(kv[1]) .. "=" .. M.escape(kv[2])
  end
  return "?" .. table.concat(out, "&")
end

return M
