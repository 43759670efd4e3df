--- Strict proto3 JSON parsing and rendering against the generated schema, the way Google's
-- front end (ESF) does it.
--
-- `proto.parse(message_name, decoded_json)` returns a plain Lua table keyed by lowerCamelCase
-- json names (enums as their names, OUTPUT_ONLY fields dropped) or raises a `proto.Error`
-- ({ canonical=, message=, violations= }). `proto.render(message_name, value, opts)` returns an
-- ordered JSON object in field-number order with default values omitted.
-- @module gemini.emulator.proto

local schema = require "gemini.schema"
local json = require "gemini.emulator.json"

local M = {}

M.PACKAGE = schema.package
M.TYPE_PREFIX = "type.googleapis.com/" .. schema.package .. "."

local floor = math.floor

-- indexes: message -> { [json or proto name] = field }
local by_name = {}
for mname, m in pairs(schema.messages) do
  local t = {}
  for _, f in ipairs(m.fields) do
    t[f.json] = f
    t[f.name] = f
  end
  by_name[mname] = t
end
-- google.longrunning.CancelOperationRequest, the body (`*`) of the operations' :cancel route: not part of
-- the generativelanguage protos the schema is generated from. `name` is bound by the path (the path wins).
by_name.CancelOperationRequest = { name = { name = "name", json = "name", type = "string", number = 1 } }
M.by_name = by_name

local enum_by_name, enum_by_number = {}, {}
for ename, e in pairs(schema.enums) do
  local n, k = {}, {}
  for _, v in ipairs(e.values) do n[v.name] = v.number; k[v.number] = v.name end
  enum_by_name[ename], enum_by_number[ename] = n, k
end

--- Enum value number for a name.
function M.enum_number(enum, name) return enum_by_name[enum][name] end
--- Enum value name for a number.
function M.enum_name(enum, number) return enum_by_number[enum][number] end

local TYPE_NAMES = {
  string = "TYPE_STRING", int32 = "TYPE_INT32", int64 = "TYPE_INT64", uint32 = "TYPE_UINT32",
  uint64 = "TYPE_UINT64", float = "TYPE_FLOAT", double = "TYPE_DOUBLE", bool = "TYPE_BOOL", bytes = "TYPE_BYTES",
  timestamp = "type.googleapis.com/google.protobuf.Timestamp",
  fieldmask = "type.googleapis.com/google.protobuf.FieldMask",
}

local function type_name(f)
  if f.type == "message" then return M.TYPE_PREFIX .. f.message end
  if f.type == "enum" then return M.TYPE_PREFIX .. f.enum end
  return TYPE_NAMES[f.type] or f.type
end

--- Raise an INVALID_ARGUMENT error with BadRequest violations.
-- @param message the error message
-- @param violations array of { field=, description= }
-- @param[opt] canonical the canonical error code (default "INVALID_ARGUMENT")
function M.fail(message, violations, canonical)
  error({ proto_error = true, canonical = canonical or "INVALID_ARGUMENT", message = message,
          violations = violations }, 0)
end

local function value_text(container, key, v)
  local tv = type(v)
  if tv == "string" then return json.quote(v) end
  if tv == "number" then return json.literal(container, key) or json.number(v) end
  if tv == "boolean" then return tostring(v) end
  if v == json.null then return "null" end
  return json.encode(v)
end

local function invalid_value(path, f, text)
  local d = "Invalid value at '" .. path .. "' (" .. type_name(f) .. "), " .. text
  M.fail(d, { { field = path, description = d } })
end

local function invalid_name(name, parent_path, what)
  local d = "Invalid JSON payload received. Unknown name \"" .. name .. "\""
  if parent_path ~= "" then d = d .. " at '" .. parent_path .. "'" end
  d = d .. ": " .. what
  local v = { description = d }
  if parent_path ~= "" then v.field = parent_path end
  return d, v
end

local function join(parent, name)
  if parent == "" then return name end
  return parent .. "." .. name
end

local INT_RANGE = { int32 = { -2147483648, 2147483647 }, uint32 = { 0, 4294967295 },
                    int64 = { -9223372036854775808, 9223372036854775807 }, uint64 = { 0, 18446744073709551615 } }

local RFC3339 = "^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d"

local parse_message

