--- The emulator's API semantics: a synchronous request -> response function over in-memory
-- state, faithful to Google's v1beta3 front end and backend.
--
--     local app = require("gemini.emulator.app").new{ api_keys = { k1 = "alice@example.com" },
--                                                      tuning_step_ms = 100, seed = 0, now = clock }
--     local resp = app:handle{ method = "POST", path = "/v1beta3/models/text-bison-001:generateText",
--                              query = "key=k1", headers = {}, body = "{...}" }
--
-- @module gemini.emulator.app

local json = require "gemini.emulator.json"
local status = require "gemini.emulator.status"
local proto = require "gemini.emulator.proto"
local models = require "gemini.emulator.models"
local tokenizer = require "gemini.emulator.tokenizer"
local textgen = require "gemini.emulator.textgen"
local embed = require "gemini.emulator.embed"
local tuning = require "gemini.emulator.tuning"
local acl = require "gemini.emulator.acl"
local pager = require "gemini.emulator.pager"
local rand = require "gemini.emulator.rand"

local App = {}
App.__index = App

--- The identity of any key when the emulator runs without --api-key.
App.DEFAULT_IDENTITY = "user@example.com"

local NO_CREDENTIALS = "Method doesn't allow unregistered callers (callers without established identity). " ..
  "Please use API Key or other form of API consumer identity to call this API."
local BAD_KEY = "API key not valid. Please pass a valid API key."
local BAD_TOKEN = "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie " ..
  "or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project."

local SYSTEM_PARAMS = {
  key = true, alt = true, ["$alt"] = true, prettyPrint = true, ["$prettyPrint"] = true, fields = true,
  ["$fields"] = true, callback = true, ["$callback"] = true, quotaUser = true, ["$quotaUser"] = true,
  ["$.xgafv"] = true, access_token = true, oauth_token = true, upload_protocol = true, uploadType = true,
  ["$userProject"] = true, userProject = true,
}

local function default_now()
  local ok, socket = pcall(require, "socket")
  if ok and socket.gettime then return socket.gettime() end
  return os.time()
end

-- ------------------------------------------------------------------------------------------
-- errors

local function api_error(canonical, message, details, http)
  error({ api_error = true, canonical = canonical, message = message, details = details, http = http }, 0)
end

local function bad_request(violations)
  -- violations: { {field=, description=}, ... } rendered "* Type.field: text" joined by \n
  local msgs = {}
  for i, v in ipairs(violations) do msgs[i] = v.description end
  api_error("INVALID_ARGUMENT", table.concat(msgs, "\n"), { status.bad_request(violations) })
end

