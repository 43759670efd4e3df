--- Strict JSON for the emulator (pure Lua, no cjson).
--
-- Decoding marks objects and arrays (`json.is_object`, `json.is_array`), keeps the key order
-- of objects (`json.keys`), the source text of every number literal (`json.literal`) and the
-- duplicate keys of every object (`json.duplicates`). `null` decodes to `json.null`.
-- Errors are reported like Google's front end (protobuf's JSON stream parser): a message, then
-- the input around the position and a caret.
--
-- Encoding keeps the key order of objects made with `json.object()` / `json.set()` (or decoded),
-- prints arrays marked with `json.array()` (or any non-empty sequence), escapes strings, and
-- prints numbers in their shortest round-trip form (`json.f32(x)` gives a double that prints
-- like Google prints a float32 value).
-- @module gemini.emulator.json

local M = {}

local byte, char, sub, find, format, concat =
  string.byte, string.char, string.sub, string.find, string.format, table.concat
local floor, huge = math.floor, math.huge
local tostring, tonumber, type, pairs, setmetatable, getmetatable, rawget =
  tostring, tonumber, type, pairs, setmetatable, getmetatable, rawget

local object_mt = { __name = "json.object" }
local array_mt = { __name = "json.array" }
M.object_mt, M.array_mt = object_mt, array_mt

--- The JSON null sentinel.
M.null = setmetatable({}, { __name = "json.null", __tostring = function() return "null" end })

-- side tables: object -> ordered key list; container -> { key -> literal }; object -> dup list
local order = setmetatable({}, { __mode = "k" })
local literals = setmetatable({}, { __mode = "k" })
local dups = setmetatable({}, { __mode = "k" })

