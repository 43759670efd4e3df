#!/usr/bin/env lua5.4
--- Generates lua/gemini/schema.lua from Google's v1beta3 .proto files.
-- Usage: lua5.4 tools/gen_schema.lua ../shared/reference/protos > lua/gemini/schema.lua
-- The output is the only code that the client and the emulator share: it is derived
-- from the protos, never edited by hand.

local dir = assert(arg[1], "usage: gen_schema.lua PROTO_DIR")

local WELL_KNOWN = {
  ["google.protobuf.Timestamp"] = "timestamp",
  ["google.protobuf.FieldMask"] = "fieldmask",
  ["google.protobuf.Empty"] = "empty",
  ["google.protobuf.Any"] = "any",
  ["google.longrunning.Operation"] = "operation",
}
local SCALARS = {
  string = true, bytes = true, bool = true, float = true, double = true,
  int32 = true, int64 = true, uint32 = true, uint64 = true, sint32 = true, sint64 = true,
  fixed32 = true, fixed64 = true, sfixed32 = true, sfixed64 = true,
}

local function read_file(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

local function list_protos(path)
  local names = {}
  local p = assert(io.popen('ls "' .. path .. '"'))
  for line in p:lines() do
    if line:match("%.proto$") then names[#names + 1] = line end
  end
  p:close()
  table.sort(names)
  return names
end

-- Tokenizer: identifiers (dotted), numbers, strings, single-character punctuation.
local function tokenize(src)
  local toks, i, n = {}, 1, #src
  while i <= n do
    local c = src:sub(i, i)
    if c:match("%s") then
      i = i + 1
    elseif src:sub(i, i + 1) == "//" then
      i = (src:find("\n", i, true) or n) + 1
    elseif src:sub(i, i + 1) == "/*" then
      i = select(2, assert(src:find("*/", i + 2, true), "unterminated comment")) + 1
    elseif c == '"' or c == "'" then
      local j = i + 1
      while src:sub(j, j) ~= c do
        if src:sub(j, j) == "\\" then j = j + 1 end
        j = j + 1
      end
      toks[#toks + 1] = { kind = "string", value = src:sub(i + 1, j - 1) }
      i = j + 1
    elseif c:match("[%w_%.]") then
      local word = src:match("^[%w_%.%-]+", i)
      toks[#toks + 1] = { kind = word:match("^%-?%d") and "number" or "ident", value = word }
      i = i + #word
    else
      toks[#toks + 1] = { kind = "punct", value = c }
      i = i + 1
    end
  end
  return toks
end

local Parser = {}
Parser.__index = Parser

local function new_parser(toks)
  return setmetatable({ toks = toks, pos = 1 }, Parser)
end

function Parser:peek(k) return self.toks[self.pos + (k or 0)] end
function Parser:next()
  local t = self.toks[self.pos]
  self.pos = self.pos + 1
  return t
end
function Parser:expect(value)
  local t = self:next()
  if not t or t.value ~= value then
    error(("expected %q, got %q"):format(value, t and t.value or "EOF"))
  end
  return t
end
function Parser:accept(value)
  local t = self:peek()
  if t and t.value == value then self.pos = self.pos + 1; return true end
  return false
end

-- Skips a balanced {...} block; returns its tokens.
function Parser:block()
  self:expect("{")
  local depth, out = 1, {}
  while depth > 0 do
    local t = assert(self:next(), "unbalanced block")
    if t.value == "{" and t.kind == "punct" then depth = depth + 1 end
    if t.value == "}" and t.kind == "punct" then depth = depth - 1 end
    if depth > 0 then out[#out + 1] = t end
  end
  return out
end

function Parser:skip_statement()
  while true do
    local t = assert(self:next(), "unexpected EOF")
    if t.value == "{" then self.pos = self.pos - 1; self:block() end
    if t.value == ";" then return end
  end
end

-- Parses "(name) = value" option lists inside [...]; returns behaviors.
function Parser:field_options()
  local behavior = {}
  if not self:accept("[") then return behavior end
  while true do
    local t = self:next()
    if t.value == "]" then break end
    if t.value == "(" then
      local name = self:next().value
      self:expect(")")
      self:expect("=")
      if self:peek().value == "{" then
        self:block()
      else
        local v = self:next().value
        if name == "google.api.field_behavior" then behavior[v] = true end
      end
    end
  end
  return behavior
end

local function camel(name)
  return (name:gsub("_(%l)", function(c) return c:upper() end))
end

local model = { messages = {}, enums = {}, services = {}, package = nil }

function Parser:enum(scope)
  local name = self:next().value
  local full = scope and (scope .. "." .. name) or name
  self:expect("{")
  local values = {}
  while not self:accept("}") do
    local t = self:peek()
    if t.value == "option" or t.value == "reserved" then
      self:skip_statement()
    else
      local vname = self:next().value
      self:expect("=")
      local num = tonumber(self:next().value)
      self:field_options()
      self:expect(";")
      values[#values + 1] = { name = vname, number = num }
    end
  end
  model.enums[full] = { name = full, values = values }
  return name
end

function Parser:field(msg, label, oneof)
  local ftype = self:next().value
  local fname = self:next().value
  self:expect("=")
  local number = tonumber(self:next().value)
  local behavior = self:field_options()
  self:expect(";")
  msg.fields[#msg.fields + 1] = {
    name = fname, json = camel(fname), number = number, raw_type = ftype,
    repeated = label == "repeated", optional = label == "optional",
    oneof = oneof, behavior = behavior,
  }
end

function Parser:message(scope)
  local name = self:next().value
  local full = scope and (scope .. "." .. name) or name
  local msg = { name = full, fields = {}, scope = full }
  model.messages[full] = msg
  self:expect("{")
  while not self:accept("}") do
    local t = self:peek()
    if t.value == "option" or t.value == "reserved" then
      self:skip_statement()
    elseif t.value == "message" then
      self:next(); self:message(full)
    elseif t.value == "enum" then
      self:next(); self:enum(full)
    elseif t.value == "oneof" then
      self:next()
      local oneof = self:next().value
      self:expect("{")
      while not self:accept("}") do
        if self:peek().value == "option" then self:skip_statement() else self:field(msg, nil, oneof) end
      end
    elseif t.value == "repeated" or t.value == "optional" then
      self:next(); self:field(msg, t.value)
    else
      self:field(msg, nil)
    end
  end
  table.sort(msg.fields, function(a, b) return a.number < b.number end)
end

-- Reads the google.api.http option body: verb/path/body and additional_bindings.
local function http_rules(toks)
  local rules, cur = {}, nil
  local i = 1
  local function flush() if cur then rules[#rules + 1] = cur; cur = nil end end
  while i <= #toks do
    local t = toks[i]
    local verb = ({ get = "GET", post = "POST", patch = "PATCH", put = "PUT", delete = "DELETE" })[t.value]
    if verb and toks[i + 1] and toks[i + 1].value == ":" then
      flush()
      cur = { verb = verb, path = toks[i + 2].value }
      i = i + 3
    elseif t.value == "body" and toks[i + 1] and toks[i + 1].value == ":" then
      cur.body = toks[i + 2].value
      i = i + 3
    else
      i = i + 1
    end
  end
  flush()
  return rules
end

function Parser:service()
  local sname = self:next().value
  self:expect("{")
  while not self:accept("}") do
    local t = self:peek()
    if t.value == "rpc" then
      self:next()
      local rpc = self:next().value
      self:expect("(")
      local input = self:next().value
      self:expect(")")
      self:expect("returns")
      self:expect("(")
      local output = self:next().value
      self:expect(")")
      local entry = { service = sname, rpc = rpc, input = input, output = output, http = {} }
      if self:accept("{") then
        while not self:accept("}") do
          self:expect("option")
          self:expect("(")
          local oname = self:next().value
          self:expect(")")
          self:expect("=")
          if self:peek().value == "{" then
            local body = self:block()
            if oname == "google.api.http" then entry.http = http_rules(body) end
          else
            self:next()
          end
          self:expect(";")
        end
      else
        self:expect(";")
      end
      model.services[#model.services + 1] = entry
    else
      self:skip_statement()
    end
  end
end

function Parser:file()
  while self:peek() do
    local t = self:next()
    if t.value == "package" then
      model.package = self:next().value
      self:expect(";")
    elseif t.value == "syntax" or t.value == "import" or t.value == "option" then
      self.pos = self.pos - 1
      self:skip_statement()
    elseif t.value == "message" then
      self:message(nil)
    elseif t.value == "enum" then
      self:enum(nil)
    elseif t.value == "service" then
      self:service()
    else
      error("unexpected token " .. t.value)
    end
  end
end

for _, name in ipairs(list_protos(dir)) do
  new_parser(tokenize(read_file(dir .. "/" .. name))):file()
end

-- Resolves a type name from a message scope outward, as protoc does.
local function resolve(scope, tname)
  if WELL_KNOWN[tname] then return "wk", WELL_KNOWN[tname] end
  if SCALARS[tname] then return "scalar", tname end
  tname = tname:gsub("^" .. model.package:gsub("%.", "%%.") .. "%.", "")
  local s = scope
  while true do
    local candidate = s and (s .. "." .. tname) or tname
    if model.messages[candidate] then return "message", candidate end
    if model.enums[candidate] then return "enum", candidate end
    if not s then break end
    s = s:match("^(.*)%.[^.]+$")
  end
  error("cannot resolve type " .. tname .. " in " .. tostring(scope))
end

for _, msg in pairs(model.messages) do
  for _, f in ipairs(msg.fields) do
    local kind, resolved = resolve(msg.scope, f.raw_type)
    if kind == "message" then
      f.type, f.message = "message", resolved
    elseif kind == "enum" then
      f.type, f.enum = "enum", resolved
    else
      f.type = resolved
    end
    f.raw_type = nil
  end
  msg.scope = nil
end
for _, svc in ipairs(model.services) do
  svc.input = select(2, resolve(nil, svc.input))
  svc.output = select(2, resolve(nil, svc.output))
end

-- Serialisation: deterministic Lua source.
local out = {}
local function emit(s) out[#out + 1] = s end
local function q(s) return ("%q"):format(s) end
local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  return keys
end

emit("-- GENERATED by tools/gen_schema.lua from Google's v1beta3 .proto files. Do not edit.\n")
emit("-- Regenerate with `make schema`. Shared by the client and the emulator (see HACKING.md).\n")
emit("return {\n  package = " .. q(model.package) .. ",\n  messages = {\n")
for _, name in ipairs(sorted_keys(model.messages)) do
  local msg = model.messages[name]
  emit("    [" .. q(name) .. "] = { name = " .. q(name) .. ", fields = {\n")
  for _, f in ipairs(msg.fields) do
    local parts = {
      "name = " .. q(f.name), "json = " .. q(f.json), "number = " .. f.number, "type = " .. q(f.type),
    }
    if f.message then parts[#parts + 1] = "message = " .. q(f.message) end
    if f.enum then parts[#parts + 1] = "enum = " .. q(f.enum) end
    parts[#parts + 1] = "repeated = " .. tostring(f.repeated)
    parts[#parts + 1] = "optional = " .. tostring(f.optional)
    if f.oneof then parts[#parts + 1] = "oneof = " .. q(f.oneof) end
    local b = {}
    for _, k in ipairs(sorted_keys(f.behavior)) do b[#b + 1] = k .. " = true" end
    parts[#parts + 1] = "behavior = { " .. table.concat(b, ", ") .. (#b > 0 and " }" or "}")
    emit("      { " .. table.concat(parts, ", ") .. " },\n")
  end
  emit("    } },\n")
end
emit("  },\n  enums = {\n")
for _, name in ipairs(sorted_keys(model.enums)) do
  local e = model.enums[name]
  emit("    [" .. q(name) .. "] = { name = " .. q(name) .. ", values = {\n")
  for _, v in ipairs(e.values) do
    emit("      { name = " .. q(v.name) .. ", number = " .. v.number .. " },\n")
  end
  emit("    } },\n")
end
emit("  },\n  services = {\n")
for _, s in ipairs(model.services) do
  emit(("    { service = %s, rpc = %s, input = %s, output = %s, http = {\n"):format(
    q(s.service), q(s.rpc), q(s.input), q(s.output)))
  for _, h in ipairs(s.http) do
    emit(("      { verb = %s, path = %s%s },\n"):format(q(h.verb), q(h.path),
      h.body and (", body = " .. q(h.body)) or ""))
  end
  emit("    } },\n")
end
emit("  },\n}\n")
io.write(table.concat(out))