-- semantic violation collector for a request type
local function checker(rtype)
  local c = { list = {} }
  function c.add(field, text)
    c.list[#c.list + 1] = { field = field, description = "* " .. rtype .. "." .. field .. ": " .. text }
  end
  function c.done() if #c.list > 0 then bad_request(c.list) end end
  return c
end

local function html_404(path)
  local body = "<!DOCTYPE html>\n<html lang=en>\n  <meta charset=utf-8>\n" ..
    "  <meta name=viewport content=\"initial-scale=1, minimum-scale=1, width=device-width\">\n" ..
    "  <title>Error 404 (Not Found)!!1</title>\n" ..
    "  <a href=//www.google.com/><span id=logo aria-label=Google></span></a>\n" ..
    "  <p><b>404.</b> <ins>That\226\128\153s an error.</ins>\n" ..
    "  <p>The requested URL <code>" .. path:gsub("[<>&]", "") .. "</code> was not found on this server.  " ..
    "<ins>That\226\128\153s all we know.</ins>\n"
  return { status = 404, headers = { ["Content-Type"] = "text/html; charset=UTF-8",
                                     ["Referrer-Policy"] = "no-referrer" }, body = body }
end

-- ------------------------------------------------------------------------------------------
-- URL helpers

local function url_decode(s)
  s = s:gsub("+", " ")
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

local function path_decode(s)
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

local function parse_query(q)
  local out = {}
  if not q or q == "" then return out end
  for part in q:gmatch("[^&]+") do
    local k, v = part:match("^([^=]*)=(.*)$")
    if not k then k, v = part, "" end
    out[#out + 1] = { url_decode(k), url_decode(v) }
  end
  return out
end

-- ------------------------------------------------------------------------------------------
-- routes

-- { verb, pattern, method, versions?, query = { [param] = {message field spec} } }
local ROUTES = {
  { "GET", "^/v1beta3/models$", "listModels" },
  { "GET", "^/v1beta3/models/([^/:]+)$", "getModel" },
  { "POST", "^/v1beta3/models/([^/:]+):generateText$", "generateText" },
  { "POST", "^/v1beta3/models/([^/:]+):generateMessage$", "generateMessage" },
  { "POST", "^/v1beta3/models/([^/:]+):countMessageTokens$", "countMessageTokens" },
  { "POST", "^/v1beta3/models/([^/:]+):countTextTokens$", "countTextTokens" },
  { "POST", "^/v1beta3/models/([^/:]+):embedText$", "embedText" },
  { "POST", "^/v1beta3/models/([^/:]+):batchEmbedText$", "batchEmbedText" },
  { "GET", "^/v1beta3/tunedModels$", "listTunedModels" },
  { "POST", "^/v1beta3/tunedModels$", "createTunedModel" },
  { "GET", "^/v1beta3/tunedModels/([^/:]+)$", "getTunedModel" },
  { "PATCH", "^/v1beta3/tunedModels/([^/:]+)$", "updateTunedModel" },
  { "DELETE", "^/v1beta3/tunedModels/([^/:]+)$", "deleteTunedModel" },
  { "POST", "^/v1beta3/tunedModels/([^/:]+):generateText$", "generateText", tuned = true },
  { "POST", "^/v1beta3/tunedModels/([^/:]+):transferOwnership$", "transferOwnership" },
  { "POST", "^/v1beta3/(tunedModels)/([^/:]+)/permissions$", "createPermission" },
  { "GET", "^/v1beta3/(tunedModels)/([^/:]+)/permissions$", "listPermissions" },
  { "GET", "^/v1beta3/(tunedModels)/([^/:]+)/permissions/([^/:]+)$", "getPermission" },
  { "PATCH", "^/v1beta3/(tunedModels)/([^/:]+)/permissions/([^/:]+)$", "updatePermission" },
  { "DELETE", "^/v1beta3/(tunedModels)/([^/:]+)/permissions/([^/:]+)$", "deletePermission" },
  { "POST", "^/v1beta3/(corpora)/([^/:]+)/permissions$", "createPermission" },
  { "GET", "^/v1beta3/(corpora)/([^/:]+)/permissions$", "listPermissions" },
  { "GET", "^/v1beta3/(corpora)/([^/:]+)/permissions/([^/:]+)$", "getPermission" },
  { "PATCH", "^/v1beta3/(corpora)/([^/:]+)/permissions/([^/:]+)$", "updatePermission" },
  { "DELETE", "^/v1beta3/(corpora)/([^/:]+)/permissions/([^/:]+)$", "deletePermission" },
  { "GET", "^/v1beta3/tunedModels/([^/:]+)/operations/([^/:]+)$", "getOperation" },
  { "GET", "^/v1/tunedModels/([^/:]+)/operations/([^/:]+)$", "getOperation" },
  { "GET", "^/v1beta3/tunedModels/([^/:]+)/operations$", "listOperations" },
  { "GET", "^/v1/tunedModels/([^/:]+)/operations$", "listOperations" },
  { "POST", "^/v1beta3/tunedModels/([^/:]+)/operations/([^/:]+):cancel$", "cancelOperation" },
  { "POST", "^/v1/tunedModels/([^/:]+)/operations/([^/:]+):cancel$", "cancelOperation" },
}

-- query parameters each method binds: param name (camel and snake) -> { field name, type }
local PAGE = { pageSize = { "page_size", "int32" }, page_size = { "page_size", "int32" },
               pageToken = { "page_token", "string" }, page_token = { "page_token", "string" } }
local function with(t, extra)
  local o = {}
  for k, v in pairs(t) do o[k] = v end
  for k, v in pairs(extra or {}) do o[k] = v end
  return o
end
local QUERY = {
  listModels = PAGE,
  listTunedModels = with(PAGE, { filter = { "filter", "string" } }),
  listPermissions = PAGE,
  listOperations = with(PAGE, { filter = { "filter", "string" } }),
  createTunedModel = { tunedModelId = { "tuned_model_id", "string" }, tuned_model_id = { "tuned_model_id", "string" } },
  updateTunedModel = { updateMask = { "update_mask", "fieldmask" }, update_mask = { "update_mask", "fieldmask" } },
  updatePermission = { updateMask = { "update_mask", "fieldmask" }, update_mask = { "update_mask", "fieldmask" } },
}

-- request body: message parsed from the body (nil = no body)
local BODY = {
  generateText = "GenerateTextRequest", generateMessage = "GenerateMessageRequest",
  countMessageTokens = "CountMessageTokensRequest", countTextTokens = "CountTextTokensRequest",
  embedText = "EmbedTextRequest", batchEmbedText = "BatchEmbedTextRequest",
  createTunedModel = "TunedModel", updateTunedModel = "TunedModel",
  createPermission = "Permission", updatePermission = "Permission",
  transferOwnership = "TransferOwnershipRequest", cancelOperation = "CancelOperationRequest",
}

local function match_route(method, path)
  for _, r in ipairs(ROUTES) do
    if r[1] == method then
      local caps = { path:match(r[2]) }
      if caps[1] ~= nil or path:match(r[2]) then return r, caps end
    end
  end
end

--- A new app.
-- @param opts { api_keys = { key = email } or nil, tuning_step_ms = 100, seed = 0, now = function }
function App.new(opts)
  opts = opts or {}
  local self = setmetatable({}, App)
  self.api_keys = opts.api_keys
  if self.api_keys and next(self.api_keys) == nil then self.api_keys = nil end
  self.tuning_step_ms = opts.tuning_step_ms or 100
  self.seed = opts.seed or 0
  self.now = opts.now or default_now
  self:reset()
  return self
end

--- Clear all state (tuned models, operations, permissions, corpora).
function App:reset()
  self.tuned = {}
  self.tuned_order = {}
  self.corpora = {}
  self.rng = rand.new(1000003 + (tonumber(self.seed) or 0) * 7919)
end

--- The REST method name for a request line, or nil when no route matches. Call it as `app:route(method, path)`.
-- @param _ the app (unused)
-- @param method HTTP verb
-- @param path URL path (a query string is ignored)
function App.route(_, method, path)
  path = (path or ""):gsub("%?.*$", "")
  local r = match_route(method, path_decode(path))
  return r and r[3] or nil
end

-- ------------------------------------------------------------------------------------------
-- authentication

local function identity(self, headers, q)
  local key = headers["x-goog-api-key"]
  if key == "" then key = nil end
  if not key then for _, kv in ipairs(q) do if kv[1] == "key" and kv[2] ~= "" then key = kv[2] end end end
  local token
  local auth = headers["authorization"]
  if auth then token = auth:match("^[Bb]earer%s+(%S+)") end
  if not token then
    for _, kv in ipairs(q) do
      if (kv[1] == "access_token" or kv[1] == "oauth_token") and kv[2] ~= "" then token = kv[2] end
    end
  end
  if key then
    if not self.api_keys then return App.DEFAULT_IDENTITY end
    local email = self.api_keys[key]
    if email then return email end
    api_error("INVALID_ARGUMENT", BAD_KEY, { status.error_info("API_KEY_INVALID", "googleapis.com",
      { service = "generativelanguage.googleapis.com" }) })
  end
  if token then
    if not self.api_keys then return App.DEFAULT_IDENTITY end
    local email = self.api_keys[token]
    if email then return email end
    api_error("UNAUTHENTICATED", BAD_TOKEN, { status.error_info("ACCESS_TOKEN_TYPE_UNSUPPORTED", "googleapis.com",
      { service = "generativelanguage.googleapis.com" }) })
  end
  api_error("PERMISSION_DENIED", NO_CREDENTIALS)
end

-- ------------------------------------------------------------------------------------------
-- request pipeline

local handlers = {}

--- Handle one API request.
-- @param req { method=, path=, query=, headers= (lowercased names), body= }
-- @return { status=, headers=, body= }
function App:handle(req)
  local path, query = req.path or "", req.query
  local qpos = path:find("?", 1, true)
  if qpos then
    if not query or query == "" then query = path:sub(qpos + 1) end
    path = path:sub(1, qpos - 1)
  end
  local dpath = path_decode(path)
  local route, caps = match_route(req.method, dpath)
  if not route then return html_404(path) end
  local q = parse_query(query)
  local ctx = { method = route[3], route = route, caps = caps, pretty = true, opts = {}, params = {},
                path = dpath, now = self.now() }
  for _, kv in ipairs(q) do
    local k, v = kv[1], kv[2]
    if k == "$alt" or k == "alt" then
      if v:find("enum%-encoding=int") then ctx.opts.enum_int = true end
    elseif k == "prettyPrint" or k == "$prettyPrint" then
      if v == "false" or v == "0" then ctx.pretty = false end
    end
  end
  local ok, resp = pcall(function()
    ctx.caller = identity(self, req.headers or {}, q)
    -- query parameters
    local binds = QUERY[ctx.method] or {}
    for _, kv in ipairs(q) do
      local k, v = kv[1], kv[2]
      if not SYSTEM_PARAMS[k] then
        local b = binds[k]
        if not b then
          local d = "Invalid JSON payload received. Unknown name \"" .. k ..
            "\": Cannot bind query parameter. Field '" .. k .. "' could not be found in request message."
          bad_request({ { description = d } })
        end
        ctx.params[b[1]] = proto.parse_query_value({ type = b[2] }, v, b[1])
      end
    end
    -- body
    local bmsg = BODY[ctx.method]
    if bmsg then
      local text = req.body or ""
      local value
      if text:match("^%s*$") then
        value = json.object()
      else
        local err
        value, err = json.decode(text)
        if value == nil then
          local d = "Invalid JSON payload received. " .. err
          bad_request({ { description = d } })
        end
      end
      ctx.body = proto.parse(bmsg, value, "")
    end
    return handlers[ctx.method](self, ctx)
  end)
  if ok then return status.json_response(200, resp, ctx.pretty) end
  local e = resp
  if type(e) == "table" and e.proto_error then
    return status.error_response(e.canonical, e.message, { status.bad_request(e.violations) }, nil, ctx.pretty)
  elseif type(e) == "table" and e.api_error then
    return status.error_response(e.canonical, e.message, e.details, e.http, ctx.pretty)
  end
  io.stderr:write("gemini-emulator: internal error: ", tostring(e), "\n")
  return status.error_response("INTERNAL", "Internal error encountered.", nil, nil, ctx.pretty)
end

-- ------------------------------------------------------------------------------------------
-- helpers for handlers

local function base_model(name, method)
  local m = models.get(name)
  if not m or not m.supports[method] then api_error("NOT_FOUND", models.not_found_message(name, method)) end
  return m
end

local function new_id(self, len) return rand.id(self.rng, len or 12, true) end

-- the tuned model record `name`, or a 404
local function tuned_record(self, name)
  local rec = self.tuned[name]
  if not rec then api_error("NOT_FOUND", "Tuned model " .. name .. " does not exist.") end
  return rec
end

local DENY = { READER = "access", WRITER = "update", OWNER = "manage" }

local function require_role(rec, ctx, need, kind)
  local role = acl.role(rec, ctx.caller)
  if role and acl.RANK[role] >= acl.RANK[need] then return role end
  local what = kind == "corpus" and "corpus" or "tuned model"
  if not role then
    api_error("PERMISSION_DENIED", "You do not have permission to access " .. what .. " " .. rec.name)
  end
  api_error("PERMISSION_DENIED", "You do not have permission to " .. DENY[need] .. " " .. what .. " " .. rec.name ..
    " (your role is " .. role .. "; " .. need .. " is required)")
end

local function list_response(key, items, next_token)
  local o = json.object()
  if #items > 0 then json.set(o, key, json.array(items)) end
  if next_token then json.set(o, "nextPageToken", next_token) end
  return o
end

local function page_or_fail(items, method, ctx, binding)
  local page, tok, field = pager.page(items, method, ctx.params.page_size, ctx.params.page_token, binding)
  if not page then
    bad_request({ { field = field, description = tok } })
  end
  return page, tok
end

local function check_sampling(c, body, max_temp)
  local t = body.temperature
  if t ~= nil and (t ~= t or t < 0 or t > max_temp) then
    c.add("temperature", "temperature must be in the range [0.0, " .. string.format("%.1f", max_temp) .. "]")
  end
  if body.candidateCount ~= nil and (body.candidateCount < 1 or body.candidateCount > 8) then
    c.add("candidate_count", "candidate_count must be in the range [1, 8]")
  end
  if body.topP ~= nil and (body.topP ~= body.topP or body.topP < 0 or body.topP > 1) then
    c.add("top_p", "top_p must be in the range [0.0, 1.0]")
  end
  if body.topK ~= nil and body.topK < 0 then c.add("top_k", "top_k must not be negative") end
end

-- ------------------------------------------------------------------------------------------
-- models

function handlers.listModels(_, ctx)
  local all = {}
  for _, m in ipairs(models.list) do all[#all + 1] = m end
  local page, tok = page_or_fail(all, "listModels", ctx, "")
  local out = {}
  for i, m in ipairs(page) do out[i] = proto.render("Model", models.public(m), ctx.opts) end
  return list_response("models", out, tok)
end

function handlers.getModel(_, ctx)
  local name = "models/" .. ctx.caps[1]
  local m = models.get(name)
  if not m then api_error("NOT_FOUND", models.not_found_message(name, "getModel")) end
  return proto.render("Model", models.public(m), ctx.opts)
end

-- ------------------------------------------------------------------------------------------
-- text

local function tuned_for_generation(self, ctx, name)
  local rec = tuned_record(self, name)
  require_role(rec, ctx, "READER")
  local state = tuning.state(rec, ctx.now)
  if state ~= "ACTIVE" then
    api_error("FAILED_PRECONDITION", "Tuned model " .. name .. " is not ready for use: its state is " .. state ..
      " (it must be ACTIVE).")
  end
  return rec
end

function handlers.generateText(self, ctx)
  local b = ctx.body
  local name, model, rec
  if ctx.route.tuned then
    name = "tunedModels/" .. ctx.caps[1]
    rec = tuned_for_generation(self, ctx, name)
    model = models.get(rec.base)
  else
    name = "models/" .. ctx.caps[1]
    model = base_model(name, "generateText")
  end
  local c = checker("GenerateTextRequest")
  if not b.prompt then c.add("prompt", "prompt is required")
  elseif not b.prompt.text or b.prompt.text == "" then c.add("prompt.text", "text must not be empty") end
  check_sampling(c, b, model.name:find("gemini") and 2 or 1)
  if b.maxOutputTokens ~= nil and (b.maxOutputTokens < 1 or b.maxOutputTokens > model.outputTokenLimit) then
    c.add("max_output_tokens", "max_output_tokens must be in the range [1, " .. model.outputTokenLimit .. "]")
  end
  if b.stopSequences and #b.stopSequences > 5 then c.add("stop_sequences", "at most 5 stop sequences are allowed") end
  local seen = {}
  for i, s in ipairs(b.safetySettings or {}) do
    local p = "safety_settings[" .. (i - 1) .. "]"
    if not s.category or s.category == "HARM_CATEGORY_UNSPECIFIED" then c.add(p .. ".category", "category is required")
    elseif seen[s.category] then c.add(p .. ".category", "duplicate safety setting for " .. s.category)
    else seen[s.category] = true end
    if not s.threshold or s.threshold == "HARM_BLOCK_THRESHOLD_UNSPECIFIED" then
      c.add(p .. ".threshold", "threshold is required")
    end
  end
  c.done()
  local text = b.prompt.text
  local ntok = tokenizer.count(text)
  if ntok > model.inputTokenLimit then
    api_error("INVALID_ARGUMENT", "* GenerateTextRequest.prompt: The input token count (" .. ntok ..
      ") exceeds the maximum number of tokens allowed (" .. model.inputTokenLimit .. ").")
  end
  local temperature = b.temperature
  if temperature == nil then temperature = rec and rec.model.temperature or model.temperature or 0 end
  local block, high = textgen.safety(text, b.safetySettings)
  if block then
    local filter = { reason = block.reason }
    local out = { filters = { filter } }
    if block.reason == "SAFETY" then
      out.safetyFeedback = { { rating = { category = block.category, probability = "HIGH" },
                               setting = { category = block.category, threshold = block.threshold } } }
    end
    return proto.render("GenerateTextResponse", out, ctx.opts)
  end
  local n = b.candidateCount or 1
  local max_tokens = b.maxOutputTokens or model.outputTokenLimit
  local learned
  if rec then
    local key = text:match("^%s*(.-)%s*$")
    for _, ex in ipairs(rec.examples) do
      if ex.textInput and ex.textInput:match("^%s*(.-)%s*$") == key then learned = ex.output break end
    end
  end
  local cands = {}
  for i = 1, n do
    local out = learned or textgen.compose(text, temperature, self.seed, i, "text")
    out = textgen.finish(out, b.stopSequences, max_tokens)
    cands[i] = { output = out, safetyRatings = textgen.ratings(high) }
  end
  return proto.render("GenerateTextResponse", { candidates = cands }, ctx.opts)
end

local function check_message_prompt(c, p, need_messages)
  if not p then c.add("prompt", "prompt is required") return end
  if need_messages and (not p.messages or #p.messages == 0) then
    c.add("prompt.messages", "messages must not be empty")
  end
  for i, m in ipairs(p.messages or {}) do
    if not m.content or m.content == "" then
      c.add("prompt.messages[" .. (i - 1) .. "].content", "message must include non empty content")
    end
  end
  for i, ex in ipairs(p.examples or {}) do
    local pre = "prompt.examples[" .. (i - 1) .. "]"
    if not ex.input then c.add(pre .. ".input", "input is required")
    elseif not ex.input.content or ex.input.content == "" then
      c.add(pre .. ".input.content", "message must include non empty content")
    end
    if not ex.output then c.add(pre .. ".output", "output is required")
    elseif not ex.output.content or ex.output.content == "" then
      c.add(pre .. ".output.content", "message must include non empty content")
    end
  end
end

function handlers.generateMessage(self, ctx)
  local b = ctx.body
  local name = "models/" .. ctx.caps[1]
  local model = base_model(name, "generateMessage")
  local c = checker("GenerateMessageRequest")
  check_message_prompt(c, b.prompt, true)
  check_sampling(c, b, model.name:find("gemini") and 2 or 1)
  c.done()
  local p = b.prompt
  local ntok = tokenizer.count_prompt(p)
  if ntok > model.inputTokenLimit then
    api_error("INVALID_ARGUMENT", "* GenerateMessageRequest.prompt: The input token count (" .. ntok ..
      ") exceeds the maximum number of tokens allowed (" .. model.inputTokenLimit .. ").")
  end
  local echoed = {}
  local authors = {}
  for i, m in ipairs(p.messages) do
    local author = (m.author and m.author ~= "") and m.author or (i % 2 == 1 and "0" or "1")
    echoed[i] = { author = author, content = m.content }
    authors[i] = author
  end
  local last = authors[#authors]
  local reply_author
  for i = #authors - 1, 1, -1 do if authors[i] ~= last then reply_author = authors[i] break end end
  if not reply_author then reply_author = (last == "0") and "1" or (last == "1" and "0" or "1") end
  local out = { messages = echoed }
  local all = {}
  if p.context then all[#all + 1] = p.context end
  for _, m in ipairs(p.messages) do all[#all + 1] = m.content end
  local text = table.concat(all, "\n")
  local block = textgen.safety(text, nil)
  if block then
    out.filters = { { reason = block.reason } }
    return proto.render("GenerateMessageResponse", out, ctx.opts)
  end
  local temperature = b.temperature
  if temperature == nil then temperature = model.temperature or 0 end
  local cands = {}
  for i = 1, (b.candidateCount or 1) do
    cands[i] = { author = reply_author,
                 content = textgen.compose(p.messages[#p.messages].content, temperature, self.seed, i, "chat") }
  end
  out.candidates = cands
  return proto.render("GenerateMessageResponse", out, ctx.opts)
end

function handlers.countMessageTokens(_, ctx)
  local b = ctx.body
  base_model("models/" .. ctx.caps[1], "countMessageTokens")
  local c = checker("CountMessageTokensRequest")
  check_message_prompt(c, b.prompt, true)
  c.done()
  return proto.render("CountMessageTokensResponse", { tokenCount = tokenizer.count_prompt(b.prompt) }, ctx.opts)
end

function handlers.countTextTokens(_, ctx)
  local b = ctx.body
  base_model("models/" .. ctx.caps[1], "countTextTokens")
  local c = checker("CountTextTokensRequest")
  if not b.prompt then c.add("prompt", "prompt is required")
  elseif not b.prompt.text or b.prompt.text == "" then c.add("prompt.text", "text must not be empty") end
  c.done()
  return proto.render("CountTextTokensResponse", { tokenCount = tokenizer.count(b.prompt.text) }, ctx.opts)
end

local function check_embed_text(c, field, text, model)
  if not text or text == "" then c.add(field, "text must not be empty") return end
  local n = tokenizer.count(text)
  if n > model.inputTokenLimit then
    c.add(field, "The input token count (" .. n .. ") exceeds the maximum number of tokens allowed (" ..
      model.inputTokenLimit .. ").")
  end
end

function handlers.embedText(_, ctx)
  local b = ctx.body
  local model = base_model("models/" .. ctx.caps[1], "embedText")
  local c = checker("EmbedTextRequest")
  check_embed_text(c, "text", b.text, model)
  c.done()
  return proto.render("EmbedTextResponse", { embedding = { value = embed.embed(b.text) } }, ctx.opts)
end

function handlers.batchEmbedText(_, ctx)
  local b = ctx.body
  -- Google accepted batchEmbedText on every model that supports embedText (embedding-gecko-001 lists
  -- only embedText, yet the v1beta3 SDK's generate_embeddings batched on it)
  local model = models.get("models/" .. ctx.caps[1])
  if not model or not (model.supports.batchEmbedText or model.supports.embedText) then
    base_model("models/" .. ctx.caps[1], "batchEmbedText")
  end
  local c = checker("BatchEmbedTextRequest")
  local texts = b.texts or {}
  if #texts == 0 then c.add("texts", "texts must not be empty")
  elseif #texts > 100 then c.add("texts", "at most 100 texts can be embedded in one request, got " .. #texts)
  else
    for i, t in ipairs(texts) do check_embed_text(c, "texts[" .. (i - 1) .. "]", t, model) end
  end
  c.done()
  local out = {}
  for i, t in ipairs(texts) do out[i] = { value = embed.embed(t) } end
  return proto.render("BatchEmbedTextResponse", { embeddings = out }, ctx.opts)
end

-- ------------------------------------------------------------------------------------------
-- tuned models

local function render_tuned(rec, ctx)
  return proto.render("TunedModel", tuning.model_fields(rec, ctx.now), ctx.opts)
end

local UPDATABLE = {
  displayName = "displayName", display_name = "displayName", description = "description",
  temperature = "temperature", topP = "topP", top_p = "topP", topK = "topK", top_k = "topK",
}

local function check_tuned_sampling(c, prefix, m)
  if m.temperature ~= nil and (m.temperature < 0 or m.temperature > 1) then
    c.add(prefix .. "temperature", "temperature must be in the range [0.0, 1.0]")
  end
  if m.topP ~= nil and (m.topP < 0 or m.topP > 1) then
    c.add(prefix .. "top_p", "top_p must be in the range [0.0, 1.0]")
  end
  if m.topK ~= nil and m.topK < 0 then c.add(prefix .. "top_k", "top_k must not be negative") end
end

function handlers.createTunedModel(self, ctx)
  local m = ctx.body
  local c = checker("CreateTunedModelRequest")
  local id = ctx.params.tuned_model_id
  if id ~= nil and not tuning.valid_id(id) then
    c.add("tuned_model_id", "tuned_model_id must be up to 40 characters and match " ..
      "[a-z]([a-z0-9-]{0,38}[a-z0-9])?, got \"" ..
      id .. "\"")
  end
  local src = m.tunedModelSource
  if not m.baseModel and not (src and src.tunedModel) then
    c.add("tuned_model.base_model", "base_model or tuned_model_source.tuned_model is required")
  end
  local task = m.tuningTask
  local examples = {}
  if not task then c.add("tuned_model.tuning_task", "tuning_task is required")
  elseif not task.trainingData then c.add("tuned_model.tuning_task.training_data", "training_data is required")
  elseif not task.trainingData.examples or not task.trainingData.examples.examples
      or #task.trainingData.examples.examples == 0 then
    c.add("tuned_model.tuning_task.training_data.examples.examples", "at least one training example is required")
  else
    examples = task.trainingData.examples.examples
    for i, ex in ipairs(examples) do
      local pre = "tuned_model.tuning_task.training_data.examples.examples[" .. (i - 1) .. "]"
      if not ex.textInput or ex.textInput == "" then c.add(pre .. ".text_input", "text_input must not be empty") end
      if not ex.output or ex.output == "" then c.add(pre .. ".output", "output must not be empty") end
    end
  end
  local hp = task and task.hyperparameters or {}
  if hp.epochCount ~= nil and (hp.epochCount < 1 or hp.epochCount > 1000) then
    c.add("tuned_model.tuning_task.hyperparameters.epoch_count", "epoch_count must be in the range [1, 1000]")
  end
  if hp.batchSize ~= nil and (hp.batchSize < 1 or hp.batchSize > 1024) then
    c.add("tuned_model.tuning_task.hyperparameters.batch_size", "batch_size must be in the range [1, 1024]")
  end
  if hp.learningRate ~= nil and (hp.learningRate ~= hp.learningRate or hp.learningRate <= 0) then
    c.add("tuned_model.tuning_task.hyperparameters.learning_rate", "learning_rate must be positive")
  end
  check_tuned_sampling(c, "tuned_model.", m)
  c.done()
  -- source model
  local base, source
  if m.baseModel then
    local bm0 = models.get(m.baseModel)
    if not bm0 or not bm0.supports.createTunedTextModel then
      api_error("NOT_FOUND", models.not_found_message(m.baseModel, "createTunedModel"))
    end
    base = bm0.name
  else
    local srec = tuned_record(self, src.tunedModel)
    require_role(srec, ctx, "READER")
    base = srec.base
    source = { tunedModel = srec.name, baseModel = srec.base }
  end
  local bm = models.get(base)
  -- name
  local name
  if id then
    name = "tunedModels/" .. id
    if self.tuned[name] then api_error("ALREADY_EXISTS", "Tuned model " .. name .. " already exists.") end
  else
    repeat
      local slug = tuning.slug(m.displayName)
      name = "tunedModels/" .. (slug ~= "" and (slug .. "-") or "") .. new_id(self, 12)
    until not self.tuned[name]
  end
  local n = #examples
  local d = tuning.defaults(n)
  local hyper = { epochCount = hp.epochCount or 10, batchSize = hp.batchSize or d.batchSize,
                  learningRate = hp.learningRate or d.learningRate }
  local fail
  for _, ex in ipairs(examples) do if ex.output:find("[[fail]]", 1, true) then fail = true end end
  local total = tuning.total_steps(n, hyper.epochCount, hyper.batchSize)
  local now = ctx.now
  local rec = {
    name = name, base = base, owner = ctx.caller, perms = {},
    model = { baseModel = not source and base or nil, tunedModelSource = source, displayName = m.displayName,
              description = m.description,
              temperature = m.temperature == nil and bm.temperature or m.temperature,
              topP = m.topP == nil and bm.topP or m.topP, topK = m.topK == nil and bm.topK or m.topK },
    hyper = hyper, examples = examples, n_examples = n, total_steps = total,
    fail_step = fail and math.max(1, math.floor(total / 2)) or nil,
    create_time = now, update_time = now, start_time = now, step_ms = self.tuning_step_ms,
    op_name = name .. "/operations/" .. rand.id(self.rng, 12, false),
  }
  rec.perms[1] = { id = new_id(self), granteeType = "USER", emailAddress = ctx.caller, role = "OWNER" }
  self.tuned[name] = rec
  self.tuned_order[#self.tuned_order + 1] = name
  return tuning.operation(rec, now, ctx.opts, true)
end

function handlers.getTunedModel(self, ctx)
  local rec = tuned_record(self, "tunedModels/" .. ctx.caps[1])
  require_role(rec, ctx, "READER")
  return render_tuned(rec, ctx)
end

function handlers.listTunedModels(self, ctx)
  local filter = ctx.params.filter or ""
  local f = filter:gsub("%s+", "")
  if f ~= "" and f ~= "owner:me" and f ~= "readers:everyone" then
    bad_request({ { field = "filter", description = "* ListTunedModelsRequest.filter: unsupported filter \"" ..
      filter .. "\"; supported filters are \"owner:me\" and \"readers:everyone\"" } })
  end
  local items = {}
  for _, name in ipairs(self.tuned_order) do
    local rec = self.tuned[name]
    if rec and acl.allows(rec, ctx.caller, "READER") then
      local keep = true
      if f == "owner:me" then keep = rec.owner == ctx.caller
      elseif f == "readers:everyone" then keep = acl.find_grantee(rec, "EVERYONE") ~= nil end
      if keep then items[#items + 1] = rec end
    end
  end
  local page, tok = page_or_fail(items, "listTunedModels", ctx, ctx.caller .. "|" .. f)
  local out = {}
  for i, rec in ipairs(page) do out[i] = render_tuned(rec, ctx) end
  return list_response("tunedModels", out, tok)
end

local function split_mask(mask)
  local paths = {}
  for p in (mask or ""):gmatch("[^,]+") do
    p = p:match("^%s*(.-)%s*$")
    if p ~= "" then paths[#paths + 1] = p end
  end
  return paths
end

function handlers.updateTunedModel(self, ctx)
  local name = "tunedModels/" .. ctx.caps[1]
  local rec = tuned_record(self, name)
  require_role(rec, ctx, "WRITER")
  local c = checker("UpdateTunedModelRequest")
  local paths = split_mask(ctx.params.update_mask)
  if #paths == 0 then c.add("update_mask", "update_mask is required") end
  local fields = proto.by_name.TunedModel
  for _, p in ipairs(paths) do
    if not UPDATABLE[p] then
      if fields[p] then
        c.add("update_mask", "field \"" .. p .. "\" cannot be updated; updatable fields are displayName, " ..
          "description, temperature, topP and topK")
      else
        c.add("update_mask", "unknown field \"" .. p .. "\" in update_mask")
      end
    end
  end
  check_tuned_sampling(c, "tuned_model.", ctx.body)
  c.done()
  for _, p in ipairs(paths) do
    local k = UPDATABLE[p]
    rec.model[k] = ctx.body[k]
  end
  rec.update_time = ctx.now
  return render_tuned(rec, ctx)
end

function handlers.deleteTunedModel(self, ctx)
  local name = "tunedModels/" .. ctx.caps[1]
  local rec = tuned_record(self, name)
  require_role(rec, ctx, "OWNER")
  self.tuned[name] = nil
  for i, n in ipairs(self.tuned_order) do
    if n == name then table.remove(self.tuned_order, i) break end
  end
  return json.object()
end

-- the tuned model record whose operation the path names, or a 404
local function operation_record(self, ctx)
  local name = "tunedModels/" .. ctx.caps[1]
  local opname = name .. "/operations/" .. ctx.caps[2]
  local rec = self.tuned[name]
  if not rec or rec.op_name ~= opname then
    api_error("NOT_FOUND", "Operation " .. opname .. " does not exist.")
  end
  return rec
end

function handlers.getOperation(self, ctx)
  local rec = operation_record(self, ctx)
  require_role(rec, ctx, "READER")
  return tuning.operation(rec, ctx.now, ctx.opts)
end

-- google.longrunning CancelOperation: a running operation ends at once (done, error CANCELLED) and
-- tuning stops (the model FAILED); a finished one is left as it is. Both reply {}.
function handlers.cancelOperation(self, ctx)
  local rec = operation_record(self, ctx)
  require_role(rec, ctx, "OWNER")
  tuning.cancel(rec, ctx.now)
  return json.object()
end

function handlers.listOperations(self, ctx)
  local name = "tunedModels/" .. ctx.caps[1]
  local rec = tuned_record(self, name)
  require_role(rec, ctx, "READER")
  local page, tok = page_or_fail({ rec }, "listOperations", ctx, name .. "|" .. (ctx.params.filter or ""))
  local out = {}
  for i, r in ipairs(page) do out[i] = tuning.operation(r, ctx.now, ctx.opts) end
  return list_response("operations", out, tok)
end

-- ------------------------------------------------------------------------------------------
-- permissions

-- the resource for a permission route: tuned model record or corpus record
local function perm_parent(self, ctx, create)
  local kind, id = ctx.caps[1], ctx.caps[2]
  local parent = kind .. "/" .. id
  if kind == "tunedModels" then
    return tuned_record(self, parent), "tuned model"
  end
  local corpus = self.corpora[parent]
  if not corpus then
    if not create then api_error("NOT_FOUND", "Corpus " .. parent .. " does not exist.") end
    if not id:match("^[a-z0-9][a-z0-9%-]*$") or #id > 40 then
      bad_request({ { field = "parent", description = "* CreatePermissionRequest.parent: invalid corpus name \"" ..
        parent .. "\"" } })
    end
    -- stored by createPermission once the request is valid
    corpus = { name = parent, owner = ctx.caller, perms = {}, pending = true }
    corpus.perms[1] = { id = new_id(self), granteeType = "USER", emailAddress = ctx.caller, role = "OWNER" }
  end
  return corpus, "corpus"
end

local function render_perm(res, p, ctx)
  return proto.render("Permission", { name = res.name .. "/permissions/" .. p.id, granteeType = p.granteeType,
                                      emailAddress = p.emailAddress, role = p.role }, ctx.opts)
end

local function find_perm(res, ctx)
  local p = acl.find(res, ctx.caps[3])
  if not p then
    api_error("NOT_FOUND", "Permission " .. res.name .. "/permissions/" .. ctx.caps[3] .. " does not exist.")
  end
  return p
end

function handlers.createPermission(self, ctx)
  local res, kind = perm_parent(self, ctx, true)
  require_role(res, ctx, "OWNER", kind == "corpus" and "corpus" or nil)
  local p = ctx.body
  local c = checker("CreatePermissionRequest")
  if not p.granteeType or p.granteeType == "GRANTEE_TYPE_UNSPECIFIED" then
    c.add("permission.grantee_type", "grantee_type is required")
  elseif p.granteeType == "EVERYONE" then
    if p.emailAddress ~= nil then
      c.add("permission.email_address", "email_address must not be set for grantee_type EVERYONE")
    end
  elseif not p.emailAddress or p.emailAddress == "" then
    c.add("permission.email_address", "email_address is required for grantee_type " .. p.granteeType)
  elseif not p.emailAddress:match("^[^@%s]+@[^@%s]+$") then
    c.add("permission.email_address", "email_address is not a valid email address")
  end
  if not p.role or p.role == "ROLE_UNSPECIFIED" then c.add("permission.role", "role is required")
  elseif p.role == "OWNER" then c.add("permission.role", "role OWNER cannot be granted; use TransferOwnership")
  elseif p.granteeType == "EVERYONE" and p.role ~= "READER" then
    c.add("permission.role", "grantee_type EVERYONE can only be granted role READER")
  end
  c.done()
  if acl.find_grantee(res, p.granteeType, p.emailAddress) then
    api_error("ALREADY_EXISTS", "A permission for this grantee already exists on " .. res.name .. ".")
  end
  local perm = { id = new_id(self), granteeType = p.granteeType, emailAddress = p.emailAddress, role = p.role }
  res.perms[#res.perms + 1] = perm
  if res.pending then
    res.pending = nil
    self.corpora[res.name] = res
  end
  return render_perm(res, perm, ctx)
end

function handlers.listPermissions(self, ctx)
  local res, kind = perm_parent(self, ctx, false)
  require_role(res, ctx, "OWNER", kind == "corpus" and "corpus" or nil)
  local page, tok = page_or_fail(res.perms, "listPermissions", ctx, res.name)
  local out = {}
  for i, p in ipairs(page) do out[i] = render_perm(res, p, ctx) end
  return list_response("permissions", out, tok)
end

function handlers.getPermission(self, ctx)
  local res, kind = perm_parent(self, ctx, false)
  require_role(res, ctx, "OWNER", kind == "corpus" and "corpus" or nil)
  return render_perm(res, find_perm(res, ctx), ctx)
end

function handlers.updatePermission(self, ctx)
  local res, kind = perm_parent(self, ctx, false)
  require_role(res, ctx, "OWNER", kind == "corpus" and "corpus" or nil)
  local perm = find_perm(res, ctx)
  local c = checker("UpdatePermissionRequest")
  local paths = split_mask(ctx.params.update_mask)
  if #paths == 0 then c.add("update_mask", "update_mask is required") end
  for _, p in ipairs(paths) do
    if p ~= "role" then c.add("update_mask", "only \"role\" can be updated, got \"" .. p .. "\"") end
  end
  local role = ctx.body.role
  if #paths > 0 then
    if not role or role == "ROLE_UNSPECIFIED" then c.add("permission.role", "role is required")
    elseif role == "OWNER" then c.add("permission.role", "role OWNER cannot be granted; use TransferOwnership")
    elseif perm.granteeType == "EVERYONE" and role ~= "READER" then
      c.add("permission.role", "grantee_type EVERYONE can only be granted role READER")
    end
  end
  c.done()
  if perm.role == "OWNER" then
    api_error("FAILED_PRECONDITION", "The owner's permission cannot be changed; use TransferOwnership.")
  end
  perm.role = role
  return render_perm(res, perm, ctx)
end

function handlers.deletePermission(self, ctx)
  local res, kind = perm_parent(self, ctx, false)
  require_role(res, ctx, "OWNER", kind == "corpus" and "corpus" or nil)
  local perm, i = find_perm(res, ctx)
  if perm.role == "OWNER" then
    api_error("FAILED_PRECONDITION", "The owner's permission cannot be deleted; use TransferOwnership.")
  end
  local _, idx = acl.find(res, perm.id)
  table.remove(res.perms, idx or i)
  return json.object()
end

function handlers.transferOwnership(self, ctx)
  local rec = tuned_record(self, "tunedModels/" .. ctx.caps[1])
  require_role(rec, ctx, "OWNER")
  local email = ctx.body.emailAddress
  local c = checker("TransferOwnershipRequest")
  if not email or email == "" then c.add("email_address", "email_address is required")
  elseif not email:match("^[^@%s]+@[^@%s]+$") then
    c.add("email_address", "email_address is not a valid email address")
  end
  c.done()
  acl.transfer(rec, email, function() return new_id(self) end)
  return json.object()
end

return App
