--- JSON for lua-gemini: a pluggable decoder, our own encoder, and the schema-driven codec.
--
-- Decoding goes through a codec object `{ decode = fn, encode = fn, null = value }`: by default a
-- private `require("cjson").new()` instance (no other code can change its settings), else `vim.json`
-- inside Neovim. Encoding is done here in Lua, because lua-cjson 2.1.0 cannot write an empty array
-- and keeps only 14 significant digits; ours writes `[]` for empty repeated fields and the shortest
-- text that reads back to the same double.
--
-- The schema codec (`encode_message`, `decode_message`) walks `gemini.schema`:
--  * request fields are checked against the message (camelCase JSON names, or proto snake_case names,
--    written as camelCase), with "did you mean" suggestions for misspellings;
--  * repeated fields are arrays (an empty Lua table is sent as `[]`), message fields objects;
--  * integer-typed fields decode to Lua integers (where the interpreter has them); enums stay strings.
-- @module gemini.json

-- gemini.schema is loaded on first use (a schema encode or decode), not by `require "gemini"`
local schema = setmetatable({}, { __index = function(t, k)
  local s = require("gemini.schema")
  setmetatable(t, nil)
  for key, v in pairs(s) do t[key] = v end
  return s[k]
end })

local M = {}

-- LuaJIT: this module runs in the interpreter. With the JIT on, LuaJIT 2.1 (Debian's
-- 2.1.0~beta3+git20220320) segfaulted in about one run of three of spec/codec_spec.lua's seeded random
-- bodies and replies; the crash needs only this file's Lua walks (it stays with the C codec taken out of
-- the comparison, and goes without this file: the generators plus cjson alone ran 40 of 40), and with
-- `jit.off` here 60 of 60 runs passed. The hot work is in C (src/codec.c) whenever gemini.core loads, so
-- what runs here on LuaJIT is the fallback and error paths.
if type(jit) == "table" and jit.off then jit.off(true, true) end

local type, pairs, ipairs, tostring, tonumber, error = type, pairs, ipairs, tostring, tonumber, error
local format, concat, floor, huge = string.format, table.concat, math.floor, math.huge
local tointeger = math.tointeger
local mtype = math.type

local PREFIX = "type.googleapis.com/"

-- ================================================================================================
-- Codec choice

--- The default codec: a private lua-cjson instance, else `vim.json`.
-- @return codec table `{ encode =, decode =, null = }`
function M.default_codec()
  local ok, cjson = pcall(require, "cjson")
  if ok and type(cjson) == "table" and cjson.new then
    local c = cjson.new()
    if c.decode_invalid_numbers then pcall(c.decode_invalid_numbers, false) end
    -- native_decode: this instance's settings are the ones core.json_decode reproduces
    return { encode = c.encode, decode = c.decode, null = c.null, name = "cjson", native_decode = true }
  end
  local vim = rawget(_G, "vim")
  if type(vim) == "table" and type(vim.json) == "table" then
    local vj = vim.json
    return { encode = vj.encode, decode = function(s) return vj.decode(s, { luanil = { object = false } }) end,
             null = vim.NIL, name = "vim.json" }
  end
  error("gemini: no JSON library: install lua-cjson, or pass a json codec {encode=, decode=, null=}", 2)
end

-- ================================================================================================
-- Generic encoder

--- Marker for a free-form table that must be written as a JSON array even when empty.
local ARRAY_MT = { __name = "gemini.json.array" }
M.ARRAY_MT = ARRAY_MT

--- Marks a table as a JSON array (for free-form values; schema fields need no marking).
-- @param t table (optional)
-- @return t
function M.array(t)
  return setmetatable(t or {}, ARRAY_MT)
end

--- The JSON null written by the encoder when no codec null is known.
M.null = setmetatable({}, { __name = "gemini.json.null", __tostring = function() return "null" end })

local ESC = { ['"'] = '\\"', ['\\'] = '\\\\', ['\b'] = '\\b', ['\f'] = '\\f', ['\n'] = '\\n',
              ['\r'] = '\\r', ['\t'] = '\\t' }

local function quote(s)
  if not s:find('[%c"\\]') then return '"' .. s .. '"' end
  return '"' .. s:gsub('[%c"\\]', function(c) return ESC[c] or format("\\u%04x", c:byte()) end) .. '"'
end
M.quote = quote

local function is_integral(v)
  if mtype then return mtype(v) == "integer" or (v == floor(v) and v > -2^63 and v < 2^63) end
  return v == floor(v)
end

--- Formats a number as JSON text: integers without a fraction, floats with the shortest text that
-- reads back to the same double (up to 17 significant digits). NaN and infinities raise.
-- @param v number
-- @return string
local function number(v)
  if v ~= v or v == huge or v == -huge then error("cannot encode " .. tostring(v) .. " in JSON", 0) end
  if mtype and mtype(v) == "integer" then return format("%d", v) end
  if v == floor(v) and v > -2^53 and v < 2^53 then return format("%.0f", v) end
  for p = 15, 16 do
    local s = format("%." .. p .. "g", v)
    if tonumber(s) == v then return s end
  end
  return format("%.17g", v)
end
M.number = number

local function is_sequence(t)
  local n = #t
  local count = 0
  for k in pairs(t) do
    if type(k) ~= "number" or k < 1 or k > n or k ~= floor(k) then return false end
    count = count + 1
  end
  return count == n, n
end

-- Nesting limits. The fast walks (Lua and C) hand a body or reply nesting past FAST_DEPTH message levels
-- back to the Lua walks; the Lua encoders raise past MAX_DEPTH levels of JSON nesting (objects and arrays,
-- the body itself is level 1), naming a cycle when the path holds one; the decode walks note the tables
-- they walk once past FAST_DEPTH levels (walking none twice: a cycle ends) and leave a table past
-- MAX_DEPTH as it is.
local FAST_DEPTH, MAX_DEPTH = 64, 128
M.FAST_DEPTH, M.MAX_DEPTH = FAST_DEPTH, MAX_DEPTH