--- A new ordered object, optionally from alternating key/value arguments (nil values skipped).
-- @param ... key1, value1, key2, value2, ...
-- @return object
function M.object(...)
  local o = setmetatable({}, object_mt)
  local keys = {}
  order[o] = keys
  local n = select("#", ...)
  for i = 1, n, 2 do
    local k, v = select(i, ...)
    if v ~= nil then
      if o[k] == nil then keys[#keys + 1] = k end
      o[k] = v
    end
  end
  return o
end

--- Set a key on an ordered object (appends the key the first time; nil removes it on output).
-- @param o object
-- @param k key
-- @param v value
-- @return o
function M.set(o, k, v)
  local keys = order[o]
  if not keys then keys = {}; order[o] = keys end
  if rawget(o, k) == nil and v ~= nil then
    local found = false
    for i = 1, #keys do if keys[i] == k then found = true break end end
    if not found then keys[#keys + 1] = k end
  end
  o[k] = v
  return o
end

--- Mark a table as a JSON array.
-- @param t table or nil
-- @return t
function M.array(t) return setmetatable(t or {}, array_mt) end

--- Is v a decoded or constructed object?
function M.is_object(v) return type(v) == "table" and getmetatable(v) == object_mt end
--- Is v a decoded or marked array?
function M.is_array(v) return type(v) == "table" and getmetatable(v) == array_mt end

--- Keys of an object in order (decoded order, or insertion order).
-- @param o object
-- @return array of keys
function M.keys(o)
  local keys = order[o]
  local out, seen = {}, {}
  if keys then
    for i = 1, #keys do
      local k = keys[i]
      if o[k] ~= nil and not seen[k] then out[#out + 1] = k; seen[k] = true end
    end
  end
  local extra = {}
  for k in pairs(o) do if not seen[k] then extra[#extra + 1] = k end end
  if #extra > 0 then
    table.sort(extra, function(a, b) return tostring(a) < tostring(b) end)
    for i = 1, #extra do out[#out + 1] = extra[i] end
  end
  return out
end

--- Source text of the number literal at container[key] (decoded input), or nil.
function M.literal(container, key)
  local l = literals[container]
  return l and l[key]
end

--- Keys that appeared more than once in a decoded object (array, possibly empty).
function M.duplicates(o) return dups[o] or {} end

-- ------------------------------------------------------------------------------------------
-- decoding

local CONTEXT = 20

local function failure(s, pos, msg)
  local from = pos - CONTEXT
  if from < 1 then from = 1 end
  local to = pos + CONTEXT
  local segment = sub(s, from, to)
  segment = segment:gsub("[\r\n]", " ")
  error({ json_error = msg .. "\n" .. segment .. "\n" .. string.rep(" ", pos - from) .. "^" }, 0)
end

local function skip(s, pos)
  local _, e = find(s, "^[ \t\r\n]*", pos)
  return e + 1
end

local function utf8_char(cp)
  if cp < 0x80 then return char(cp)
  elseif cp < 0x800 then return char(0xC0 + floor(cp / 64), 0x80 + cp % 64)
  elseif cp < 0x10000 then
    return char(0xE0 + floor(cp / 4096), 0x80 + floor(cp / 64) % 64, 0x80 + cp % 64)
  else
    return char(0xF0 + floor(cp / 262144), 0x80 + floor(cp / 4096) % 64, 0x80 + floor(cp / 64) % 64,
      0x80 + cp % 64)
  end
end

-- protobuf's ParseStringHelper: \b \f \n \r \t \v and \uXXXX; any other escaped character stands for itself
local escapes = { b = "\b", f = "\f", n = "\n", r = "\r", t = "\t", v = "\v" }

local function decode_string(s, pos) -- pos at the opening quote: " or ' (the stream parser takes both)
  local parts, np = {}, 0
  local i = pos + 1
  local quote = byte(s, pos)
  local stop = quote == 39 and "['\\%c]" or '["\\%c]'
  while true do
    local a = find(s, stop, i)
    if not a then failure(s, #s + 1, "Closing quote expected in string.") end
    if a > i then np = np + 1; parts[np] = sub(s, i, a - 1) end
    local c = byte(s, a)
    if c == quote then
      return concat(parts), a + 1
    elseif c == 92 then
      local e = sub(s, a + 1, a + 1)
      if e == "u" then
        -- as protobuf's ParseUnicodeEscape reports it
        local hex = sub(s, a + 2, a + 5)
        if #hex < 4 then failure(s, a, "Illegal hex string.") end
        if not find(hex, "^%x%x%x%x$") then failure(s, a, "Invalid escape sequence.") end
        local cp = tonumber(hex, 16)
        local nexti = a + 6
        if cp >= 0xD800 and cp <= 0xDBFF then
          if #s - nexti + 1 < 6 or not find(s, "^\\u", nexti) then failure(s, a, "Missing low surrogate.") end
          local lohex = sub(s, nexti + 2, nexti + 5)
          if not find(lohex, "^%x%x%x%x$") then failure(s, a, "Invalid escape sequence.") end
          local lo = tonumber(lohex, 16)
          if lo < 0xDC00 or lo > 0xDFFF then failure(s, a, "Invalid low surrogate.") end
          cp = 0x10000 + (cp - 0xD800) * 1024 + (lo - 0xDC00)
          nexti = nexti + 6
        elseif cp >= 0xDC00 and cp <= 0xDFFF then
          failure(s, a, "Invalid unicode code point.")
        end
        np = np + 1; parts[np] = utf8_char(cp)
        i = nexti
      elseif e == "" then
        failure(s, a, "Closing quote expected in string.")
      else
        np = np + 1; parts[np] = escapes[e] or e
        i = a + 2
      end
    else
      -- a raw control character inside a string: protobuf's stream parser (and so Google's
      -- front end) takes it as is
      np = np + 1; parts[np] = sub(s, a, a)
      i = a + 1
    end
  end
end

-- As protobuf's JsonStreamParser::ParseNumberHelper: take the run of [0-9.eE+-x], then a double when it has
-- `.`, `e` or `E` (strtod must consume it all: "1." is 1.0), else an integer; a leading 0 before more
-- characters is "Octal/hex numbers are not valid JSON values."; anything else "Unable to parse number.".
local function decode_number(s, pos)
  local _, e = find(s, "^[-+%dxeE.]*", pos)
  local text = sub(s, pos, e)
  local negative = byte(text, 1) == 45
  local v
  if find(text, "[.eE]") then
    v = not find(text, "x", 1, true) and tonumber(text) or nil
    if not v then failure(s, pos, "Unable to parse number.") end
    if math.type and math.type(v) == "integer" then v = v + 0.0 end
  else
    if (not negative and #text >= 2 and byte(text, 1) == 48) or (negative and #text >= 3 and byte(text, 2) == 48) then
      failure(s, pos, "Octal/hex numbers are not valid JSON values.")
    end
    v = find(text, "^%-?%d+$") and tonumber(text) or nil
    if not v then failure(s, pos, "Unable to parse number.") end
  end
  return v, e + 1, text
end

local decode_value

-- After an object member or an array element: skips the separator. Returns the position of the next
-- member and false, or the position after `closer` (125 `}` or 93 `]`) and true. Like protobuf's
-- stream parser (ParseEntry, ParseArrayValue), a trailing comma before the closer is accepted: Google
-- answered 200 to its own tuning tutorial's `"epoch_count":3,}`.
local function separator(s, pos, closer, what)
  pos = skip(s, pos)
  local c = byte(s, pos)
  if c == 44 then
    pos = skip(s, pos + 1)
    if byte(s, pos) == closer then return pos + 1, true end
    return pos, false
  elseif c == closer then
    return pos + 1, true
  end
  local expected = "Expected , or " .. char(closer) .. " after " .. what .. "."
  if pos > #s then failure(s, pos, "Unexpected end of string. " .. expected) end
  failure(s, pos, expected)
end

-- An object key (quoted, or bare as the stream parser still takes it "for back compat", but not
-- true/false/null) and the `:` after it: returns the key and the position of its value.
local function object_key(s, pos)
  local k
  local kc = byte(s, pos)
  if kc == 34 or kc == 39 then
    k, pos = decode_string(s, pos)
  elseif kc and find(s, "^[%a_$]", pos) then
    local _, ke = find(s, "^[%w_$]*", pos)
    k = sub(s, pos, ke)
    if k == "true" or k == "false" or k == "null" then failure(s, ke + 1, "Expected an object key or }.") end
    pos = ke + 1
  else
    if pos > #s then failure(s, pos, "Unexpected end of string. Expected an object key or }.") end
    failure(s, pos, "Expected an object key or }.")
  end
  pos = skip(s, pos)
  if byte(s, pos) ~= 58 then failure(s, pos, "Expected : between key:value pair.") end
  return k, skip(s, pos + 1)
end

-- The members of an object (`keys`: its key order, filled here) or the elements of an array, from the
-- opening bracket at `pos` through `closer`, into `t`. Number literals are kept by key or index, and
-- a repeated object key is recorded in `dups` (the last value wins).
local function decode_items(s, pos, depth, t, closer, what, keys)
  local n, lits = 0, nil
  pos = skip(s, pos + 1)
  if byte(s, pos) == closer then return t, pos + 1 end
  while true do
    local k
    if keys then k, pos = object_key(s, pos) else n = n + 1; k = n end
    local v, lit
    v, pos, lit = decode_value(s, pos, depth)
    if keys then
      if t[k] ~= nil then
        local d = dups[t]
        if not d then d = {}; dups[t] = d end
        d[#d + 1] = k
      else
        keys[#keys + 1] = k
      end
    end
    t[k] = v
    if lit then
      if not lits then lits = {}; literals[t] = lits end
      lits[k] = lit
    end
    local closed
    pos, closed = separator(s, pos, closer, what)
    if closed then return t, pos end
  end
end

local function decode_object(s, pos, depth)
  local o = setmetatable({}, object_mt)
  local keys = {}
  order[o] = keys
  return decode_items(s, pos, depth, o, 125, "key:value pair", keys)
end

local function decode_array(s, pos, depth)
  return decode_items(s, pos, depth, setmetatable({}, array_mt), 93, "array value")
end

function decode_value(s, pos, depth)
  local c = byte(s, pos)
  if c == 123 or c == 91 then
    if depth >= 100 then failure(s, pos, "Message too deep. Max recursion depth reached.") end
    if c == 123 then return decode_object(s, pos, depth + 1) end
    return decode_array(s, pos, depth + 1)
  elseif c == 34 or c == 39 then
    return decode_string(s, pos)
  elseif c == 45 or (c and c >= 48 and c <= 57) then
    return decode_number(s, pos)
  elseif c == 116 and sub(s, pos, pos + 3) == "true" then return true, pos + 4
  elseif c == 102 and sub(s, pos, pos + 4) == "false" then return false, pos + 5
  elseif c == 110 and sub(s, pos, pos + 3) == "null" then return M.null, pos + 4
  elseif c == nil then
    failure(s, pos, "Unexpected end of string. Expected a value.")
  elseif find(s, "^[]}:,%a_$]", pos) then
    -- a token the stream parser knows (a bracket, a separator or a bare word) where a value belongs
    failure(s, pos, "Unexpected token.")
  end
  failure(s, pos, "Expected a value.")
end

--- Decode a JSON text strictly.
-- @param s the text
-- @return value, or nil and an error message (without Google's "Invalid JSON payload received. " prefix)
function M.decode(s)
  if type(s) ~= "string" then return nil, "Expected a value." end
  local ok, v = pcall(function()
    local p = skip(s, 1)
    local value, np = decode_value(s, p, 0)
    np = skip(s, np)
    if np <= #s then failure(s, np, "Parsing terminated before end of input.") end
    return value, np
  end)
  if ok then return v end
  if type(v) == "table" and v.json_error then return nil, v.json_error end
  error(v, 0)
end

-- ------------------------------------------------------------------------------------------
-- encoding

local escape_map = {
  ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f", ["\n"] = "\\n", ["\r"] = "\\r",
  ["\t"] = "\\t", ["\127"] = "\\u007f",
}
for i = 0, 31 do
  local c = char(i)
  if not escape_map[c] then escape_map[c] = format("\\u%04x", i) end
end

local function quote(s)
  if find(s, '[%c"\\]') then
    return '"' .. s:gsub('[%c"\\]', escape_map) .. '"'
  end
  return '"' .. s .. '"'
end
M.quote = quote

local function num(v)
  if v ~= v then return '"NaN"' end
  if v == huge then return '"Infinity"' end
  if v == -huge then return '"-Infinity"' end
  if math.type and math.type(v) == "integer" then return tostring(v) end
  if v == floor(v) and v > -1e17 and v < 1e17 then return format("%d", v) end
  for p = 15, 17 do
    local s = format("%." .. p .. "g", v)
    if tonumber(s) == v then return s end
  end
  return format("%.17g", v)
end
M.number = num

-- float32 rounding
local to_f32
if string.pack then
  local pack, unpack = string.pack, string.unpack
  to_f32 = function(x) return (unpack("<f", pack("<f", x))) end
else
  local frexp, ldexp = math.frexp, math.ldexp
  to_f32 = function(x)
    if x == 0 or x ~= x or x == huge or x == -huge then return x end
    local m, e = frexp(x) -- x = m * 2^e, 0.5 <= |m| < 1
    local bits = 24
    if e < -125 then bits = 24 - (-125 - e) end
    if bits < 1 then return 0.0 end
    local scaled = m * 2 ^ bits
    local r = floor(scaled + 0.5)
    if r - scaled == 0.5 and r % 2 == 1 then r = r - 1 end -- ties to even
    return ldexp(r / 2 ^ bits, e)
  end
end
M.to_f32 = to_f32

local f32fmt = {}
for p = 1, 9 do f32fmt[p] = "%." .. p .. "g" end

--- A double that prints like Google prints the float32 nearest to x (e.g. 0.7, not 0.699999988).
-- @param x number
-- @return number
function M.f32(x)
  local f = to_f32(x)
  if f ~= f or f == huge or f == -huge or f == floor(f) then return f end
  local function try(p)
    local d = tonumber(format(f32fmt[p], f))
    if to_f32(d) == f then return d end
  end
  local best = try(6)
  if best then
    for p = 5, 1, -1 do
      local d = try(p)
      if not d then break end
      best = d
    end
    return best
  end
  return try(7) or try(8) or try(9) or f
end

local function is_sequence(t)
  local n = #t
  if n == 0 then return false end
  local count = 0
  for k in pairs(t) do
    if type(k) ~= "number" then return false end
    count = count + 1
  end
  return count == n
end

local encode_value

-- Appends a scalar (or null) to `out` and returns the new count; nil for a table (an array or object).
local function encode_scalar(v, out, n)
  local tv = type(v)
  if tv == "string" then out[n + 1] = quote(v)
  elseif tv == "number" then out[n + 1] = num(v)
  elseif tv == "boolean" then out[n + 1] = v and "true" or "false"
  elseif v == nil or v == M.null then out[n + 1] = "null"
  elseif tv == "table" then return nil
  else error("json: cannot encode " .. tv) end
  return n + 1
end

local function encode_pretty(v, out, n, indent)
  local scalar = encode_scalar(v, out, n)
  if scalar then return scalar end
  local mt = getmetatable(v)
  local inner = indent .. "  "
  if mt == array_mt or (mt ~= object_mt and is_sequence(v)) then
    local len = #v
    if len == 0 then n = n + 1; out[n] = "[]"; return n end
    n = n + 1; out[n] = "[\n"
    for i = 1, len do
      n = n + 1; out[n] = inner
      n = encode_value(v[i], out, n, inner)
      n = n + 1; out[n] = (i < len) and ",\n" or "\n"
    end
    n = n + 1; out[n] = indent .. "]"
    return n
  end
  local keys = M.keys(v)
  if #keys == 0 then n = n + 1; out[n] = "{}"; return n end
  n = n + 1; out[n] = "{\n"
  for i = 1, #keys do
    local k = keys[i]
    n = n + 1; out[n] = inner .. quote(tostring(k)) .. ": "
    n = encode_value(v[k], out, n, inner)
    n = n + 1; out[n] = (i < #keys) and ",\n" or "\n"
  end
  n = n + 1; out[n] = indent .. "}"
  return n
end

local function encode_compact(v, out, n)
  local scalar = encode_scalar(v, out, n)
  if scalar then return scalar end
  local mt = getmetatable(v)
  if mt == array_mt or (mt ~= object_mt and is_sequence(v)) then
    n = n + 1; out[n] = "["
    for i = 1, #v do
      if i > 1 then n = n + 1; out[n] = "," end
      n = encode_compact(v[i], out, n)
    end
    n = n + 1; out[n] = "]"
    return n
  end
  n = n + 1; out[n] = "{"
  local keys = M.keys(v)
  for i = 1, #keys do
    local k = keys[i]
    if i > 1 then n = n + 1; out[n] = "," end
    n = n + 1; out[n] = quote(tostring(k)) .. ":"
    n = encode_compact(v[k], out, n)
  end
  n = n + 1; out[n] = "}"
  return n
end

encode_value = encode_pretty

--- Encode a value.
-- @param v value (ordered objects, arrays, strings, numbers, booleans, json.null)
-- @param opts optional: { pretty = true } for Google's 2-space pretty printing
-- @return string
function M.encode(v, opts)
  local out = {}
  if opts and opts.pretty then
    encode_pretty(v, out, 0, "")
  else
    encode_compact(v, out, 0)
  end
  return concat(out)
end

return M
