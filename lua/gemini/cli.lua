--- The `gemini` command line tool. `bin/gemini` calls `main(arg)`.
--
-- See `USAGE` (printed by `gemini --help`) for the commands, flags and exit codes.
-- @module gemini.cli

local M = {}

M.USAGE = [[
Usage: gemini [global flags] COMMAND [args]

Commands:
  models [--page-size N]                    list the models
  model NAME                                show one model
  generate-text -m MODEL [--temperature T] [--candidates N] [--max-tokens N]
                [--stop S]... [--safety CATEGORY=THRESHOLD,...] PROMPT|-
  chat -m MODEL [--context TEXT] [--temperature T]
                                            interactive chat; lines starting with / are commands:
                                            /undo /tokens /history /reset /quit
  count-tokens -m MODEL [--message] TEXT|-  count tokens (countMessageTokens with --message
                                            or for chat models, else countTextTokens)
  embed [-m MODEL] TEXT...|-                embed texts (- reads one text per line from stdin);
                                            prints one JSON vector per line
  tuned list [--page-size N] [--filter F]
  tuned get NAME
  tuned create --data FILE [--base MODEL] [--id ID] [--display-name NAME] [--description D]
               [--epochs N] [--batch-size N] [--learning-rate X] [--input COL] [--output COL]
               [--wait] [--interval S]      FILE is .csv or .jsonl
  tuned update NAME [--display-name NAME] [--description D] [--temperature T] [--top-p P] [--top-k K]
  tuned delete NAME
  permissions list PARENT                   PARENT is tunedModels/ID or corpora/ID
  permissions grant PARENT [--email E] [--role READER|WRITER|OWNER] [--type USER|GROUP|EVERYONE]
  permissions revoke PERMISSION_NAME
  permissions transfer TUNED_MODEL --email E  make E the owner (you become a writer)
  operation get NAME
  operation wait NAME [--interval S] [--timeout S]

Global flags:
  --base-url URL    server (default: env GEMINI_BASE_URL, else Google's)
  --api-key KEY     API key (default: env GEMINI_API_KEY, then GOOGLE_API_KEY)
  --json            print the API's replies as JSON (for scripts)
  --timeout S       request timeout in seconds
  --help, --version

Exit codes:
  0 success          1 API error             2 usage error          3 network error
  4 not found        5 permission denied or bad key                6 reply blocked by safety filters
  7 tuning failed    8 bad input file
]]

--- Exit codes.
M.EXIT = {
  OK = 0, API = 1, USAGE = 2, NETWORK = 3, NOT_FOUND = 4, DENIED = 5, BLOCKED = 6, FAILED = 7, INPUT = 8,
}
local EXIT = M.EXIT

-- -----------------------------------------------------------------------------------------------
-- JSON output (sorted keys, two-space indent)

local function is_array(t)
  local mt = getmetatable(t)
  if mt and mt.__name == "gemini.json.array" then return true end
  if next(t) == nil then return false end
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  for i = 1, n do if t[i] == nil then return false end end
  return true
end

local function quote(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    local map = { ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }
    return map[c] or ("\\u%04x"):format(c:byte())
  end) .. '"'
end

local function encode(v, indent, out)
  local t = type(v)
  if t == "table" then
    local mt = getmetatable(v)
    if mt and mt.__name == "gemini.json.null" then out[#out + 1] = "null"; return end
    local inner = indent .. "  "
    if is_array(v) and next(v) == nil then
      out[#out + 1] = "[]"
    elseif is_array(v) then
      out[#out + 1] = "["
      for i, x in ipairs(v) do
        out[#out + 1] = (i > 1 and ",\n" or "\n") .. inner
        encode(x, inner, out)
      end
      out[#out + 1] = "\n" .. indent .. "]"
    elseif next(v) == nil then
      out[#out + 1] = (mt and mt.__name == "gemini.json.array") and "[]" or "{}"
    else
      local keys = {}
      for k in pairs(v) do keys[#keys + 1] = tostring(k) end
      table.sort(keys)
      out[#out + 1] = "{"
      for i, k in ipairs(keys) do
        local x = v[k]
        if x == nil then x = v[tonumber(k)] end
        out[#out + 1] = (i > 1 and ",\n" or "\n") .. inner .. quote(k) .. ": "
        encode(x, inner, out)
      end
      out[#out + 1] = "\n" .. indent .. "}"
    end
  elseif t == "string" then
    out[#out + 1] = quote(v)
  elseif t == "number" then
    if v ~= v or v == math.huge or v == -math.huge then out[#out + 1] = "null"
    elseif math.type and math.type(v) == "integer" then out[#out + 1] = ("%d"):format(v)
    elseif v == math.floor(v) and math.abs(v) < 1e15 then out[#out + 1] = ("%d"):format(v)
    else
      local text
      for digits = 15, 17 do
        text = ("%." .. digits .. "g"):format(v)
        if tonumber(text) == v then break end
      end
      out[#out + 1] = text
    end
  elseif t == "boolean" then
    out[#out + 1] = tostring(v)
  else
    out[#out + 1] = "null"
  end
end

local ARRAY_MT = { __name = "gemini.json.array" }

--- A table that `to_json` writes as a JSON array even when it is empty.
-- @tparam[opt] table t
-- @treturn table t
function M.array(t)
  return setmetatable(t or {}, ARRAY_MT)
end

--- Encode a value as indented JSON with sorted keys.
-- @param v
-- @treturn string
function M.to_json(v)
  local out = {}
  encode(v, "", out)
  return table.concat(out)
end

local function compact_vector(v)
  local parts = {}
  for i, x in ipairs(v) do parts[i] = ("%.9g"):format(x) end
  return "[" .. table.concat(parts, ",") .. "]"
end

-- -----------------------------------------------------------------------------------------------
-- Argument parsing

-- spec: { long = "value" | "flag" | "list" }, aliases: { m = "model" }
local GLOBAL = { ["base-url"] = "value", ["api-key"] = "value", json = "flag", timeout = "value",
                 help = "flag", version = "flag" }

local function usage_error(msg)
  error({ usage = msg }, 0)
end

local function parse(args, spec, aliases)
  local opts, pos = {}, {}
  local i = 1
  while i <= #args do
    local a = args[i]
    if a == "--" then
      for j = i + 1, #args do pos[#pos + 1] = args[j] end
      break
    end
    local name, inline
    if a:sub(1, 2) == "--" then
      name, inline = a:match("^%-%-([^=]+)=(.*)$")
      name = name or a:sub(3)
    elseif a:sub(1, 1) == "-" and #a > 1 then
      name = a:sub(2)
      name = aliases[name] or name
    end
    if name then
      local kind = spec[name] or GLOBAL[name]
      if not kind then usage_error("unknown flag " .. a) end
      if kind == "flag" then
        if inline then usage_error("flag --" .. name .. " takes no value") end
        opts[name] = true
      else
        local v = inline
        if v == nil then
          i = i + 1
          v = args[i]
          if v == nil then usage_error("flag --" .. name .. " needs a value") end
        end
        if kind == "list" then
          opts[name] = opts[name] or {}
          table.insert(opts[name], v)
        else
          opts[name] = v
        end
      end
    else
      pos[#pos + 1] = a
    end
    i = i + 1
  end
  return opts, pos
end

local function number_opt(opts, name, integer)
  local v = opts[name]
  if v == nil then return nil end
  local n = tonumber(v)
  if not n or (integer and n ~= math.floor(n)) then
    usage_error("--" .. name .. " needs " .. (integer and "an integer" or "a number") .. ", got " .. tostring(v))
  end
  if integer then n = math.floor(n) end
  return n
end

local function full_name(name, collection)
  if name:find("/", 1, true) then return name end
  return collection .. "/" .. name
end

-- -----------------------------------------------------------------------------------------------
-- Errors and exit codes

local function one_line(s)
  return (tostring(s):gsub("%s*[\r\n]+%s*", " "))
end

local function exit_for(err)
  if type(err) ~= "table" then return EXIT.API end
  if err.code == nil and (err.status == "UNAVAILABLE" or err.status == "DEADLINE_EXCEEDED" or err.kind) then
    return EXIT.NETWORK
  end
  if err.code == 404 or err.status == "NOT_FOUND" then return EXIT.NOT_FOUND end
  if err.code == 401 or err.code == 403 or err.status == "PERMISSION_DENIED" or err.status == "UNAUTHENTICATED"
    or err.reason == "API_KEY_INVALID" then
    return EXIT.DENIED
  end
  return EXIT.API
end

-- Raised inside commands to stop with a code and a message.
local function fail(code, msg)
  error({ exit = code, message = msg }, 0)
end

local function check(res, err)
  if res == nil then fail(exit_for(err), tostring(err)) end
  return res
end

-- -----------------------------------------------------------------------------------------------
-- Commands

local Cmd = {}

local function read_all(env, what)
  local s = env.stdin:read("*a")
  if s == nil then fail(EXIT.INPUT, "cannot read " .. what .. " from stdin") end
  return (s:gsub("\r?\n$", ""))
end

local function text_arg(env, pos, first, what)
  if pos[first] == "-" then return read_all(env, what) end
  if pos[first] == nil then usage_error("missing " .. what) end
  return table.concat(pos, " ", first)
end

local function need_model(opts)
  if not opts.model then usage_error("missing -m MODEL") end
  return full_name(opts.model, "models")
end

function Cmd.models(ctx, args)
  local opts = parse(args, { ["page-size"] = "value" }, {})
  local list = M.array()
  for m in ctx.client:models({ pageSize = number_opt(opts, "page-size", true) }) do list[#list + 1] = m end
  if ctx.json then return ctx.print(M.to_json(list)) end
  for _, m in ipairs(list) do
    ctx.print(("%-36s %-24s %s"):format(m.name or "?", m.displayName or "",
      table.concat(m.supportedGenerationMethods or {}, ",")))
  end
end

local MODEL_FIELDS = { "name", "baseModelId", "version", "displayName", "description", "inputTokenLimit",
  "outputTokenLimit", "supportedGenerationMethods", "temperature", "topP", "topK" }

local TUNED_FIELDS = { "name", "displayName", "description", "baseModel", "state", "createTime", "updateTime",
  "temperature", "topP", "topK" }

local function show(ctx, obj, fields)
  if ctx.json then return ctx.print(M.to_json(obj)) end
  for _, f in ipairs(fields) do
    local v = obj[f]
    if v ~= nil then
      if type(v) == "table" then v = table.concat(v, ",") end
      ctx.print(("%-28s %s"):format(f, tostring(v)))
    end
  end
end

function Cmd.model(ctx, args)
  local _, pos = parse(args, {}, {})
  if not pos[1] then usage_error("missing model NAME") end
  local name = pos[1]
  if name:match("^tunedModels/") then
    return show(ctx, check(ctx.client:get_tuned_model(name)), TUNED_FIELDS)
  end
  show(ctx, check(ctx.client:get_model(full_name(name, "models"))), MODEL_FIELDS)
end

local function parse_safety(s)
  local t = {}
  for item in s:gmatch("[^,]+") do
    local k, v = item:match("^%s*([^=]-)%s*=%s*(.-)%s*$")
    if not k then usage_error("--safety needs CATEGORY=THRESHOLD,..., got " .. item) end
    t[k] = v
  end
  return t
end

local function blocked_exit(ctx, res, why)
  if ctx.json then ctx.print(M.to_json(res)) end
  fail(EXIT.BLOCKED, why)
end

Cmd["generate-text"] = function(ctx, args)
  local opts, pos = parse(args, { model = "value", temperature = "value", candidates = "value",
    ["max-tokens"] = "value", stop = "list", safety = "value", ["top-p"] = "value", ["top-k"] = "value" },
    { m = "model", t = "temperature", n = "candidates" })
  local model = need_model(opts)
  local prompt = text_arg(ctx.env, pos, 1, "PROMPT")
  local body = { prompt = { text = prompt }, temperature = number_opt(opts, "temperature"),
    candidateCount = number_opt(opts, "candidates", true), maxOutputTokens = number_opt(opts, "max-tokens", true),
    topP = number_opt(opts, "top-p"), topK = number_opt(opts, "top-k", true), stopSequences = opts.stop }
  if opts.safety then
    local ok, expanded = pcall(require("gemini.safety").expand, { safety = parse_safety(opts.safety) })
    if not ok then usage_error((tostring(expanded):gsub("^.-gemini%.safety: ", ""))) end
    body.safetySettings = expanded.safetySettings
  end
  local res = check(ctx.client:generate_text(model, body))
  local texts, why = require("gemini.text").all(res)
  if not texts then return blocked_exit(ctx, res, why) end
  if ctx.json then return ctx.print(M.to_json(res)) end
  for i, t in ipairs(texts) do
    if #texts > 1 then ctx.print(("--- candidate %d"):format(i)) end
    ctx.print(t)
  end
end

Cmd["count-tokens"] = function(ctx, args)
  local opts, pos = parse(args, { model = "value", message = "flag" }, { m = "model" })
  local model = need_model(opts)
  local text = text_arg(ctx.env, pos, 1, "TEXT")
  local res
  if opts.message or model:match("^models/chat%-") then
    res = check(ctx.client:count_message_tokens(model, { prompt = { messages = { { content = text } } } }))
  else
    res = check(ctx.client:count_text_tokens(model, { prompt = { text = text } }))
  end
  if ctx.json then return ctx.print(M.to_json(res)) end
  ctx.print(tostring(res.tokenCount or 0))
end

function Cmd.embed(ctx, args)
  local opts, pos = parse(args, { model = "value" }, { m = "model" })
  local model = full_name(opts.model or "embedding-gecko-001", "models")
  local texts = {}
  if pos[1] == "-" then
    for line in (read_all(ctx.env, "texts") .. "\n"):gmatch("([^\n]*)\n") do
      line = line:gsub("\r$", "")
      if line ~= "" then texts[#texts + 1] = line end
    end
  else
    for _, t in ipairs(pos) do texts[#texts + 1] = t end
  end
  if #texts == 0 then usage_error("missing TEXT") end
  local vectors, replies = {}, {}
  if #texts == 1 then
    local res = check(ctx.client:embed_text(model, { text = texts[1] }))
    replies[1] = res
    vectors[1] = res.embedding and res.embedding.value or {}
  else
    for first = 1, #texts, 100 do
      local chunk = {}
      for i = first, math.min(first + 99, #texts) do chunk[#chunk + 1] = texts[i] end
      local res = check(ctx.client:batch_embed_text(model, { texts = chunk }))
      replies[#replies + 1] = res
      for _, e in ipairs(res.embeddings or {}) do vectors[#vectors + 1] = e.value or {} end
    end
  end
  if ctx.json then
    if #replies == 1 then return ctx.print(M.to_json(replies[1])) end
    local all = {}
    for _, r in ipairs(replies) do for _, e in ipairs(r.embeddings or {}) do all[#all + 1] = e end end
    return ctx.print(M.to_json({ embeddings = all }))
  end
  for _, v in ipairs(vectors) do ctx.print(compact_vector(v)) end
end

function Cmd.chat(ctx, args)
  local opts = parse(args, { model = "value", context = "value", temperature = "value" }, { m = "model" })
  local model = need_model(opts)
  local env = ctx.env
  local session = require("gemini.chat").new(ctx.client:model(model), {
    context = opts.context, temperature = number_opt(opts, "temperature") })
  local interactive = env.stdin_tty
  if interactive then
    env.stderr:write("Chatting with " .. model .. ". /undo /tokens /history /reset /quit; end with Ctrl-D.\n")
  end
  while true do
    if interactive then env.stdout:write("you> "); env.stdout:flush() end
    local line = env.stdin:read("*l")
    if line == nil then break end
    line = line:gsub("\r$", "")
    if line == "/quit" or line == "/exit" then break
    elseif line == "/undo" then
      local dropped = session:undo()
      ctx.print(dropped and ("(forgot: " .. dropped .. ")") or "(nothing to undo)")
    elseif line == "/tokens" then
      ctx.print(tostring(check(session:count_tokens())))
    elseif line == "/history" then
      for _, m in ipairs(session.messages) do ctx.print((m.author or "?") .. ": " .. (m.content or "")) end
    elseif line == "/reset" then
      session:reset()
      ctx.print("(history cleared)")
    elseif line:find("%S") then
      local reply, err = session:send(line)
      if reply then
        if ctx.json then ctx.print(M.to_json(session.last_response))
        else ctx.print((interactive and "model> " or "") .. reply) end
      elseif type(err) == "table" and err.status == "BLOCKED" then
        -- a blocked reply is reported and the conversation goes on (it is not in the history)
        ctx.env.stderr:write("gemini: " .. one_line(tostring(err)) .. "\n")
      else
        fail(exit_for(err), tostring(err))
      end
    end
  end
  return EXIT.OK
end

local function load_data(opts)
  local path = opts.data
  if not path then usage_error("missing --data FILE") end
  local ds, err
  local dataset = require("gemini.dataset")
  if path:lower():match("%.jsonl$") or path:lower():match("%.ndjson$") then
    ds, err = dataset.from_jsonl(path, { input = opts.input, output = opts.output })
  else
    local function col(v) return v and (tonumber(v) or v) end
    ds, err = dataset.from_csv(path, { input = col(opts.input), output = col(opts.output) })
  end
  if not ds then fail(EXIT.INPUT, err) end
  return ds
end

local function wait_op(ctx, op, opts)
  local update, finish = require("gemini.progress").bar{
    stream = ctx.env.stderr, tty = ctx.env.stderr_tty, label = ctx.env.stderr_tty and nil or "tuning" }
  local model, err = op:wait{ interval = number_opt(opts, "interval"), timeout = number_opt(opts, "timeout"),
    on_progress = update }
  finish()
  if not model then
    local msg = tostring(err):gsub("^gemini: ", "")
    if op.error then fail(EXIT.FAILED, "tuning failed: " .. msg) end
    fail(exit_for(err), msg)
  end
  return model
end

local Tuned = {}

function Tuned.list(ctx, args)
  local opts = parse(args, { ["page-size"] = "value", filter = "value" }, {})
  local list = M.array()
  for m in ctx.client:tuned_models({ pageSize = number_opt(opts, "page-size", true), filter = opts.filter }) do
    list[#list + 1] = m
  end
  if ctx.json then return ctx.print(M.to_json(list)) end
  for _, m in ipairs(list) do
    ctx.print(("%-44s %-10s %s"):format(m.name or "?", m.state or "", m.displayName or ""))
  end
end

function Tuned.get(ctx, args)
  local _, pos = parse(args, {}, {})
  if not pos[1] then usage_error("missing NAME") end
  show(ctx, check(ctx.client:get_tuned_model(full_name(pos[1], "tunedModels"))), TUNED_FIELDS)
end

function Tuned.create(ctx, args)
  local opts = parse(args, { data = "value", base = "value", id = "value", ["display-name"] = "value",
    description = "value", epochs = "value", ["batch-size"] = "value", ["learning-rate"] = "value",
    input = "value", output = "value", wait = "flag", interval = "value" }, { d = "data" })
  local ds = load_data(opts)
  local hp = { epochCount = number_opt(opts, "epochs", true), batchSize = number_opt(opts, "batch-size", true),
    learningRate = number_opt(opts, "learning-rate") }
  local body = {
    baseModel = full_name(opts.base or "text-bison-001", "models"),
    displayName = opts["display-name"], description = opts.description,
    tuningTask = { trainingData = ds, hyperparameters = next(hp) and hp or nil },
  }
  local op = check(ctx.client:create_tuned_model(body, opts.id and { tunedModelId = opts.id } or nil))
  if not opts.wait then
    if ctx.json then return ctx.print(M.to_json({ name = op.name, metadata = op.metadata })) end
    ctx.print(op.name)
    return
  end
  local model = wait_op(ctx, op, opts)
  show(ctx, model, TUNED_FIELDS)
end

function Tuned.update(ctx, args)
  local opts, pos = parse(args, { ["display-name"] = "value", description = "value", temperature = "value",
    ["top-p"] = "value", ["top-k"] = "value" }, {})
  if not pos[1] then usage_error("missing NAME") end
  local body, mask = {}, {}
  local function set(field, v)
    if v ~= nil then body[field] = v; mask[#mask + 1] = field end
  end
  set("displayName", opts["display-name"])
  set("description", opts.description)
  set("temperature", number_opt(opts, "temperature"))
  set("topP", number_opt(opts, "top-p"))
  set("topK", number_opt(opts, "top-k", true))
  if #mask == 0 then usage_error("nothing to update (give --display-name, --description, --temperature, ...)") end
  local res = check(ctx.client:update_tuned_model(full_name(pos[1], "tunedModels"), body,
    { updateMask = table.concat(mask, ",") }))
  show(ctx, res, TUNED_FIELDS)
end

Tuned.delete = function(ctx, args)
  local _, pos = parse(args, {}, {})
  if not pos[1] then usage_error("missing NAME") end
  local name = full_name(pos[1], "tunedModels")
  check(ctx.client:delete_tuned_model(name))
  if ctx.json then return ctx.print("{}") end
  ctx.print("deleted " .. name)
end

function Cmd.tuned(ctx, args)
  local sub = table.remove(args, 1)
  local f = sub and Tuned[sub]
  if not f then usage_error("tuned needs one of: list, get, create, update, delete") end
  return f(ctx, args)
end

local Perm = {}

local function parent_name(s)
  if not s then usage_error("missing PARENT (tunedModels/ID or corpora/ID)") end
  if not s:find("/", 1, true) then return "tunedModels/" .. s end
  return s
end

local PERM_FIELDS = { "name", "granteeType", "emailAddress", "role" }

function Perm.list(ctx, args)
  local _, pos = parse(args, {}, {})
  local parent = parent_name(pos[1])
  local list = M.array()
  for p in ctx.client:permissions(parent) do list[#list + 1] = p end
  if ctx.json then return ctx.print(M.to_json(list)) end
  for _, p in ipairs(list) do
    ctx.print(("%-60s %-8s %-8s %s"):format(p.name or "?", p.role or "", p.granteeType or "", p.emailAddress or ""))
  end
end

function Perm.grant(ctx, args)
  local opts, pos = parse(args, { email = "value", role = "value", type = "value" }, {})
  local parent = parent_name(pos[1])
  local gtype = (opts.type or (opts.email and "USER" or "EVERYONE")):upper()
  local body = { granteeType = gtype, emailAddress = opts.email, role = (opts.role or "READER"):upper() }
  show(ctx, check(ctx.client:create_permission(parent, body)), PERM_FIELDS)
end

function Perm.revoke(ctx, args)
  local _, pos = parse(args, {}, {})
  if not pos[1] then usage_error("missing PERMISSION_NAME (tunedModels/ID/permissions/PID)") end
  check(ctx.client:delete_permission(pos[1]))
  if ctx.json then return ctx.print("{}") end
  ctx.print("revoked " .. pos[1])
end

function Perm.transfer(ctx, args)
  local opts, pos = parse(args, { email = "value" }, {})
  if not pos[1] then usage_error("missing TUNED_MODEL") end
  if not opts.email then usage_error("missing --email") end
  local name = full_name(pos[1], "tunedModels")
  check(ctx.client:transfer_ownership(name, { emailAddress = opts.email }))
  if ctx.json then return ctx.print("{}") end
  ctx.print("transferred " .. name .. " to " .. opts.email)
end

function Cmd.permissions(ctx, args)
  local sub = table.remove(args, 1)
  local f = sub and Perm[sub]
  if not f then usage_error("permissions needs one of: list, grant, revoke, transfer") end
  return f(ctx, args)
end
Cmd.transfer = Perm.transfer

function Cmd.operation(ctx, args)
  local sub = table.remove(args, 1)
  local opts, pos = parse(args, { interval = "value", timeout = "value" }, {})
  if sub ~= "get" and sub ~= "wait" then usage_error("operation needs one of: get, wait") end
  if not pos[1] then usage_error("missing operation NAME") end
  local op = check(ctx.client:get_operation(pos[1]))
  if sub == "get" then
    local view = { name = op.name, metadata = op.metadata, done = op:done() or nil, error = op.error }
    if op:done() and not op.error then view.response = op:result() end
    if ctx.json then return ctx.print(M.to_json(view)) end
    local r = require("gemini.progress").read(op.metadata)
    ctx.print(("%s  %s  %s"):format(op.name, op:done() and (op.error and "FAILED" or "DONE") or "RUNNING",
      r.percent and ("%.1f%%"):format(r.percent) or ""))
    if op.error then ctx.print("error: " .. one_line(op.error.message or tostring(op.error))) end
    return
  end
  show(ctx, wait_op(ctx, op, opts), TUNED_FIELDS)
end

-- -----------------------------------------------------------------------------------------------
-- Entry point

local function is_tty(fd)
  if package.config:sub(1, 1) ~= "/" then return false end
  local a, _, c = os.execute("test -t " .. fd)
  if type(a) == "number" then return a == 0 end
  return a == true and (c or 0) == 0
end

--- Run the command line.
-- @tparam {string,...} argv the arguments (without the program name)
-- @tparam[opt] table env `stdout`, `stderr`, `stdin` (file-like), `getenv` (function),
--   `stdin_tty`, `stderr_tty` (booleans), `gemini` (the module, for tests)
-- @treturn integer the exit code
function M.main(argv, env)
  env = env or {}
  env.stdout = env.stdout or io.stdout
  env.stderr = env.stderr or io.stderr
  env.stdin = env.stdin or io.stdin
  env.getenv = env.getenv or os.getenv
  if env.stdin_tty == nil then env.stdin_tty = is_tty(0) end
  if env.stderr_tty == nil then env.stderr_tty = is_tty(2) end
  local args = {}
  for i = 1, #(argv or {}) do args[i] = argv[i] end

  local function report(code, msg)
    env.stderr:write("gemini: " .. one_line(msg):gsub("^gemini: ", "") .. "\n")
    return code
  end

  -- global flags come before the command (they are also accepted after it)
  local cmd_index
  local i = 1
  while i <= #args do
    local a = args[i]
    if a:sub(1, 1) ~= "-" or a == "-" then cmd_index = i; break end
    local name = a:match("^%-%-([^=]+)") or a:sub(2)
    if GLOBAL[name] == "value" and not a:find("=", 1, true) then i = i + 1 end
    i = i + 1
  end
  local ok, result = pcall(function()
    local head = {}
    for j = 1, (cmd_index or #args + 1) - 1 do head[#head + 1] = args[j] end
    local gopts = parse(head, {}, { h = "help" })
    local rest = {}
    if cmd_index then for j = cmd_index + 1, #args do rest[#rest + 1] = args[j] end end
    -- pick out global flags given after the command
    local tail = {}
    local j = 1
    while j <= #rest do
      local a = rest[j]
      local name, inline = a:match("^%-%-([^=]+)=(.*)$")
      name = name or (a:sub(1, 2) == "--" and a:sub(3))
      if name and GLOBAL[name] == "flag" and not inline then
        gopts[name] = true
      elseif name and GLOBAL[name] == "value" then
        if inline then gopts[name] = inline else j = j + 1; gopts[name] = rest[j] end
        if gopts[name] == nil then usage_error("flag --" .. name .. " needs a value") end
      else
        tail[#tail + 1] = a
      end
      j = j + 1
    end
    if gopts.version then
      local gemini = env.gemini or require("gemini")
      env.stdout:write("gemini (lua-gemini) " .. tostring(gemini.VERSION) .. "\n")
      return EXIT.OK
    end
    local cmd = cmd_index and args[cmd_index]
    if gopts.help or cmd == "help" or not cmd then
      if not cmd and not gopts.help then usage_error("missing COMMAND (see gemini --help)") end
      env.stdout:write(M.USAGE)
      return EXIT.OK
    end
    local f = Cmd[cmd]
    if not f then usage_error("unknown command '" .. cmd .. "' (see gemini --help)") end
    local timeout = number_opt(gopts, "timeout")
    local gemini = env.gemini or require("gemini")
    local client = gemini.new{
      base_url = gopts["base-url"] or env.getenv("GEMINI_BASE_URL"),
      api_key = gopts["api-key"] or env.getenv("GEMINI_API_KEY") or env.getenv("GOOGLE_API_KEY"),
      timeout = timeout,
    }
    local ctx = {
      client = client, json = gopts.json, env = env,
      print = function(s) env.stdout:write(s, "\n") end,
    }
    local code = f(ctx, tail)
    if client.close then pcall(client.close, client) end
    return code or EXIT.OK
  end)
  if ok then return result end
  if type(result) == "table" and result.usage then
    return report(EXIT.USAGE, result.usage)
  elseif type(result) == "table" and result.exit then
    return report(result.exit, result.message)
  elseif type(result) == "table" and getmetatable(result) and (result.status or result.code) then
    -- an error object raised by an iterator
    return report(exit_for(result), tostring(result))
  end
  local msg = tostring(result)
  if msg:find("bad argument", 1, true) or msg:find("invalid name", 1, true) then
    return report(EXIT.USAGE, (msg:gsub("^[^:]*:%d+: ", "")))
  end
  return report(EXIT.API, msg)
end

return M