-- An encoder's state for one call: `nulls`, `name` (the message, nil for a free-form value), and the path
-- from the top, by depth d (0 for the body): [d] the table, paths[d] its path as a string, or false and
-- keys[d] its key in the table above (free-form levels build no path string).
local function enc_state(nulls, name)
  return { nulls = nulls, name = name, paths = {}, keys = {} }
end

local function path_at(st, d)
  local p = st.paths[d]
  if p then return p end
  local k = st.keys[d]
  p = d > 0 and path_at(st, d - 1) or ""
  if type(k) == "number" then return p .. "[" .. (k - 1) .. "]" end
  return p == "" and tostring(k) or (p .. "." .. tostring(k))
end

-- a long path keeps its first and last 40 characters or so, cut where a name or an index starts
local function shorten(p)
  if #p <= 80 then return p end
  local head, tail = p:sub(1, 40), p:sub(-40)
  local i = tail:find("[.%[]")
  if i then tail = tail:sub(tail:sub(i, i) == "." and i + 1 or i) end
  return (head:match("^(.+)[.%[]") or head) .. "..." .. tail
end

-- raises for table t at depth d (MAX_DEPTH): names the first table that the path holds twice, if any
local function too_deep(st, d, t, key, path)
  st[d], st.keys[d], st.paths[d] = t, key, path or false
  local first = {}
  for j = 0, d do
    local i = first[st[j]]
    if i then
      local q, p = path_at(st, i), shorten(path_at(st, j))
      if st.name then
        error("a cycle: " .. (q == "" and st.name or ("field '" .. shorten(q) .. "'")) ..
          " contains itself (at '" .. p .. "')", 0)
      end
      error("cannot encode JSON: a cycle: " .. (q == "" and "the value" or ("'" .. shorten(q) .. "'")) ..
        " contains itself (at '" .. p .. "')", 0)
    end
    first[st[j]] = j
  end
  local p = shorten(path_at(st, d))
  if st.name then error("field '" .. p .. "' nests deeper than " .. MAX_DEPTH .. " levels", 0) end
  error("cannot encode JSON: nesting deeper than " .. MAX_DEPTH .. " levels (at '" .. p .. "')", 0)
end

local encode_value