local function parse_scalar(f, container, key, v, path)
  local t = f.type
  if t == "string" or t == "bytes" then
    if type(v) ~= "string" then invalid_value(path, f, value_text(container, key, v)) end
    return v
  elseif t == "float" or t == "double" then
    local x = v
    if type(v) == "string" then
      if v == "NaN" then x = 0 / 0 elseif v == "Infinity" then x = math.huge
      elseif v == "-Infinity" then x = -math.huge
      else  -- protobuf's DataPiece::StringToNumber refuses a leading or trailing space
        x = tonumber(v); if x and (not v:match("^[-+]?[%d.]") or v:match("%s$")) then x = nil end
      end
    end
    if type(x) ~= "number" then invalid_value(path, f, value_text(container, key, v)) end
    local FMAX = 3.4028235677973366e38
    if t == "float" and x == x and x ~= math.huge and x ~= -math.huge and (x > FMAX or x < -FMAX) then
      invalid_value(path, f, value_text(container, key, v))
    end
    return x
  elseif INT_RANGE[t] then
    local x = v
    if type(v) == "string" then
      x = v:match("^%-?%d+$") and tonumber(v) or nil
    end
    if type(x) ~= "number" or x ~= floor(x) or x < INT_RANGE[t][1] or x > INT_RANGE[t][2] then
      invalid_value(path, f, value_text(container, key, v))
    end
    if math.tointeger then x = math.tointeger(x) or x end
    return x
  elseif t == "bool" then
    if type(v) ~= "boolean" then invalid_value(path, f, value_text(container, key, v)) end
    return v
  elseif t == "enum" then
    local name
    if type(v) == "string" then
      if enum_by_name[f.enum][v] then name = v
      elseif v:match("^%-?%d+$") then
        -- protobuf's DataPiece::ToEnum: "Check if int version of enum is sent as string."
        name = enum_by_number[f.enum][tonumber(v)]
      end
    elseif type(v) == "number" and v == floor(v) then
      name = enum_by_number[f.enum][v]
    end
    if not name then invalid_value(path, f, value_text(container, key, v)) end
    return name
  elseif t == "timestamp" then
    if type(v) ~= "string" or not v:match(RFC3339) then invalid_value(path, f, value_text(container, key, v)) end
    return v
  elseif t == "fieldmask" then
    if type(v) ~= "string" then invalid_value(path, f, value_text(container, key, v)) end
    return v
  elseif t == "empty" or t == "any" then
    return v
  end
  return v
end

local function parse_single(f, container, key, v, path, ctx)
  if f.type == "message" then
    if json.is_object(v) then
      return parse_message(f.message, v, path, ctx)
    end
    invalid_value(path, f, value_text(container, key, v))
  end
  if json.is_object(v) then
    local d = "Invalid value (" .. path .. "), Starting an object on a scalar field"
    M.fail(d, { { description = d } })
  end
  return parse_scalar(f, container, key, v, path)
end

