--- Tuning datasets from Lua tables, CSV and JSON Lines.
--
-- Each loader returns a Dataset: a table of exactly the wire shape of `tuningTask.trainingData`,
--
--    { examples = { examples = { { textInput = "1", output = "2" }, ... } } }
--
-- so it can be put in a create_tuned_model body as it is:
--
--    local data = assert(gemini.dataset.from_csv("numbers.csv", { input = "question", output = "answer" }))
--    client:create_tuned_model({ baseModel = "models/text-bison-001",
--      tuningTask = { trainingData = data, hyperparameters = { epochCount = 3 } } })
--
-- A Dataset also has methods (through its metatable, so they never reach the wire): `ds:count()`,
-- `ds:example(i)`, `ds:each()`.
--
-- Problems in the data (an empty input or output, an example over the size limits, a malformed CSV or
-- JSON line, a missing column) return `nil, message`; the message names the file and line. Misuse
-- (arguments of the wrong type) raises.
--
-- @module gemini.dataset

local M = {}

--- Default maximum input length, in characters (Google's limit for text tuning examples).
M.MAX_INPUT_CHARS = 40000
--- Default maximum output length, in characters.
M.MAX_OUTPUT_CHARS = 5000

local Dataset = {}
Dataset.__index = Dataset

--- Number of examples.
-- @treturn integer
function Dataset:count()
  return #self.examples.examples
end

--- Example `i` as `{ textInput =, output = }`.
-- @tparam integer i
-- @treturn table|nil
function Dataset:example(i)
  return self.examples.examples[i]
end

--- Iterate `i, input, output` over the examples.
-- @return an iterator
function Dataset:each()
  local list, i = self.examples.examples, 0
  return function()
    i = i + 1
    local e = list[i]
    if e then return i, e.textInput, e.output end
  end
end

local function utf8_len(s)
  local _, n = s:gsub("[^\128-\191]", "")
  return n
end

local function limits(opts)
  return opts.max_input_chars or M.MAX_INPUT_CHARS, opts.max_output_chars or M.MAX_OUTPUT_CHARS
end

-- Checks one example; returns nil or a message (without the location prefix).
local function check(input, output, max_in, max_out)
  if type(input) ~= "string" then return "input is " .. type(input) .. ", expected a string" end
  if type(output) ~= "string" then return "output is " .. type(output) .. ", expected a string" end
  if not input:find("%S") then return "empty input" end
  if not output:find("%S") then return "empty output" end
  local n = utf8_len(input)
  if n > max_in then return ("input too long (%d characters, limit %d)"):format(n, max_in) end
  n = utf8_len(output)
  if n > max_out then return ("output too long (%d characters, limit %d)"):format(n, max_out) end
end

local function argerror(i, fname, want, got)
  error(("bad argument #%d to '%s' (%s expected, got %s)"):format(i, fname, want, type(got)), 3)
end

local function new_dataset(list)
  return setmetatable({ examples = { examples = list } }, Dataset)
end

local function finish(list, where)
  if #list == 0 then return nil, where .. ": no examples" end
  return new_dataset(list)
end

--- A Dataset from Lua values.
-- @tparam table list_ a list whose items are `{ "input", "output" }`, `{ input =, output = }` or
--   `{ textInput =, output = }` (also `text_input`); or a map `{ [input] = output }` (sorted by input)
-- @tparam[opt] table opts `max_input_chars`, `max_output_chars`
-- @treturn[1] table the Dataset
-- @treturn[2] nil
-- @treturn[2] string `"example N: empty output"` and the like
function M.from_pairs(list_, opts)
  if type(list_) ~= "table" then argerror(1, "from_pairs", "table", list_) end
  opts = opts or {}
  local max_in, max_out = limits(opts)
  local list = {}
  if list_[1] == nil and next(list_) ~= nil then
    local keys = {}
    for k in pairs(list_) do keys[#keys + 1] = k end
    table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
    for _, k in ipairs(keys) do
      local err = check(k, list_[k], max_in, max_out)
      if err then return nil, ("example %q: %s"):format(tostring(k), err) end
      list[#list + 1] = { textInput = k, output = list_[k] }
    end
    return finish(list, "pairs")
  end
  for i, p in ipairs(list_) do
    if type(p) ~= "table" then return nil, ("example %d: expected a table, got %s"):format(i, type(p)) end
    local input, output
    if p[1] ~= nil or p[2] ~= nil then
      input, output = p[1], p[2]
    else
      input = p.textInput
      if input == nil then input = p.text_input end
      if input == nil then input = p.input end
      output = p.output
    end
    local err = check(input, output, max_in, max_out)
    if err then return nil, ("example %d: %s"):format(i, err) end
    list[#list + 1] = { textInput = input, output = output }
  end
  return finish(list, "pairs")
end

local function read_file(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local s = f:read("*a")
  f:close()
  return s
end

--- Parse CSV text (RFC 4180) into records.
-- Fields are separated by `sep` (default `,`), records by CRLF or LF; a quoted field may hold the
-- separator, newlines and doubled quotes (`""`). A leading UTF-8 BOM is skipped.
-- @tparam string text
-- @tparam[opt] table opts `sep`, `name` (used in messages, default "csv")
-- @treturn[1] {table,...} records, each a list of fields with `.line`, the line where it starts
-- @treturn[2] nil
-- @treturn[2] string `"name:LINE: message"`
function M.parse_csv(text, opts)
  if type(text) ~= "string" then argerror(1, "parse_csv", "string", text) end
  opts = opts or {}
  local sep = opts.sep or ","
  local name = opts.name or "csv"
  local pos, len, line = 1, #text, 1
  if text:sub(1, 3) == "\239\187\191" then pos = 4 end
  local records = {}
  local record = { line = 1 }
  local field
  local function end_field(f)
    record[#record + 1] = f
  end
  while pos <= len do
    local c = text:sub(pos, pos)
    if c == '"' then
      local qline = line
      local buf = {}
      pos = pos + 1
      while true do
        if pos > len then
          return nil, ("%s:%d: unterminated quoted field"):format(name, qline)
        end
        local q = text:find('"', pos, true)
        if not q then
          return nil, ("%s:%d: unterminated quoted field"):format(name, qline)
        end
        local chunk = text:sub(pos, q - 1)
        local _, nl = chunk:gsub("\n", "")
        line = line + nl
        buf[#buf + 1] = chunk
        if text:sub(q + 1, q + 1) == '"' then
          buf[#buf + 1] = '"'
          pos = q + 2
        else
          pos = q + 1
          break
        end
      end
      field = table.concat(buf)
      local nc = text:sub(pos, pos)
      if nc ~= sep and nc ~= "\n" and nc ~= "\r" and nc ~= "" then
        return nil, ("%s:%d: unexpected %q after a closing quote"):format(name, line, nc)
      end
    else
      local s, e = text:find("[" .. (sep:match("%w") and sep or "%" .. sep) .. "\r\n\"]", pos)
      if not s then s, e = len + 1, len end
      local ch = text:sub(s, e)
      if ch == '"' then
        return nil, ("%s:%d: quote inside an unquoted field"):format(name, line)
      end
      field = text:sub(pos, s - 1)
      pos = s
    end
    local d = text:sub(pos, pos)
    if d == sep then
      end_field(field)
      pos = pos + 1
      if pos > len then end_field("") end
    elseif d == "\r" or d == "\n" or d == "" then
      end_field(field)
      if d == "\r" and text:sub(pos + 1, pos + 1) == "\n" then pos = pos + 2 else pos = pos + 1 end
      -- a blank line (one empty field) is skipped
      if not (#record == 1 and record[1] == "") then records[#records + 1] = record end
      line = line + 1
      record = { line = line }
    end
  end
  if #record > 0 and not (#record == 1 and record[1] == "") then records[#records + 1] = record end
  return records
end

local function find_column(header, want, label, name, default_names)
  if type(want) == "number" then return want end
  if want == nil then
    if header then
      for _, n in ipairs(default_names) do
        for i, h in ipairs(header) do
          if h:lower() == n then return i end
        end
      end
    end
    return nil
  end
  if type(want) ~= "string" then
    error(("bad option '%s' (column name or index expected, got %s)"):format(label, type(want)), 3)
  end
  if not header then return nil, ("%s: column %q needs a header row"):format(name, want) end
  for i, h in ipairs(header) do
    if h == want then return i end
  end
  for i, h in ipairs(header) do
    if h:lower() == want:lower() then return i end
  end
  return nil, ("%s:%d: no column named %q for %s (columns: %s)")
    :format(name, header.line, want, label, table.concat(header, ", "))
end

--- A Dataset from CSV text. See `from_csv` for the options.
-- @tparam string text
-- @tparam[opt] table opts
-- @treturn[1] table the Dataset
-- @treturn[2] nil
-- @treturn[2] string
function M.from_csv_string(text, opts)
  opts = opts or {}
  local name = opts.name or "csv"
  local records, err = M.parse_csv(text, { sep = opts.sep, name = name })
  if not records then return nil, err end
  local header
  local has_header = opts.header
  if has_header == nil then
    has_header = not (type(opts.input) == "number" and type(opts.output) == "number")
  end
  local first = 1
  if has_header then
    header = records[1]
    if not header then return nil, name .. ": empty file (no header row)" end
    first = 2
  end
  local ci, co
  ci, err = find_column(header, opts.input, "input", name, { "input", "text_input", "textinput", "prompt" })
  if err then return nil, err end
  co, err = find_column(header, opts.output, "output", name, { "output", "completion", "response" })
  if err then return nil, err end
  ci, co = ci or 1, co or 2
  local max_in, max_out = limits(opts)
  local list = {}
  for r = first, #records do
    local rec = records[r]
    local input, output = rec[ci], rec[co]
    if input == nil or output == nil then
      local col = input == nil and ci or co
      return nil, ("%s:%d: the row has %d field(s), no column %d (%s)")
        :format(name, rec.line, #rec, col, input == nil and "input" or "output")
    end
    local cerr = check(input, output, max_in, max_out)
    if cerr then return nil, ("%s:%d: %s"):format(name, rec.line, cerr) end
    list[#list + 1] = { textInput = input, output = output }
  end
  return finish(list, name)
end

--- A Dataset from a CSV file (RFC 4180).
-- @tparam string path
-- @tparam[opt] table opts
--   `input`, `output`: the columns, by header name (case-insensitive) or 1-based index. Defaults: the
--   column named input/text_input/prompt (else the first) and output/completion/response (else the second);
--   `header`: whether the first row is a header (default true, unless both columns are indexes);
--   `sep` (default ","); `max_input_chars`, `max_output_chars`
-- @treturn[1] table the Dataset
-- @treturn[2] nil
-- @treturn[2] string e.g. `"data.csv:7: empty output"`
function M.from_csv(path, opts)
  if type(path) ~= "string" then argerror(1, "from_csv", "string", path) end
  local text, err = read_file(path)
  if not text then return nil, err end
  local o = {}
  for k, v in pairs(opts or {}) do o[k] = v end
  o.name = o.name or path
  return M.from_csv_string(text, o)
end

local cjson = require("cjson").new()

--- A Dataset from a JSON Lines file: one JSON object per line, blank lines skipped.
-- @tparam string path
-- @tparam[opt] table opts `input` (key; default the first present of text_input, textInput, input,
--   prompt), `output` (key; default output), `max_input_chars`, `max_output_chars`
-- @treturn[1] table the Dataset
-- @treturn[2] nil
-- @treturn[2] string e.g. `"data.jsonl:3: invalid JSON: ..."`
function M.from_jsonl(path, opts)
  if type(path) ~= "string" then argerror(1, "from_jsonl", "string", path) end
  opts = opts or {}
  local text, err = read_file(path)
  if not text then return nil, err end
  local name = opts.name or path
  local max_in, max_out = limits(opts)
  local list = {}
  local n = 0
  if text:sub(1, 3) == "\239\187\191" then text = text:sub(4) end
  for l in (text .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    l = l:gsub("\r$", "")
    if l:find("%S") then
      local ok, obj = pcall(cjson.decode, l)
      if not ok then
        return nil, ("%s:%d: invalid JSON: %s"):format(name, n, (tostring(obj):gsub("^.-: ", "")))
      end
      if type(obj) ~= "table" then return nil, ("%s:%d: expected a JSON object"):format(name, n) end
      local input
      if opts.input then
        input = obj[opts.input]
      else
        for _, k in ipairs({ "text_input", "textInput", "input", "prompt" }) do
          if obj[k] ~= nil then input = obj[k]; break end
        end
      end
      local output = obj[opts.output or "output"]
      if input == nil or input == cjson.null then
        return nil, ("%s:%d: no input key (%s)"):format(name, n, opts.input or "text_input, textInput, input or prompt")
      end
      if output == nil or output == cjson.null then
        return nil, ("%s:%d: no output key (%s)"):format(name, n, opts.output or "output")
      end
      local cerr = check(input, output, max_in, max_out)
      if cerr then return nil, ("%s:%d: %s"):format(name, n, cerr) end
      list[#list + 1] = { textInput = input, output = output }
    end
  end
  return finish(list, name)
end

--- Whether a value is a Dataset made by this module.
-- @param v
-- @treturn boolean
function M.is_dataset(v)
  return getmetatable(v) == Dataset
end

return M