-- t at depth `depth`, reached by `key` from the table above, or at `path` (a schema field)
local function encode_table(t, buf, depth, st, key, path)
  if depth >= MAX_DEPTH then too_deep(st, depth, t, key, path) end
  st[depth], st.keys[depth], st.paths[depth] = t, key, path or false
  local seq, n = is_sequence(t)
  if getmetatable(t) == ARRAY_MT or (seq and n > 0) then
    if not seq then error("cannot encode JSON: array with non-sequence keys", 0) end
    buf[#buf + 1] = "["
    for i = 1, n do
      if i > 1 then buf[#buf + 1] = "," end
      encode_value(t[i], buf, depth + 1, st, i)
    end
    buf[#buf + 1] = "]"
    return
  end
  local keys = {}
  for k in pairs(t) do
    if type(k) ~= "string" then error("cannot encode JSON: object key " .. tostring(k) .. " is not a string", 0) end
    keys[#keys + 1] = k
  end
  table.sort(keys)
  buf[#buf + 1] = "{"
  for i, k in ipairs(keys) do
    if i > 1 then buf[#buf + 1] = "," end
    buf[#buf + 1] = quote(k)
    buf[#buf + 1] = ":"
    encode_value(t[k], buf, depth + 1, st, k)
  end
  buf[#buf + 1] = "}"
end

function encode_value(v, buf, depth, st, key, path)
  local tv = type(v)
  if tv == "string" then buf[#buf + 1] = quote(v)
  elseif tv == "number" then buf[#buf + 1] = number(v)
  elseif tv == "boolean" then buf[#buf + 1] = v and "true" or "false"
  elseif v == nil or v == M.null or (st.nulls and v == st.nulls) then buf[#buf + 1] = "null"
  elseif tv == "table" then encode_table(v, buf, depth, st, key, path)
  else error("cannot encode a " .. tv .. " in JSON", 0) end
end

-- ================================================================================================
-- Schema indexes

local index_cache = {}

--- Index of a schema message: `{ name =, fields =, by_json = {}, by_name = {}, oneofs = {} }`.
-- @param name message name (e.g. "GenerateTextRequest")
-- @return index or nil
local function message_index(name)
  local idx = index_cache[name]
  if idx then return idx end
  local msg = schema.messages[name]
  if not msg then return nil end
  idx = { name = name, fields = msg.fields, by_json = {}, by_name = {} }
  for _, f in ipairs(msg.fields) do
    idx.by_json[f.json] = f
    idx.by_name[f.name] = f
  end
  index_cache[name] = idx
  return idx
end
M.message_index = message_index

local enum_cache = {}
local function enum_index(name)
  local idx = enum_cache[name]
  if idx then return idx end
  local e = schema.enums[name]
  if not e then return nil end
  idx = { by_name = {}, by_number = {}, names = {} }
  for _, v in ipairs(e.values) do
    idx.by_name[v.name] = v.number
    idx.by_number[v.number] = v.name
    idx.names[#idx.names + 1] = v.name
  end
  enum_cache[name] = idx
  return idx
end

--- Edit distance between two strings (for "did you mean").
-- @param a string
-- @param b string
-- @return number
function M.distance(a, b)
  a, b = a:lower(), b:lower()
  local la, lb = #a, #b
  if la == 0 then return lb end
  if lb == 0 then return la end
  local prev = {}
  for j = 0, lb do prev[j] = j end
  for i = 1, la do
    local cur = { [0] = i }
    local ca = a:byte(i)
    for j = 1, lb do
      local cost = (ca == b:byte(j)) and 0 or 1
      local v = prev[j] + 1
      if cur[j - 1] + 1 < v then v = cur[j - 1] + 1 end
      if prev[j - 1] + cost < v then v = prev[j - 1] + cost end
      cur[j] = v
    end
    prev = cur
  end
  return prev[lb]
end

--- Closest candidate to `word`, or nil when none is close enough.
-- @param word string
-- @param candidates array of strings
-- @return string or nil
function M.suggest(word, candidates)
  local best, bestd
  local limit = math.max(2, floor(#word / 3))
  for _, c in ipairs(candidates) do
    local d = M.distance(word, c)
    -- snake_case vs camelCase of the same name counts as a near miss
    if c:lower() == word:gsub("_", ""):lower() then d = 1 end
    if d <= limit and (not bestd or d < bestd) then best, bestd = c, d end
  end
  return best
end

local function field_names(idx, exclude)
  local names = {}
  for _, f in ipairs(idx.fields) do
    if not (exclude and exclude[f.json]) then names[#names + 1] = f.json end
  end
  return names
end

-- ================================================================================================
-- Schema encoder

local INT_TYPES = { int32 = true, int64 = true, uint32 = true, uint64 = true, sint32 = true, sint64 = true,
                    fixed32 = true, fixed64 = true, sfixed32 = true, sfixed64 = true }
local STRING64 = { int64 = true, uint64 = true, sint64 = true, fixed64 = true, sfixed64 = true }
M.INT_TYPES = INT_TYPES

local function where(path)
  if path == "" then return "" end
  return " at '" .. path .. "'"
end

local function join(path, key)
  if path == "" then return key end
  return path .. "." .. key
end

local encode_fields

-- v: the value of field f at `path`, at depth `depth` (st: enc_state)
local function encode_scalar(f, v, path, buf, st, depth)
  local t = f.type
  local tv = type(v)
  if v == M.null or (st.nulls and v == st.nulls) then buf[#buf + 1] = "null"; return end
  if t == "string" or t == "bytes" or t == "timestamp" then
    if tv ~= "string" then error("field '" .. path .. "' must be a string, got " .. tv, 0) end
    buf[#buf + 1] = quote(v)
  elseif t == "fieldmask" then
    if tv == "table" then
      for i, p in ipairs(v) do
        if type(p) ~= "string" then error("field '" .. path .. "[" .. i .. "]' must be a string", 0) end
      end
      v = concat(v, ",")
    elseif tv ~= "string" then error("field '" .. path .. "' must be a string or a list of strings, got " .. tv, 0) end
    buf[#buf + 1] = quote(v)
  elseif INT_TYPES[t] then
    if tv == "string" and STRING64[t] and v:match("^%-?%d+$") then buf[#buf + 1] = quote(v); return end
    if tv ~= "number" or not is_integral(v) then
      error("field '" .. path .. "' must be an integer, got " .. (tv == "number" and tostring(v) or tv), 0)
    end
    local s = number(v)
    if STRING64[t] then s = '"' .. s .. '"' end
    buf[#buf + 1] = s
  elseif t == "float" or t == "double" then
    if tv ~= "number" then error("field '" .. path .. "' must be a number, got " .. tv, 0) end
    buf[#buf + 1] = number(v)
  elseif t == "bool" then
    if tv ~= "boolean" then error("field '" .. path .. "' must be a boolean, got " .. tv, 0) end
    buf[#buf + 1] = v and "true" or "false"
  elseif t == "enum" then
    local e = enum_index(f.enum)
    if tv == "string" then
      if e and not e.by_name[v] then
        local s = M.suggest(v, e.names)
        error("invalid value '" .. v .. "' for field '" .. path .. "' (" .. f.enum .. ")" ..
          (s and ("; did you mean '" .. s .. "'?") or ("; expected one of " .. concat(e.names, ", "))), 0)
      end
      buf[#buf + 1] = quote(v)
    elseif tv == "number" and is_integral(v) then
      buf[#buf + 1] = number(v)
    else
      error("field '" .. path .. "' must be an enum name (string), got " .. tv, 0)
    end
  elseif t == "message" then
    if tv ~= "table" then error("field '" .. path .. "' must be a table (" .. f.message .. "), got " .. tv, 0) end
    encode_fields(f.message, v, path, buf, st, depth)
  elseif t == "any" or t == "struct" or t == "value" then
    if tv == "table" and type(v["@type"]) == "string" and v["@type"]:sub(1, #PREFIX) == PREFIX then
      local full = v["@type"]:sub(#PREFIX + 1)
      local short = full:match("^" .. schema.package:gsub("%.", "%%.") .. "%.(.+)$")
      if short and schema.messages[short] then
        encode_fields(short, v, path, buf, st, depth, { ["@type"] = true })
        return
      end
    end
    encode_value(v, buf, depth, st, nil, path)
  elseif t == "empty" then
    buf[#buf + 1] = "{}"
  else
    encode_value(v, buf, depth, st, nil, path)
  end
end

local function encode_field(f, v, path, buf, st, depth)
  if f.repeated then
    if type(v) ~= "table" or getmetatable(v) == M.null then
      error("field '" .. path .. "' must be a list (table), got " .. type(v), 0)
    end
    local seq, n = is_sequence(v)
    if not seq then error("field '" .. path .. "' must be a list: it has non-sequence keys", 0) end
    if depth >= MAX_DEPTH then too_deep(st, depth, v, nil, path) end
    st[depth], st.paths[depth] = v, path
    buf[#buf + 1] = "["
    for i = 1, n do
      if i > 1 then buf[#buf + 1] = "," end
      encode_scalar(f, v[i], path .. "[" .. (i - 1) .. "]", buf, st, depth + 1)
    end
    buf[#buf + 1] = "]"
  else
    encode_scalar(f, v, path, buf, st, depth)
  end
end

--- Encodes `value` (a table with JSON or proto field names) as message `name`, appending to buf.
-- `value` is at `path`, `depth` levels below the body (st: enc_state);
-- `exclude` names JSON fields not allowed here (path-bound or query fields),
-- `passthrough` keys copied verbatim first (e.g. "@type").
function encode_fields(name, value, path, buf, st, depth, passthrough, exclude)
  local idx = message_index(name)
  if not idx then encode_value(value, buf, depth, st, nil, path); return end
  if getmetatable(value) == ARRAY_MT then
    error("field '" .. (path ~= "" and path or name) .. "' must be an object (" .. name .. "), got a list", 0)
  end
  if depth >= MAX_DEPTH then too_deep(st, depth, value, nil, path) end
  st[depth], st.paths[depth] = value, path
  local chosen = {}   -- field -> value
  local unknown = {}
  for k, v in pairs(value) do
    local f = type(k) == "string" and (idx.by_json[k] or idx.by_name[k]) or nil
    if f and not (exclude and exclude[f.json]) then
      if chosen[f] ~= nil then
        error("field '" .. join(path, f.json) .. "' is given twice (as '" .. f.json .. "' and '" .. f.name ..
          "')", 0)
      end
      chosen[f] = v
    elseif not (passthrough and passthrough[k]) then
      unknown[#unknown + 1] = k
    end
  end
  if #unknown > 0 then
    table.sort(unknown, function(a, b) return tostring(a) < tostring(b) end)
    local k = unknown[1]
    if type(k) ~= "string" then
      error(name .. where(path) .. " must be an object with string keys, got key " .. tostring(k), 0)
    end
    local s = M.suggest(k, field_names(idx, exclude))
    error("unknown field '" .. k .. "' in " .. name .. where(path) ..
      (s and ("; did you mean '" .. s .. "'?") or ""), 0)
  end
  -- oneof: at most one member set
  local oneof_seen = {}
  for _, f in ipairs(idx.fields) do
    if f.oneof and chosen[f] ~= nil then
      local other = oneof_seen[f.oneof]
      if other then
        error("fields '" .. join(path, other) .. "' and '" .. join(path, f.json) ..
          "' are both set, but only one of " .. f.oneof .. " may be", 0)
      end
      oneof_seen[f.oneof] = f.json
    end
  end
  buf[#buf + 1] = "{"
  local first = true
  if passthrough then
    local pk = {}
    for k in pairs(passthrough) do if value[k] ~= nil then pk[#pk + 1] = k end end
    table.sort(pk)
    for _, k in ipairs(pk) do
      if not first then buf[#buf + 1] = "," end
      first = false
      buf[#buf + 1] = quote(k) .. ":"
      encode_value(value[k], buf, depth + 1, st, k)
    end
  end
  for _, f in ipairs(idx.fields) do
    local v = chosen[f]
    if v ~= nil then
      if not first then buf[#buf + 1] = "," end
      first = false
      buf[#buf + 1] = quote(f.json) .. ":"
      encode_field(f, v, join(path, f.json), buf, st, depth + 1)
    end
  end
  buf[#buf + 1] = "}"
end

-- The encoder's fast path: the same output for a body that encodes without error, no path strings and no
-- side tables. It returns false at anything doubtful (an error, a duplicate or unknown key, a oneof set
-- twice, a free-form value, nesting past FAST_DEPTH messages); the caller then runs encode_fields, which
-- raises the message or encodes.
local fast_index = {}   -- message name -> { idx =, ambiguous = bool, members = { [oneof] = { field... } } }

local function fast_info(name)
  local fi = fast_index[name]
  if fi ~= nil then return fi end
  local idx = message_index(name)
  if not idx then fast_index[name] = false; return false end
  fi = { idx = idx, ambiguous = false, members = {} }
  for _, f in ipairs(idx.fields) do
    local g, h = idx.by_json[f.name], idx.by_name[f.json]
    if (g and g ~= f) or (h and h ~= f) then fi.ambiguous = true end
    if f.oneof then
      local m = fi.members[f.oneof] or {}
      m[#m + 1] = f
      fi.members[f.oneof] = m
    end
  end
  fast_index[name] = fi
  return fi
end

local fast_fields

local function fast_scalar(f, v, buf, nulls, depth)
  local t = f.type
  local tv = type(v)
  if v == M.null or (nulls and v == nulls) then buf[#buf + 1] = "null"; return true end
  if t == "string" or t == "bytes" or t == "timestamp" then
    if tv ~= "string" then return false end
    buf[#buf + 1] = quote(v)
  elseif INT_TYPES[t] then
    if tv == "string" and STRING64[t] and v:match("^%-?%d+$") then buf[#buf + 1] = quote(v); return true end
    if tv ~= "number" or not is_integral(v) or v ~= v or v == huge or v == -huge then return false end
    local s = number(v)
    if STRING64[t] then s = '"' .. s .. '"' end
    buf[#buf + 1] = s
  elseif t == "float" or t == "double" then
    if tv ~= "number" or v ~= v or v == huge or v == -huge then return false end
    buf[#buf + 1] = number(v)
  elseif t == "bool" then
    if tv ~= "boolean" then return false end
    buf[#buf + 1] = v and "true" or "false"
  elseif t == "enum" then
    local e = enum_index(f.enum)
    if tv == "string" then
      if e and not e.by_name[v] then return false end
      buf[#buf + 1] = quote(v)
    elseif tv == "number" and v == v and v ~= huge and v ~= -huge and is_integral(v) then
      buf[#buf + 1] = number(v)
    else
      return false
    end
  elseif t == "message" then
    if tv ~= "table" then return false end
    return fast_fields(f.message, v, buf, nulls, nil, depth + 1)
  else
    return false
  end
  return true
end

function fast_fields(name, value, buf, nulls, exclude, depth)
  local fi = fast_info(name)
  if not fi or fi.ambiguous or getmetatable(value) ~= nil or depth > FAST_DEPTH then return false end
  local idx = fi.idx
  local by_json, by_name = idx.by_json, idx.by_name
  for k in pairs(value) do
    local f = type(k) == "string" and (by_json[k] or by_name[k]) or nil
    if not f or (exclude and exclude[f.json]) then return false end
    if f.name ~= f.json and value[f.json] ~= nil and value[f.name] ~= nil then return false end
    if f.oneof then
      for _, g in ipairs(fi.members[f.oneof]) do
        if g ~= f and (value[g.json] ~= nil or value[g.name] ~= nil) then return false end
      end
    end
  end
  buf[#buf + 1] = "{"
  local first = true
  for _, f in ipairs(idx.fields) do
    local v = value[f.json]
    if v == nil then v = value[f.name] end
    if v ~= nil then
      if not first then buf[#buf + 1] = "," end
      first = false
      buf[#buf + 1] = quote(f.json) .. ":"
      if f.repeated then
        if type(v) ~= "table" or getmetatable(v) ~= nil then return false end
        local seq, n = is_sequence(v)
        if not seq then return false end
        buf[#buf + 1] = "["
        for i = 1, n do
          if i > 1 then buf[#buf + 1] = "," end
          if not fast_scalar(f, v[i], buf, nulls, depth) then return false end
        end
        buf[#buf + 1] = "]"
      elseif not fast_scalar(f, v, buf, nulls, depth) then
        return false
      end
    end
  end
  buf[#buf + 1] = "}"
  return true
end

-- ================================================================================================
-- Schema decoder

local decode_fields

-- The decode walks take the table's depth (0 for the reply) and a box shared by the whole walk. A JSON
-- library makes trees, but a user codec may hand back a table that holds itself, or one nested absurdly
-- deep: past FAST_DEPTH levels `box.seen` (made then) notes every table walked, and from then on no
-- table is walked twice (a cycle ends); past MAX_DEPTH a table is left as it is. True: skip t.
local function walked(t, depth, box)
  local seen = box.seen
  if not seen then
    if depth <= FAST_DEPTH then return false end
    seen = {}
    box.seen = seen
  end
  if depth > MAX_DEPTH or seen[t] then return true end
  seen[t] = true
  return false
end

local function decode_scalar(f, v, nulls, depth, box)
  local t = f.type
  if INT_TYPES[t] then
    if type(v) == "string" then v = tonumber(v) or v end
    if type(v) == "number" and tointeger then return tointeger(v) or v end
    return v
  elseif t == "message" then
    if type(v) == "table" then return decode_fields(f.message, v, nulls, depth, box) end
    return v
  elseif t == "any" then
    return M.decode_any(v, nulls, depth, box)
  end
  return v
end

local function strip_nulls(v, nulls, depth, box)
  if type(v) ~= "table" then return v end
  if (box.seen or depth > FAST_DEPTH) and walked(v, depth, box) then return v end
  for k, x in pairs(v) do
    if x == nulls then
      if type(k) ~= "number" then v[k] = nil end
    elseif type(x) == "table" then
      strip_nulls(x, nulls, depth + 1, box)
    end
  end
  return v
end

function decode_fields(name, t, nulls, depth, box)
  local idx = message_index(name)
  if not idx or type(t) ~= "table" then return strip_nulls(t, nulls, depth, box) end
  if (box.seen or depth > FAST_DEPTH) and walked(t, depth, box) then return t end
  for k, v in pairs(t) do
    local f = idx.by_json[k] or idx.by_name[k]
    if v == nulls and nulls ~= nil then
      t[k] = nil
    elseif f then
      if f.repeated and type(v) == "table" then
        -- only integers, messages and Anys need work; strings, floats, bools and enums stay as decoded
        if INT_TYPES[f.type] or f.type == "message" or f.type == "any" then
          for i = 1, #v do v[i] = decode_scalar(f, v[i], nulls, depth + 2, box) end
        end
      else
        t[k] = decode_scalar(f, v, nulls, depth + 1, box)
      end
    elseif type(v) == "table" then
      strip_nulls(v, nulls, depth + 1, box)
    end
  end
  return t
end

--- Decodes a `google.protobuf.Any` value in place: known `@type`s of this API get their message's
-- integer conversion; `@type` is kept. A table nested past `MAX_DEPTH` levels is left as it is, and a
-- table that holds itself is walked once.
-- @param v decoded table
-- @param nulls the codec's null
-- @param depth optional: v's depth in the reply (default 0)
-- @param box optional: the walk's state (internal)
-- @return v
function M.decode_any(v, nulls, depth, box)
  depth, box = depth or 0, box or {}
  if type(v) == "table" and type(v["@type"]) == "string" then
    local full = v["@type"]:sub(#PREFIX + 1)
    local short = full:match("^" .. schema.package:gsub("%.", "%%.") .. "%.(.+)$")
    if short and schema.messages[short] then return decode_fields(short, v, nulls, depth, box) end
  end
  return strip_nulls(v, nulls, depth, box)
end

-- ================================================================================================
-- The C walks (gemini.core's codec plan)
--
-- When gemini.core is there, the fast paths above run in C instead: `plan:check` is fast_ok and
-- decode_needed in one pass, `plan:encode` is fast_fields. Their results are the same; what they doubt
-- still goes to the Lua walks (encode_fields, shape_error, decode_fields). json.lua loaded alone (the
-- emulator, an embedder without the core) keeps the Lua fast paths.

local C_KIND = { message = "message", float = "float", double = "float", string = "string", bytes = "string",
                 timestamp = "string", fieldmask = "fieldmask", enum = "enum", bool = "bool", any = "any" }
for t in pairs(INT_TYPES) do C_KIND[t] = STRING64[t] and "int64" or "int" end

-- the description core.codec_plan compiles: every message with its fields, enums as lists of names
local function plan_desc()
  local list, number_of = {}, {}
  for name in pairs(schema.messages) do list[#list + 1] = name end
  table.sort(list)
  for i, name in ipairs(list) do number_of[name] = i end
  local enums, enum_no, messages = {}, {}, {}
  for i, name in ipairs(list) do
    local fields = {}
    for j, f in ipairs(message_index(name).fields) do
      local e
      if f.type == "enum" and enum_index(f.enum) then
        e = enum_no[f.enum]
        if not e then
          enums[#enums + 1] = enum_index(f.enum).names
          e = #enums
          enum_no[f.enum] = e
        end
      end
      fields[j] = { json = f.json, name = f.name, kind = C_KIND[f.type] or "other", repeated = f.repeated and true,
                    message = f.type == "message" and number_of[f.message] or nil, enum = e, oneof = f.oneof }
    end
    messages[i] = { name = name, fields = fields }
  end
  return { messages = messages, enums = enums, null = M.null }
end

local cplan                 -- nil: not looked at yet; false: no gemini.core (or switched off)
local plans                 -- the Lua reply check's tables (built on first use, below)
local plan_check, plan_encode
local core_decode           -- core.json_decode, with the plan
local use_native, compiled = true, nil

local function native()
  if cplan == nil then
    cplan = false
    if use_native then
      if compiled == nil then
        compiled = false
        local ok, core = pcall(require, "gemini.core")
        if ok and type(core) == "table" and type(core.codec_plan) == "function" then
          compiled = core.codec_plan(plan_desc())
          core_decode = core.json_decode
        end
      end
      cplan = compiled
      if cplan then plan_check, plan_encode = cplan.check, cplan.encode end
    end
  end
  return cplan
end

--- Whether the schema walks' fast paths run in C (gemini.core's codec plan), and a switch for tests
-- and comparisons: `json.native(false)` keeps the Lua fast paths (the state of json.lua loaded without
-- the core); `json.native(true)` uses the core again when it loads.
-- @param on optional boolean
-- @param recompile optional: true compiles the plan again from the schema as it is now (and drops the
-- Lua walks' indexes, built again on use)
-- @return true when the C walks are in use
-- @return the plan (gemini.core.codec_plan), or nil
function M.native(on, recompile)
  if on ~= nil then use_native = on and true or false end
  if recompile then
    compiled, plans = nil, nil
    for _, cache in ipairs({ index_cache, enum_cache, fast_index }) do
      for k in pairs(cache) do cache[k] = nil end
    end
  end
  cplan = nil
  local p = native()
  return p and true or false, p or nil
end

-- ================================================================================================
-- Codec objects

local Codec = {}
Codec.__index = Codec
local WEAK_KEYS = { __mode = "k" }
local FRESH, CLEAN = 1, 2   -- (and a message name: the C check found the reply clean and decoded it)

--- Makes a JSON object over a codec (default: `M.default_codec()`).
-- @param codec optional `{ encode =, decode =, null = }`
-- @return json object with :encode, :decode, :encode_message, :decode_message and .null
function M.new(codec)
  codec = codec or M.default_codec()
  if type(codec) ~= "table" or type(codec.decode) ~= "function" then
    error("gemini: json codec must be a table with decode (and encode, null) functions", 2)
  end
  -- _marks (weak keys): tables this codec decoded (FRESH), and replies shape_error found clean (CLEAN)
  return setmetatable({ codec = codec, null = codec.null, _marks = setmetatable({}, WEAK_KEYS),
                        _trust = codec.name == "cjson" or codec.name == "vim.json",
                        _native_decode = codec.native_decode == true }, Codec)
end

--- Encodes any Lua value as JSON (free-form: sequences are arrays, `json.array{}` an empty array).
-- @param v value
-- @return string (raises on values JSON cannot hold)
function Codec:encode(v)
  local buf = {}
  encode_value(v, buf, 0, enc_state(self.null), nil, "")
  return concat(buf)
end

--- Decodes JSON text. Never raises.
-- @param s string
-- @return value, or nil plus a message
function Codec:decode(s)
  if type(s) ~= "string" then return nil, "not a string" end
  -- the default cjson codec: core.json_decode builds the same tables faster, or declines (nil) and
  -- cjson decodes the text or names its error
  local v
  if self._native_decode and (cplan or (cplan == nil and native())) and core_decode then
    v = core_decode(s, self.null)
  end
  if v == nil then
    local ok
    ok, v = pcall(self.codec.decode, s)
    if not ok then return nil, tostring(v) end
  end
  if self._trust and type(v) == "table" then self._marks[v] = FRESH end
  return v
end

--- Encodes `value` as schema message `name`; raises a plain message (no position) on a bad field.
-- @param name message name, e.g. "GenerateTextRequest"
-- @param value table
-- @param exclude optional set of JSON field names not accepted here
-- @return string
function Codec:encode_message(name, value, exclude)
  if type(value) ~= "table" then error(name .. " must be a table, got " .. type(value), 0) end
  local buf
  if cplan or (cplan == nil and native()) then
    local s = plan_encode(cplan, name, value, self.null, exclude)
    if s then return s end
  else
    buf = {}
    if fast_fields(name, value, buf, self.null, exclude, 0) then return concat(buf) end
  end
  buf = {}
  encode_fields(name, value, "", buf, enc_state(self.null, name), 0, nil, exclude)
  return concat(buf)
end

-- ------------------------------------------------------------------------------------------------
-- Shape check of replies (issue 5: a 200 with an unexpected shape is an error, not a result)

local function json_type(v, nulls)
  if v == nil or (nulls ~= nil and v == nulls) then return "null" end
  if type(v) == "table" then return "object or array" end
  return type(v)
end

local FLOAT_WORDS = { NaN = true, Infinity = true, ["-Infinity"] = true }
local shape_error, fast_ok, decode_needed
local dirty = false

local function value_error(f, v, nulls, path, depth, box)
  local t, tv = f.type, type(v)
  local ok
  if t == "message" then
    if tv ~= "table" then return format("field '%s' is a JSON %s, not an object", path, json_type(v, nulls)) end
    return shape_error(f.message, v, nulls, path, depth + 1, box)
  elseif INT_TYPES[t] then
    ok = (tv == "number" and v == floor(v)) or (tv == "string" and v:find("^%-?%d+$") ~= nil)
  elseif t == "float" or t == "double" then
    ok = tv == "number" or (tv == "string" and FLOAT_WORDS[v])
  elseif t == "string" or t == "bytes" or t == "timestamp" or t == "fieldmask" then
    ok = tv == "string"
  elseif t == "enum" then
    ok = tv == "string" or tv == "number"
  elseif t == "bool" then
    ok = tv == "boolean"
  else
    ok = true
  end
  if not ok then
    return format("field '%s' is a JSON %s (%s), not a %s", path, json_type(v, nulls), tostring(v):sub(1, 20), t)
  end
  return nil
end

-- (depth counts messages, as in the fast walks: a message past FAST_DEPTH is not checked; box as in the
-- decode walks: from there on no table is checked twice, so a cycle ends)
function shape_error(name, t, nulls, path, depth, box)
  local idx = message_index(name)
  if not idx then return nil end
  if box.seen or depth > FAST_DEPTH then
    if walked(t, depth, box) or depth > FAST_DEPTH then return nil end
  end
  for k, v in pairs(t) do
    local f = type(k) == "string" and (idx.by_json[k] or idx.by_name[k])
    if f and not (nulls ~= nil and v == nulls) then
      local p = path == "" and f.json or (path .. "." .. f.json)
      if f.repeated then
        if type(v) ~= "table" then return format("field '%s' is a JSON %s, not an array", p, json_type(v, nulls)) end
        for i in pairs(v) do
          if type(i) ~= "number" then return format("field '%s' is an object, not an array", p) end
        end
        for i = 1, #v do
          local why = value_error(f, v[i], nulls, p .. "[" .. (i - 1) .. "]", depth, box)
          if why then return why end
        end
      else
        local why = value_error(f, v, nulls, p, depth, box)
        if why then return why end
      end
    end
  end
  return nil
end

-- The same check without building a string: true when `t` fits, false at the first misfit or at a message
-- past FAST_DEPTH (shape_error then runs to name the misfit, if any: returning false at once keeps a
-- cycle from being walked again at every level above). `trust`: arrays are known to have only the keys
-- 1..n. Sets `dirty` when the reply holds something a shortened decode would skip: a null, an object
-- under an unknown field, a message outside the schema.
local K_MSG, K_INT, K_FLOAT, K_STRING, K_ENUM, K_BOOL, K_OTHER = 1, 2, 3, 4, 5, 6, 7
local KIND_OF = { message = K_MSG, float = K_FLOAT, double = K_FLOAT, string = K_STRING, bytes = K_STRING,
                  timestamp = K_STRING, fieldmask = K_STRING, enum = K_ENUM, bool = K_BOOL }
for t in pairs(INT_TYPES) do KIND_OF[t] = K_INT end

-- Lua types that fit a kind without a closer look (scalar_ok decides the others)
local ANY_TYPE = { ["nil"] = true, boolean = true, number = true, string = true, table = true, userdata = true,
                   ["function"] = true, thread = true }
local QUICK_OK = { [K_MSG] = {}, [K_INT] = {}, [K_FLOAT] = { number = true }, [K_STRING] = { string = true },
                   [K_ENUM] = { string = true, number = true }, [K_BOOL] = { boolean = true }, [K_OTHER] = ANY_TYPE }

-- plans (declared above): message name -> { by_json =, by_name =, kinds = { [field] = K_* }, needs = bool }

-- needs: the decode walk changes something below the message when it holds no null (integers, Anys)
local function build_plans()
  plans = {}
  for name in pairs(schema.messages) do
    local idx = message_index(name)
    local p = { by_json = idx.by_json, by_name = idx.by_name, kinds = {}, quick = {}, needs = false }
    for _, f in ipairs(idx.fields) do
      p.kinds[f] = KIND_OF[f.type] or K_OTHER
      p.quick[f] = QUICK_OK[p.kinds[f]]
      if INT_TYPES[f.type] or f.type == "any" then p.needs = true end
    end
    plans[name] = p
  end
  local changed = true
  while changed do
    changed = false
    for name, p in pairs(plans) do
      if not p.needs then
        for _, f in ipairs(schema.messages[name].fields) do
          local q = f.type == "message" and plans[f.message]
          if q and q.needs then p.needs = true; changed = true; break end
        end
      end
    end
  end
end

local function plan_of(name)
  if not plans then build_plans() end
  return plans[name] or false
end

local function scalar_ok(kind, v)
  local tv = type(v)
  if kind == K_INT then
    return (tv == "number" and v == floor(v)) or (tv == "string" and v:find("^%-?%d+$") ~= nil)
  elseif kind == K_FLOAT then
    return tv == "number" or (tv == "string" and FLOAT_WORDS[v] ~= nil)
  elseif kind == K_STRING then
    return tv == "string"
  elseif kind == K_ENUM then
    return tv == "string" or tv == "number"
  elseif kind == K_BOOL then
    return tv == "boolean"
  end
  return true
end

function fast_ok(name, t, nulls, depth, trust)
  local p = plan_of(name)
  if not p then dirty = true; return true end
  if depth > FAST_DEPTH then dirty = true; return false end
  local by_json, by_name, kinds, quick = p.by_json, p.by_name, p.kinds, p.quick
  for k, v in pairs(t) do
    local f = by_json[k] or by_name[k]   -- (only string keys are in these indexes)
    if nulls ~= nil and v == nulls then
      dirty = true
    elseif not f then
      if type(v) == "table" then dirty = true end
    else
      local kind = kinds[f]
      if f.repeated then
        if type(v) ~= "table" then return false end
        local n = #v
        if not trust or n == 0 then
          for i in pairs(v) do
            if type(i) ~= "number" then return false end
          end
        end
        if kind == K_MSG then
          local m = f.message
          for i = 1, n do
            local x = v[i]
            if type(x) ~= "table" or not fast_ok(m, x, nulls, depth + 1, trust) then return false end
          end
        elseif kind == K_FLOAT then
          for i = 1, n do
            local x = v[i]
            if type(x) ~= "number" and not (type(x) == "string" and FLOAT_WORDS[x]) then return false end
          end
        elseif kind == K_STRING then
          for i = 1, n do
            if type(v[i]) ~= "string" then return false end
          end
        elseif kind ~= K_OTHER then
          local q = quick[f]
          for i = 1, n do
            local x = v[i]
            if not q[type(x)] and not scalar_ok(kind, x) then return false end
          end
        end
      elseif kind == K_MSG then
        if type(v) ~= "table" or not fast_ok(f.message, v, nulls, depth + 1, trust) then return false end
      elseif not quick[f][type(v)] and not scalar_ok(kind, v) then
        return false
      end
    end
  end
  return true
end

-- decode_fields for a reply fast_ok found clean: skips the subtrees with nothing to convert
function decode_needed(name, t, nulls)
  local p = plan_of(name)
  if not p then return decode_fields(name, t, nulls, 0, {}) end
  if not p.needs then return t end
  local by_json, by_name, kinds = p.by_json, p.by_name, p.kinds
  for k, v in pairs(t) do
    local f = by_json[k] or by_name[k]
    if f then
      local kind = kinds[f]
      if f.repeated then
        if kind == K_INT or f.type == "any" then
          for i = 1, #v do v[i] = decode_scalar(f, v[i], nulls) end
        elseif kind == K_MSG then
          local m = f.message
          local q = plan_of(m)
          if not q or q.needs then
            for i = 1, #v do v[i] = decode_needed(m, v[i], nulls) end
          end
        end
      elseif kind == K_INT or f.type == "any" then
        t[k] = decode_scalar(f, v, nulls)
      elseif kind == K_MSG then
        t[k] = decode_needed(f.message, v, nulls)
      end
    end
  end
  return t
end

--- Checks a decoded reply against schema message `name`: repeated fields are arrays, message fields
-- objects, numbers numbers (integers may be numeric strings), strings strings. Unknown fields and nulls
-- pass. With the C walks a reply that fits may already be decoded in place (its integers converted, as
-- `decode_message` would); call `decode_message` next in any case (or use `decode_reply`).
-- @param name message name
-- @param t decoded table
-- @return nil when the reply fits, else a phrase naming the first field that does not
function Codec:shape_error(name, t)
  if type(t) ~= "table" then return "a JSON " .. json_type(t, self.null) .. ", not an object" end
  local marks = self._marks
  -- a table fresh from cjson / vim.json: its arrays have only the keys 1..n and its objects only string keys
  local trust = marks[t] == FRESH
  marks[t] = nil
  if cplan or (cplan == nil and native()) then
    local r = plan_check(cplan, name, t, self.null, trust)
    if r == "clean" then
      marks[t] = name   -- decoded already: decode_message has nothing left to do
      return nil
    elseif r == "doubt" then
      return nil        -- fits; decode_message takes the full walk (nulls, Anys...)
    end
    return shape_error(name, t, self.null, "", 0, {})
  end
  dirty = false
  if fast_ok(name, t, self.null, 0, trust) then
    if not dirty then marks[t] = CLEAN end
    return nil
  end
  -- a misfit (or a doubt): the walk that names the field, building paths as it goes
  return shape_error(name, t, self.null, "", 0, {})
end

--- Decodes an already parsed table as schema message `name` in place (integers, nulls).
-- @param name message name
-- @param t table
-- @return t
function Codec:decode_message(name, t)
  local marks = self._marks
  local mark = type(t) == "table" and marks[t]
  if mark == name then
    marks[t] = nil
    return t
  end
  if mark == CLEAN then
    -- shape_error checked this reply and saw no null, Any or unknown object in it: only the subtrees
    -- holding integer or Any fields need the walk
    marks[t] = nil
    return decode_needed(name, t, self.null)
  end
  return decode_fields(name, t, self.null, 0, {})
end

--- Checks and decodes a reply in one step: `shape_error`, then `decode_message` (with the C walks, one
-- pass over the table).
-- @param name message name
-- @param t decoded table (decoded in place)
-- @return t, or nil and the phrase naming the first field that does not fit
function Codec:decode_reply(name, t)
  local misfit = self:shape_error(name, t)
  if misfit then return nil, misfit end
  return self:decode_message(name, t)
end

--- Decodes a `google.protobuf.Any` table in place.
function Codec:decode_any(t)
  return M.decode_any(t, self.null)
end

return M