function parse_message(mname, obj, path, ctx)
  local fields = by_name[mname]
  local out = {}
  local oneofs = {}
  for _, k in ipairs(json.keys(obj)) do
    local v = obj[k]
    local f = fields[k]
    if not f then
      local _, viol = invalid_name(k, path, "Cannot find field.")
      ctx.unknown[#ctx.unknown + 1] = viol
    elseif v ~= json.null then
      local fpath = join(path, f.name)
      if f.oneof then
        local prev = oneofs[f.oneof]
        if prev and prev ~= f.name then
          local d = "Invalid value at '" .. fpath .. "' (oneof), oneof field '" .. f.oneof ..
            "' is already set. Cannot set '" .. f.name .. "'"
          M.fail(d, { { field = fpath, description = d } })
        end
        oneofs[f.oneof] = f.name
      end
      local value
      if f.repeated then
        if not json.is_array(v) then
          if json.is_object(v) then
            local d, viol = invalid_name(k, path, "Proto field is repeated, cannot start object.")
            M.fail(d, { viol })
          end
          invalid_value(fpath, f, value_text(obj, k, v))
        end
        value = {}
        for i = 1, #v do
          local ipath = fpath .. "[" .. (i - 1) .. "]"
          if v[i] == json.null then invalid_value(ipath, f, "null") end
          if json.is_array(v[i]) then
            local d, viol = invalid_name(k, path, "Proto field is not repeating, cannot start list.")
            M.fail(d, { viol })
          end
          value[i] = parse_single(f, v, i, v[i], ipath, ctx)
        end
      else
        if json.is_array(v) then
          local d, viol = invalid_name(k, path, "Proto field is not repeating, cannot start list.")
          M.fail(d, { viol })
        end
        value = parse_single(f, obj, k, v, fpath, ctx)
      end
      if not (f.behavior and f.behavior.OUTPUT_ONLY) then
        out[f.json] = value
      end
    end
  end
  return out
end

--- Parse a decoded JSON object as message `mname`.
-- @param mname schema message name, e.g. "GenerateTextRequest"
-- @param obj decoded JSON (gemini.emulator.json)
-- @param path proto path prefix for messages ("" at the top)
-- @return plain table keyed by json names
function M.parse(mname, obj, path)
  path = path or ""
  if not json.is_object(obj) then
    local d = "Invalid JSON payload received. Unknown name \"\": Root element must be a message."
    M.fail(d, { { description = d } })
  end
  local ctx = { unknown = {} }
  local out = parse_message(mname, obj, path, ctx)
  if #ctx.unknown > 0 then
    local msgs = {}
    for i, v in ipairs(ctx.unknown) do msgs[i] = v.description end
    M.fail(table.concat(msgs, "\n"), ctx.unknown)
  end
  return out
end

--- Parse one query-parameter value for field f of message mname (strings from the URL).
-- @return the converted value
function M.parse_query_value(f, text, path)
  local v = text
  if f.type == "float" or f.type == "double" or INT_RANGE[f.type] then
    v = text -- strings are accepted for numbers in proto3 JSON
  elseif f.type == "bool" then
    if text == "true" then v = true elseif text == "false" then v = false
    else invalid_value(path, f, json.quote(text)) end
  end
  return parse_scalar(f, nil, nil, v, path)
end

-- ------------------------------------------------------------------------------------------
-- rendering

local function two(n) return string.format("%02d", n) end

--- RFC 3339 UTC timestamp with fractional seconds (3, 6 or 9 digits, as Google prints).
-- @param t seconds since the epoch (float)
function M.timestamp(t)
  local secs = floor(t)
  local micros = floor((t - secs) * 1e6 + 0.5)
  if micros >= 1000000 then secs = secs + 1; micros = micros - 1000000 end
  local d = os.date("!*t", secs)
  local s = string.format("%04d-%s-%sT%s:%s:%s", d.year, two(d.month), two(d.day), two(d.hour), two(d.min), two(d.sec))
  if micros == 0 then return s .. "Z" end
  if micros % 1000 == 0 then return s .. string.format(".%03dZ", micros / 1000) end
  return s .. string.format(".%06dZ", micros)
end

--- The same at nanosecond precision: `extra_ns` (0..999) below the microsecond, 9 digits when they are
-- not all zero, as Google printed a tuning task's startTime and its snapshots' computeTime
-- ("2023-09-19T19:56:26.297862545Z") while createTime, updateTime and completeTime had 6.
function M.timestamp_ns(t, extra_ns)
  local s = M.timestamp(t)
  if not extra_ns or extra_ns == 0 then return s end
  local base, frac = s:match("^(.-)%.(%d+)Z$")
  if not base then base, frac = s:sub(1, -2), "" end
  frac = (frac .. "000000"):sub(1, 6)
  return string.format("%s.%s%03dZ", base, frac, extra_ns)
end

local function is_default(f, x)
  if f.optional or f.oneof or f.type == "message" then return false end
  if x == "" or x == 0 or x == false then return true end
  if f.type == "enum" and (x == 0 or enum_by_name[f.enum][x] == 0) then return true end
  return false
end

local render_message

local function render_value(f, x, opts)
  local t = f.type
  if t == "message" then return render_message(f.message, x, opts) end
  if t == "enum" then
    if opts and opts.enum_int then
      if type(x) == "number" then return x end
      return enum_by_name[f.enum][x]
    end
    if type(x) == "number" then return enum_by_number[f.enum][x] or x end
    return x
  end
  if t == "float" then return json.f32(x) end
  if t == "timestamp" and type(x) == "number" then return M.timestamp(x) end
  return x
end

function render_message(mname, v, opts)
  local m = schema.messages[mname]
  local o = json.object()
  if not m then return o end
  for _, f in ipairs(m.fields) do
    local x = v[f.json]
    if x ~= nil and not (f.behavior and f.behavior.INPUT_ONLY) then
      if f.repeated then
        if #x > 0 then
          local arr = json.array()
          for i = 1, #x do arr[i] = render_value(f, x[i], opts) end
          json.set(o, f.json, arr)
        end
      elseif not is_default(f, x) then
        json.set(o, f.json, render_value(f, x, opts))
      end
    end
  end
  return o
end

--- Render a plain table (keyed by json names) as message `mname`.
-- @param mname schema message name
-- @param v plain table
-- @param opts { enum_int = bool }
-- @return ordered JSON object
function M.render(mname, v, opts) return render_message(mname, v, opts) end

--- An `Any`: "@type" first, then the message's fields.
function M.any(mname, v, opts)
  local o = json.object("@type", M.TYPE_PREFIX .. mname)
  local inner = render_message(mname, v, opts)
  for _, k in ipairs(json.keys(inner)) do json.set(o, k, inner[k]) end
  return o
end

return M
