--- The client: one generic call path for every REST method, and the methods made from `gemini.methods`.
--
-- Every call goes the same way:
--
--    row (methods.lua) -> prepare: names, query, schema encode (raises on misuse)
--      -> send: core client :start{...} (a request record keyed by the transfer id)
--      -> drive: core :perform(wait) + :completions() until the record is finished
--      -> finish: decode (schema) or build the error object -> (retry policy) -> result, err
--
-- A blocking call is "send, then drive until this record is done"; completions of other requests
-- are kept on their records, and their callbacks run in `client:poll()`. A call with a callback as
-- its last argument returns the request record (a handle with `done`, `cancel`, `wait`) instead.
-- @module gemini.client

-- gemini.core is loaded on the first `new` (or clock use): its dlopen (libcurl and its TLS stack) and
-- curl_global_init are most of the time `require "gemini"` would take
local core_ok, core
local function load_core()
  if core_ok == nil then core_ok, core = pcall(require, "gemini.core") end
  return core_ok
end
local methods = require("gemini.methods")
local names = require("gemini.names")
local errors = require("gemini.errors")
local jsonmod = require("gemini.json")

local type, tostring, pairs, ipairs, select, error, format = type, tostring, pairs, ipairs, select, error, string.format
local unpack = table.unpack or unpack  -- luacheck: ignore 143

local M = {}
M.VERSION = "0.1.0"

local Client = {}
Client.__index = Client
Client.__name = "gemini.client"
M.Client = Client

local Request = {}
Request.__index = Request
Request.__name = "gemini.request"
M.Request = Request

-- Lazily loaded layers (they require this module).
local function operation_mod() return require("gemini.operation") end
local function pager_mod() return require("gemini.pager") end
local function handles_mod() return require("gemini.handles") end

-- ================================================================================================
-- Clock (for retries, deadlines and operation waits)

local clock, sleep
-- picks the clock and sleep on first use (LuaSocket only when the core has none)
local function pick_clock()
  load_core()
  local has_core = core_ok and type(core) == "table"
  local ok, socket
  if not (has_core and type(core.now) == "function" and type(core.sleep) == "function") then
    ok, socket = pcall(require, "socket")
  end
  if has_core and type(core.now) == "function" then
    clock = core.now
  elseif ok and type(socket) == "table" and socket.gettime then
    clock = socket.gettime
  else
    clock = os.time
  end
  if has_core and type(core.sleep) == "function" then
    sleep = core.sleep
  elseif ok and type(socket) == "table" and socket.sleep then
    sleep = socket.sleep
  else
    sleep = function(s)
      local t = clock() + s
      while clock() < t do os.execute("sleep 0.05") end
    end
  end
end
clock = function() pick_clock(); return clock() end
sleep = function(s) pick_clock(); return sleep(s) end
--- Monotonic-ish clock in seconds (the core's, else lua-socket's, else os.time).
function M.clock() return clock() end

--- Sleeps `s` seconds without driving any transfer.
function M.sleep(s) if s > 0 then sleep(s) end end

-- ================================================================================================
-- Options

local OPTIONS = {
  api_key = "string|false", base_url = "string", access_token = "string", user_project = "string",
  timeout = "number", connect_timeout = "number", stall_timeout = "number", max_response_bytes = "number",
  proxy = "string", ca_file = "string", ca_path = "string", insecure = "boolean", user_agent = "string",
  headers = "table", json = "table", retry = "table|false", deadline = "number", max_in_flight = "number",
  http2 = "boolean", max_connections = "number", on_request = "function", on_response = "function",
  on_retry = "function", compact_embeddings = "boolean",
}
local OPTION_NAMES = {}
for k in pairs(OPTIONS) do OPTION_NAMES[#OPTION_NAMES + 1] = k end
table.sort(OPTION_NAMES)

local CALL_OPTIONS = { timeout = "number", retry = "table|false", deadline = "number", on_progress = "function",
                       max_texts = "number", max_bytes = "number", compact_embeddings = "boolean" }
-- the methods whose replies `compact_embeddings` decodes in C (gemini.core.decode_embeddings)
local COMPACT_METHODS = { embed_text = true, batch_embed_text = true }
-- call options that only mean something to a method that splits (batch_embed_text)
local SPLIT_OPTIONS = { max_texts = true, max_bytes = true }

--- The API's request size limit (10 MiB), less a margin: a split request keeps each body under it.
M.MAX_BYTES = 10 * 1024 * 1024 - 64 * 1024

--- Cuts a list into consecutive ranges of at most `max_items` items whose JSON encoding (each item as a
-- JSON string plus a comma, on top of `base_bytes` for the rest of the body) stays within `max_bytes`.
-- An item larger than `max_bytes` on its own goes alone. The one splitting rule of the library: used by
-- every split method (batch_embed_text) and by `gemini.batch`.
-- @param list array (strings; another value counts as its `tostring` in quotes)
-- @param max_items at most this many items per range
-- @param max_bytes at most about this many bytes of JSON per range
-- @param base_bytes bytes of the body without the list's items (default: `{"texts":[]}`)
-- @return array of `{ first = i, last = j }` (empty for an empty list)
function M.split_ranges(list, max_items, max_bytes, base_bytes)
  base_bytes = base_bytes or #'{"texts":[]}'
  local out = {}
  local cur, size
  for i, v in ipairs(list) do
    local n = (type(v) == "string" and #jsonmod.quote(v) or #tostring(v) + 2) + 1
    if not cur or cur.last - cur.first + 1 >= max_items or size + n > max_bytes then
      cur = { first = i, last = i - 1 }
      out[#out + 1] = cur
      size = base_bytes
    end
    cur.last = i
    size = size + n
  end
  return out
end

local function check_type(v, spec)
  for t in spec:gmatch("[^|]+") do
    if t == "false" then
      if v == false then return true end
    elseif type(v) == t then
      return true
    end
  end
  return false
end

local function env(name)
  local v = os.getenv(name)
  if v == nil or v == "" then return nil end
  return v
end

--- The User-Agent a client sends unless `user_agent` is given: "lua-gemini/VERSION libcurl/VERSION".
-- @return string
function M.default_user_agent()
  local ua = "lua-gemini/" .. M.VERSION
  if load_core() and type(core) == "table" and type(core.curl_version) == "string" then
    local v = core.curl_version
    if not v:find("^libcurl") then v = "libcurl/" .. v end
    ua = ua .. " " .. v:match("^(%S+)")
  end
  return ua
end

--- Creates a client. See the README for the options; every option is optional.
-- @param opts table of options (`api_key`, `base_url`, `access_token`, `user_project`, `timeout`,
--   `connect_timeout`, `proxy`, `ca_file`, `user_agent`, `headers`, `json`, `retry`, `deadline`, ...;
--   `compact_embeddings = true`: embed_text and batch_embed_text results carry `gemini.vector` values)
-- @return client
function M.new(opts)
  if opts ~= nil and type(opts) ~= "table" then
    error("bad argument #1 to 'new' (table expected, got " .. type(opts) .. ")", 2)
  end
  opts = opts or {}
  for k, v in pairs(opts) do
    local spec = OPTIONS[k]
    if not spec then
      local s = type(k) == "string" and jsonmod.suggest(k, OPTION_NAMES)
      error(format("bad argument #1 to 'new' (unknown option '%s'%s)", tostring(k),
        s and ("; did you mean '" .. s .. "'?") or ""), 2)
    end
    if not check_type(v, spec) then
      error(format("bad argument #1 to 'new' (option '%s' must be %s, got %s)", k, spec:gsub("|", " or "),
        type(v)), 2)
    end
  end
  if not load_core() then error("gemini: cannot load the C core gemini.core: " .. tostring(core), 2) end

  for _, k in ipairs({ "api_key", "access_token", "user_project", "user_agent", "proxy", "ca_file", "ca_path" }) do
    if type(opts[k]) == "string" and opts[k]:find("[%z\1-\31\127]") then
      error(format("bad argument #1 to 'new' (option '%s' contains a control character)", k), 2)
    end
  end
  local self = setmetatable({}, Client)
  local key = opts.api_key
  if key == nil then key = env("GEMINI_API_KEY") or env("GOOGLE_API_KEY") end
  if key == false or key == "" then key = nil end
  local base = opts.base_url or env("GEMINI_BASE_URL") or "https://generativelanguage.googleapis.com"
  if not base:match("^[Hh][Tt][Tt][Pp][Ss]?://[^/%s]+") or base:find("[%s%c?#]") then
    error(format("bad argument #1 to 'new' (base_url must be an http(s) URL without query or spaces, got %q)",
      errors.redact(base, { key })), 2)
  end
  base = base:gsub("/+$", "")
  self._shown_url = base:gsub("^(%a+://)[^@/]*@", "%1")   -- never show userinfo
  self.base_url = self._shown_url
  -- Secrets live in closures, not in fields: printing or inspecting the client (vim.inspect, a
  -- debugger, a table dumper) never shows them. errors.redact accepts the function.
  local secrets = {}
  if key then secrets[#secrets + 1] = key end
  if opts.access_token then secrets[#secrets + 1] = opts.access_token end
  local userinfo = base:match("^%a+://([^@/]*)@")
  if userinfo then secrets[#secrets + 1] = userinfo end
  local proxy_userinfo = opts.proxy and opts.proxy:match("^%a+://([^@/]*)@")
  if proxy_userinfo then secrets[#secrets + 1] = proxy_userinfo end
  self._secrets = function() return secrets end
  self._base = function() return base end

  local headers = { "Accept: application/json" }
  if key then headers[#headers + 1] = "x-goog-api-key: " .. key end
  if opts.access_token then headers[#headers + 1] = "Authorization: Bearer " .. opts.access_token end
  if opts.user_project then headers[#headers + 1] = "x-goog-user-project: " .. opts.user_project end
  if opts.headers then
    local extra = {}
    for k, v in pairs(opts.headers) do
      if type(k) == "number" then extra[#extra + 1] = tostring(v)
      else extra[#extra + 1] = tostring(k) .. ": " .. tostring(v) end
    end
    table.sort(extra)
    for _, h in ipairs(extra) do
      if h:find("[\r\n]") then error("bad argument #1 to 'new' (option 'headers' has a line break)", 2) end
      headers[#headers + 1] = h
    end
  end
  -- the same list plus Content-Type, for requests with a body (the core only reads both)
  local body_headers = { unpack(headers) }
  body_headers[#body_headers + 1] = "Content-Type: application/json"
  self._headers = function() return headers, body_headers end
  -- base .. path, made once per path (bounded): most calls have no query
  local urls, nurls = {}, 0
  self._url = function(path, query)
    if query ~= "" then return base .. path .. query end
    local u = urls[path]
    if not u then
      if nurls >= 256 then urls, nurls = {}, 0 end
      u = base .. path
      urls[path] = u
      nurls = nurls + 1
    end
    return u
  end
  self._has_key = key ~= nil
  self._has_token = opts.access_token ~= nil

  self.json = jsonmod.new(opts.json)
  self.limits = {
    timeout = opts.timeout or 60, connect_timeout = opts.connect_timeout or 10,
    stall_timeout = opts.stall_timeout or 0, max_response_bytes = opts.max_response_bytes or 64 * 1024 * 1024,
    deadline = opts.deadline,
  }
  self.retry = opts.retry
  if self.retry == nil then
    local ok, retry = pcall(require, "gemini.retry")
    self.retry = ok and retry.DEFAULT or false
  end
  self.on_request, self.on_response, self.on_retry = opts.on_request, opts.on_response, opts.on_retry
  self.max_in_flight = opts.max_in_flight or 16
  self.compact_embeddings = opts.compact_embeddings or false

  self._core = core.client {
    connect_timeout = self.limits.connect_timeout, timeout = self.limits.timeout,
    stall_timeout = self.limits.stall_timeout, max_response_bytes = self.limits.max_response_bytes,
    proxy = opts.proxy, ca_file = opts.ca_file, ca_path = opts.ca_path, insecure = opts.insecure,
    user_agent = opts.user_agent or M.default_user_agent(), http2 = opts.http2,
    -- at least one connection per request in flight (HTTP/1.1 has one exchange per connection);
    -- 0 (no cap) stays 0
    max_connections = opts.max_connections == 0 and 0
      or math.max(opts.max_connections or 16, math.min(math.ceil(self.max_in_flight), 65536)),
  }
  self._reqs = {}       -- transfer id -> request record
  self._timers = {}     -- request records waiting to be (re)started: { at =, req = }
  self._queue = {}      -- records waiting for a free slot (max_in_flight)
  self._ready = {}      -- finished records whose callbacks are due (and on_progress calls: `_progress`)
  self._open = {}       -- requests given to `_execute` and not finished yet (set; `_seq` orders them)
  self._seq = 0
  self._active = 0
  -- present (false) rather than absent: a read of an absent field goes through the metatable
  self._closed, self._wake = false, false
  return self
end

function Client:__tostring()
  local auth = {}
  if self._has_key then auth[#auth + 1] = "api key set" end
  if self._has_token then auth[#auth + 1] = "access token set" end
  if #auth == 0 then auth[1] = "no credentials" end
  return format("gemini.client (%s, %s%s)", self._shown_url, table.concat(auth, ", "),
    self._closed and ", closed" or "")
end

local finish, run_callbacks

--- Closes the client: aborts the transfers in flight and drops the queued requests and retry timers.
-- Idempotent. Every request not yet finished (in flight, queued, waiting to retry, or a split
-- request's remaining parts) ends with `nil, err` where `err.status == "CANCELLED"` and `err.message`
-- says the client was closed: a callback-form request gets its callback called exactly once with that,
-- from within `close`, after the callbacks that were already due (with their own results); its
-- `req:wait()` returns the same `nil, err`. No callback of this client runs after `close` returns, and
-- any later use of the client raises `gemini: client is closed`. An error raised by one of these
-- callbacks does not stop the others: the first one is raised from `close` (with a traceback) once
-- all have run. (An `op:wait` with a callback that is between two polls has no request pending: it is
-- dropped without a call.)
function Client:close()
  if self._closed then return end
  self._closed = true
  self._core:close()
  if self._wake then self._wake() end
  local open = {}
  for req in pairs(self._open) do open[#open + 1] = req end
  table.sort(open, function(a, b) return a._seq < b._seq end)
  local due = self._ready
  self._reqs, self._timers, self._queue, self._ready, self._open = {}, {}, {}, {}, {}
  self._active = 0
  for _, req in ipairs(open) do
    if req.parts then
      for _, sub in ipairs(req.parts) do sub.on_finish = nil end
    end
    finish(self, req, nil, errors.new({ status = "CANCELLED", kind = "cancelled",
      message = "request cancelled: the client was closed", method = req.method, path = req.path,
      rpc = req.rpc }, self._secrets))
  end
  for _, r in ipairs(self._ready) do due[#due + 1] = r end
  self._ready = due
  -- run them all, each once; the first error raised by one is raised after the others have run
  local first
  while #self._ready > 0 do
    local ok, e = pcall(run_callbacks, self)
    if not ok and not first then first = e end
  end
  if first then error(first, 0) end
end

local function check_open(self, level)
  if getmetatable(self) ~= Client then error("gemini: method called without a client (use ':')", level + 1) end
  if self._closed then error("gemini: client is closed", level + 1) end
end

-- ================================================================================================
-- Prepare: arguments -> request record (raises on misuse)

local function argerr(pos, fname, msg, level)
  error(format("bad argument #%d to '%s' (%s)", pos, fname, msg), level + 1)
end

local function derive_mask(msg, body)
  local idx = jsonmod.message_index(msg)
  local mask = {}
  for k in pairs(body) do
    local f = idx and (idx.by_json[k] or idx.by_name[k])
    if f and not (f.behavior and f.behavior.OUTPUT_ONLY) and f.json ~= "name" then
      mask[#mask + 1] = f.json
    end
  end
  table.sort(mask)
  return table.concat(mask, ",")
end

local function query_value(kind, v)
  if kind == "int" then
    if type(v) == "number" and v == math.floor(v) then return jsonmod.number(v) end
    if type(v) == "string" and v:match("^%d+$") then return v end
    return nil, "an integer"
  elseif kind == "fieldmask" then
    if type(v) == "string" then return v end
    if type(v) == "table" then
      for _, p in ipairs(v) do if type(p) ~= "string" then return nil, "a string or a list of strings" end end
      return table.concat(v, ",")
    end
    return nil, "a string or a list of strings"
  elseif kind == "id" then
    -- a resource id given as a query value (tunedModelId): the same rules as a name's segment
    if type(v) ~= "string" then return nil, "an id string" end
    local ok, why = names.check_id(v)
    if not ok then return nil, "a valid id, but " .. names.quote(v) .. " " .. why end
    return v
  else
    if type(v) == "string" then return v end
    return nil, "a string"
  end
end

-- What `prepare` needs from a row, worked out once per row (weak keys: rows are plain data): the
-- query parameters by name and in URL order, the body's message, and the path cut around `{name}`
-- (with the paths made so far, per name: a client names the same model on every call).
local PLANS = setmetatable({}, { __mode = "k" })
-- shared by every call that has none (so never written: a write raises)
local READ_ONLY = { __newindex = function() error("gemini: internal: a shared empty table is read-only", 2) end }
local EMPTY = setmetatable({}, READ_ONLY)     -- the query list of a request without query parameters
local NO_OPTS = setmetatable({}, READ_ONLY)   -- the options of a call without options
local PATHS_MAX = 256

local function plan_of(row)
  local p = PLANS[row]
  if p then return p end
  p = { nargs = #row.args, known = {}, qnames = {}, paths = {}, npaths = 0 }
  for _, q in ipairs(row.query or {}) do p.known[q[1]] = q[2]; p.qnames[#p.qnames + 1] = q[1] end
  for _, a in ipairs(row.args) do
    if a[1] == "body" then p.body_msg, p.exclude = a[2], a.exclude; break end
  end
  local s, e = row.path:find("{name}", 1, true)
  if s then p.pre, p.post = row.path:sub(1, s - 1), row.path:sub(e + 1) end
  PLANS[row] = p
  return p
end

local function path_of(row, p, name)
  if not p.pre or name == nil then return row.path end
  local path = p.paths[name]
  if not path then
    if p.npaths >= PATHS_MAX then p.paths, p.npaths = {}, 0 end
    path = p.pre .. name .. p.post
    p.paths[name] = path
    p.npaths = p.npaths + 1
  end
  return path
end

local function encode_body(self, p, b, pos, fname, level)
  local ok, s = pcall(self.json.encode_message, self.json, p.body_msg, b, p.exclude)
  if not ok then argerr(pos, fname, tostring(s), level + 1) end
  return s
end

--- Builds the request record for `row` from the user's arguments.
-- `argv[1..n]` are the arguments as the generic method sees them (name first where the row has one);
-- `shift` is added to positions in messages (handles pass -1: their name is implicit);
-- `level` is the error level of the user's call as seen from here.
local function prepare(self, row, fname, argv, n, shift, level)
  level = level + 1
  local p = plan_of(row)
  local callback
  if n > 0 and type(argv[n]) == "function" then callback = argv[n]; argv[n] = nil; n = n - 1 end
  local nargs = p.nargs
  local callopts
  if n > nargs then
    local extra = argv[nargs + 1]
    if n == nargs + 1 and (type(extra) == "table" or extra == nil) then
      callopts = extra
    else
      argerr(nargs + 1 + shift, fname, "unexpected argument: " .. fname .. " takes " .. (nargs + shift) ..
        " argument" .. ((nargs + shift) == 1 and "" or "s") .. " (plus an options table and a callback)", level)
    end
  end
  local name, body, query
  local body_pos, query_pos
  local args = row.args
  for i = 1, nargs do
    local a = args[i]
    local kind = a[1]
    local v = argv[i]
    local pos = i + shift
    if kind == "name" then
      local full, why = names.check(a[2], v)
      if not full then argerr(pos, fname, why, level) end
      name = full
    elseif kind == "body" then
      if row.shorthand then v = row.shorthand(v) end
      if type(v) ~= "table" then
        argerr(pos, fname, "table expected (" .. a[2] .. "), got " .. type(v), level)
      end
      if v.safety ~= nil then
        local idx = jsonmod.message_index(a[2])
        if idx and idx.by_json.safetySettings then
          local ok, expanded = pcall(function() return require("gemini.safety").expand(v) end)
          if not ok then argerr(pos, fname, tostring(expanded):gsub("^[^:]*:%d+: ", ""), level) end
          v = expanded
        end
      end
      body, body_pos = v, pos
    elseif kind == "query" then
      if v ~= nil and type(v) ~= "table" then argerr(pos, fname, "table expected, got " .. type(v), level) end
      query, query_pos = v, pos
    end
  end

  -- query parameters (and call options given in the query table)
  local qlist = EMPTY
  if query or row.derive_mask then
    local qvals = {}
    if query then
      local known, list = p.known, p.qnames
      for k, v in pairs(query) do
        if known[k] then
          local s, want = query_value(known[k], v)
          if not s and type(v) == "string" and known[k] == "id" then
            argerr(query_pos, fname, format("query parameter '%s' must be %s", k, want), level)
          end
          if not s then argerr(query_pos, fname, format("query parameter '%s' must be %s, got %s", k, want, type(v)),
            level) end
          qvals[k] = s
        elseif CALL_OPTIONS[k] then
          callopts = callopts or {}
          if callopts[k] == nil then callopts[k] = v end
        else
          local s = type(k) == "string" and jsonmod.suggest(k, list)
          argerr(query_pos, fname, format("unknown query parameter '%s'%s%s", tostring(k),
            s and ("; did you mean '" .. s .. "'?") or "",
            #list > 0 and (" (accepted: " .. table.concat(list, ", ") .. ")") or ""), level)
        end
      end
    end
    if row.derive_mask and qvals.updateMask == nil and body then
      local mask = derive_mask(row.args[2][2], body)
      if mask == "" then argerr(body_pos, fname, "nothing to update: the body has no updatable field", level) end
      qvals.updateMask = mask
    end
    for _, q in ipairs(p.qnames) do
      if qvals[q] ~= nil then
        if qlist == EMPTY then qlist = {} end
        qlist[#qlist + 1] = { q, qvals[q] }
      end
    end
  end

  if callopts then
    for k, v in pairs(callopts) do
      local spec = CALL_OPTIONS[k]
      if not spec then
        argerr(nargs + 1 + shift, fname, "unknown call option '" .. tostring(k) ..
          "' (timeout, retry, deadline, on_progress" .. (row.split and ", max_texts, max_bytes" or "") .. ")", level)
      end
      if not check_type(v, spec) then
        argerr(nargs + 1 + shift, fname, format("call option '%s' must be %s", k, spec:gsub("|", " or ")), level)
      end
      if k == "compact_embeddings" and not COMPACT_METHODS[row.id] then
        argerr(nargs + 1 + shift, fname, "call option 'compact_embeddings' applies only to embed_text and " ..
          "batch_embed_text", level)
      end
      if SPLIT_OPTIONS[k] then
        if not row.split then
          argerr(nargs + 1 + shift, fname, format("call option '%s' applies only to a method that splits its " ..
            "request (batch_embed_text)", k), level)
        end
        if v < 1 then argerr(nargs + 1 + shift, fname, format("call option '%s' must be positive", k), level) end
      end
    end
  end

  -- body
  local payload
  local split = row.split
  local chunks
  if body and split and type(body[split.field]) == "table" then
    -- a list longer than the server accepts, or a body over the request size limit, goes as several
    -- requests (see `_launch_parts`); the cut is `M.split_ranges`
    local list = body[split.field]
    local part = {}
    for k, v in pairs(body) do part[k] = v end
    part[split.field] = {}
    local base = #encode_body(self, p, part, body_pos, fname, level)
    local max_items = callopts and callopts.max_texts or split.max
    local max_bytes = callopts and callopts.max_bytes or M.MAX_BYTES
    local ranges = M.split_ranges(list, max_items, max_bytes, base)
    if #ranges <= 1 then
      payload = encode_body(self, p, body, body_pos, fname, level)
    else
      chunks = {}
      for _, r in ipairs(ranges) do
        local slice = {}
        for i = r.first, r.last do slice[#slice + 1] = list[i] end
        part[split.field] = slice
        chunks[#chunks + 1] = encode_body(self, p, part, body_pos, fname, level)
      end
    end
  elseif body then
    payload = encode_body(self, p, body, body_pos, fname, level)
  end

  local path = path_of(row, p, name)
  local opts = callopts or NO_OPTS
  -- 12 fields: a hash part of 16, which also holds what a successful call adds on its way
  -- (first_started_at, _seq, id, finished, result): no rehash
  local req = setmetatable({ client = self, row = row, callback = callback, attempts = 0, name = name,
    method = row.verb, path = path, query = qlist, body = payload, rpc = row.rpc, opts = opts }, Request)
  if chunks then
    req.parts = {}
    for i, payload_i in ipairs(chunks) do
      local sub = setmetatable({ client = self, row = row, attempts = 0, name = name,
        method = req.method, path = path, query = qlist, body = payload_i, rpc = req.rpc, opts = opts,
        index = i }, Request)
      req.parts[i] = sub
    end
  end
  return req
end

-- ================================================================================================
-- Send, drive, finish

local function redacted_headers(self, headers)
  local out = {}
  for i, h in ipairs(headers) do
    local k = h:match("^([^:]+):")
    local lk = k and k:lower()
    if lk == "x-goog-api-key" or lk == "authorization" or lk == "proxy-authorization" then
      out[i] = k .. ": [REDACTED]"
    else
      out[i] = errors.redact(h, self._secrets)
    end
  end
  return out
end

-- the table given to core:start, filled right before each call (the core copies what it needs; no Lua
-- code runs between filling it and the call, so a hook that starts another request cannot clobber it)
local SPEC = {}

local function start_transfer(self, req)
  local headers, with_body = self._headers()
  local body = req.body
  if body then headers = with_body end
  req.attempts = req.attempts + 1
  local opts = req.opts
  local timeout = opts.timeout
  local deadline = opts.deadline or self.limits.deadline
  if req.clamped then req.clamped = nil end
  if deadline and req.first_started_at then
    -- the total deadline bounds this attempt too
    local remaining = deadline - (clock() - req.first_started_at)
    local base = timeout or self.limits.timeout
    if base == 0 or remaining < base then
      timeout = remaining > 0.001 and remaining or 0.001
      req.clamped = true
    end
  end
  -- a side-effecting POST goes on a new connection: on a reused one that dies before any reply byte,
  -- libcurl would resend it on its own, behind the retry policy (issue 5)
  local query = req.query
  local url = self._url(req.path, #query == 0 and "" or names.query(query))
  if self.on_request then
    self.on_request { method = req.method, url = errors.redact(url, self._secrets), path = req.path,
                      rpc = req.rpc, headers = redacted_headers(self, headers),
                      body = errors.redact(body, self._secrets),
                      attempt = req.attempts }
  end
  local spec = SPEC
  spec.method, spec.url, spec.headers, spec.body = req.method, url, headers, body
  spec.timeout, spec.fresh_connect = timeout, req.row.side_effect or nil
  local id = self._core:start(spec)
  spec.url, spec.headers, spec.body = nil, nil, nil   -- holds no request (nor secret) between calls
  req.id = id
  self._reqs[id] = req
  self._active = self._active + 1
  if self._wake then self._wake() end   -- event-loop adapter (gemini.luv): sync at the next iteration
end

local function launch(self, req)
  if self._active >= self.max_in_flight then
    self._queue[#self._queue + 1] = req
  else
    start_transfer(self, req)
  end
end

local function limits_for(self, req)
  local l = {}
  for k, v in pairs(self.limits) do l[k] = v end
  if req.opts.timeout then l.timeout = req.opts.timeout end
  if req.opts.deadline then l.deadline = req.opts.deadline end
  return l
end

local function info_of(self, req)   -- made only for an error
  return { method = req.method, path = req.path, rpc = req.rpc, limits = limits_for(self, req) }
end

-- The response headers of a completion as a table: `core:await` and `core:completions(true)` hand them
-- over as one string of "name:value\n" lines (names lowercased, last wins as in the table), made into
-- the table only when something reads them (an error, the on_response hook).
local function response_headers(c)
  local h = c.headers
  if h == nil and c.header_lines then
    h = {}
    for k, v in c.header_lines:gmatch("([^:\n]*):([^\n]*)\n") do h[k] = v end
    c.headers = h
  end
  return h
end

local function response_error(self, req, c, decoded, why)
  response_headers(c)
  return errors.from_response(c, info_of(self, req), decoded, self._secrets, why)
end

--- Turns a completion of the C core into `result, err` for the request's row.
local function outcome(self, req, c)
  local kind = c.kind
  if c.error or kind then
    if kind == "timeout" and req.clamped then c.kind = "deadline" end
    return nil, errors.from_transport(c, info_of(self, req), self._secrets)
  end
  local status = c.status or 0
  local body = c.body
  local row = req.row
  local ok_status = status >= 200 and status < 300
  -- compact_embeddings: the core decodes an embedding reply straight into gemini.vector values; a body
  -- it does not recognise (or an error reply) takes the general path below
  if ok_status and COMPACT_METHODS[row.id] and body and core.decode_embeddings then
    local compact = req.opts.compact_embeddings
    if compact == nil then compact = self.compact_embeddings end
    if compact then
      local fast = core.decode_embeddings(body)
      if fast then return fast end
    end
  end
  local json = self.json
  local decoded, derr
  if body and body ~= "" then decoded, derr = json:decode(body) end
  if not ok_status then
    return nil, response_error(self, req, c, decoded)
  end
  local output = row.output
  if output == "empty" then
    if (body or "") ~= "" and decoded == nil then
      return nil, response_error(self, req, c, nil, "a body that is not valid JSON (" .. tostring(derr) .. ")")
    end
    return true
  end
  local shape = type(decoded)
  if decoded ~= nil and decoded == json.null then
    shape = "null"
  elseif shape == "table" and body:find("^%s*%[") then
    shape = "array"   -- a JSON array decodes to a table too, but no reply of this API is one
  end
  if shape ~= "table" then
    local why = decoded == nil and ("a body that is not valid JSON" .. (derr and (" (" .. derr .. ")") or ""))
      or ("a JSON " .. shape .. " where an object was expected")
    return nil, response_error(self, req, c, nil, why)
  end
  if output == "operation" then
    return operation_mod().from_wire(self, decoded)
  elseif output == "ListOperationsResponse" then
    local ops = {}
    if type(decoded.operations) == "table" then
      for i, o in ipairs(decoded.operations) do ops[i] = operation_mod().from_wire(self, o) end
    end
    return { operations = ops, nextPageToken = decoded.nextPageToken }
  end
  local result, misfit = json:decode_reply(output, decoded)
  if misfit then
    return nil, response_error(self, req, c, nil, "a reply that does not fit " .. output .. " (" .. misfit .. ")")
  end
  return result
end

-- on_progress(done, total) of a split request: user code, so never run inside `_collect`. With a
-- callback it runs from the callback phase (before the final callback); blocking, from `_await`.
local function progress(self, req, done, total)
  local fn = req.opts and req.opts.on_progress
  if not fn then return end
  if req.callback then
    self._ready[#self._ready + 1] = { _progress = fn, done = done, total = total }
  else
    local due = req._progress_due or {}
    due[#due + 1] = { done, total }
    req._progress_due = due
  end
end

function finish(self, req, result, err)
  if req.finished then return end       -- once only: a record's callback is called exactly once
  req.finished = true
  if self._open then self._open[req] = nil end
  req.result, req.err = result, err
  if err and req.attempts > 1 then err.attempts = req.attempts end
  if req.on_finish then req.on_finish(result, err) end   -- internal chaining only, never user code
  if req.callback then self._ready[#self._ready + 1] = req end
end

-- A create_tuned_model with a tunedModelId that was retried and then got ALREADY_EXISTS: an earlier
-- attempt created the model, so the result is that model's operation (found with list_operations).
local function recognise_own_create(self, req, err)
  if req.rpc ~= "createTunedModel" or req.attempts < 2 or err.status ~= "ALREADY_EXISTS" then return false end
  local id
  for _, kv in ipairs(req.query or {}) do if kv[1] == "tunedModelId" then id = kv[2] end end
  if not id then return false end
  local ok, sub = pcall(prepare, self, methods.by_id.list_operations, "create_tuned_model",
    { "tunedModels/" .. id }, 1, 0, 1)
  if not ok then return false end
  sub.opts = req.opts
  sub.first_started_at = clock()
  sub.on_finish = function(page)
    local op = page and page.operations and page.operations[1]
    if op then finish(self, req, op) else finish(self, req, nil, err) end
  end
  launch(self, sub)
  return true
end

local function complete(self, req, c)
  self._active = self._active - 1
  local result, err = outcome(self, req, c)
  if self.on_response then
    -- a server may echo a credential (in an error message, a header): debug output never shows it
    local rh
    local h = response_headers(c)
    if h then
      rh = {}
      for k, v in pairs(h) do rh[k] = errors.redact(v, self._secrets) end
    end
    self.on_response { method = req.method, path = req.path, rpc = req.rpc, status = c.status, kind = c.kind,
                       headers = rh, body = errors.redact(c.body, self._secrets), err = err, attempt = req.attempts,
                       total_time = c.total_time }
  end
  if err then
    local retry = require("gemini.retry")
    local policy = req.opts.retry
    if policy == nil then policy = self.retry end
    local deadline = req.opts.deadline or self.limits.deadline
    local delay = policy and retry.decide(policy, req, err, deadline, clock())
    if delay then
      if self.on_retry then self.on_retry { attempt = req.attempts, delay = delay, err = err, rpc = req.rpc } end
      req.retry_delays = req.retry_delays or {}
      req.retry_delays[#req.retry_delays + 1] = delay
      self._timers[#self._timers + 1] = { at = clock() + delay, req = req }
      return
    end
    if recognise_own_create(self, req, err) then return end
  end
  finish(self, req, result, err)
end

local function fill_slots(self)
  while #self._queue > 0 and self._active < self.max_in_flight do
    start_transfer(self, table.remove(self._queue, 1))
  end
end

local function due_timers(self)
  local now = clock()
  local nextat
  local i = 1
  while i <= #self._timers do
    local t = self._timers[i]
    if t.at <= now then
      table.remove(self._timers, i)
      if t.fn then t.fn() else launch(self, t.req) end
    else
      if not nextat or t.at < nextat then nextat = t.at end
      i = i + 1
    end
  end
  return nextat
end

--- Runs `fn` once, `delay` seconds from now, from the client's driving (poll, run or a blocking call).
-- @param delay seconds
-- @param fn function
function Client:_after(delay, fn)
  self._timers[#self._timers + 1] = { at = clock() + delay, fn = fn }
  if self._wake then self._wake() end
end

--- Seconds until the next timer (retry or `_after`), or nil when none is set (for event-loop adapters).
function Client:_next_timer()
  local nextat
  for _, t in ipairs(self._timers) do
    if not nextat or t.at < nextat then nextat = t.at end
  end
  if not nextat then return nil end
  local left = nextat - clock()
  return left > 0 and left or 0
end

--- Takes the completions of the C core and finishes their requests; starts due timers and queued
-- requests. Event-loop adapters call it after `socket_action`.
-- @return number of requests not yet finished (in flight, queued or waiting on a timer)
function Client:_collect()
  local done = self._core:completions(true)   -- headers as lines: a table only when read (response_headers)
  for _, c in ipairs(done) do
    local req = self._reqs[c.id]
    if req then
      self._reqs[c.id] = nil
      complete(self, req, c)
    end
  end
  due_timers(self)
  fill_slots(self)
  return self._active + #self._queue + #self._timers
end

--- One step of work: start due timers, wait at most `wait` seconds for activity, collect completions.
-- @return number of requests not yet finished (in flight, queued or waiting to retry)
function Client:_step(wait)
  local nextat = due_timers(self)
  fill_slots(self)
  if nextat then
    local left = nextat - clock()
    if left < 0 then left = 0 end
    if wait > left then wait = left end
  end
  if self._active > 0 then
    self._core:perform(wait)
  elseif nextat and wait > 0 then
    sleep(wait)
  end
  return self:_collect()
end

--- Runs the callbacks that are due (event-loop adapters call it after `_collect`).
function Client:_run_callbacks() run_callbacks(self) end

function run_callbacks(self)
  while #self._ready > 0 do
    local req = table.remove(self._ready, 1)
    if req._progress then
      local ok, e = xpcall(function() req._progress(req.done, req.total) end, debug.traceback)
      if not ok then error(e, 0) end
    else
      local cb = req.callback
      if cb and not req.cancelled then
        local ok, e = xpcall(function() cb(req.result, req.err) end, debug.traceback)
        if not ok then error(e, 0) end
      end
    end
  end
end

--- Does whatever work is ready, runs due callbacks, and waits at most `timeout` seconds (0: never blocks).
-- @param timeout seconds (default 0)
-- @return number of requests still in flight
function Client:poll(timeout)
  check_open(self, 2)
  timeout = timeout or 0
  self:_step(timeout)
  run_callbacks(self)
  return self:_pending()
end

--- Polls until no request is left.
function Client:run()
  check_open(self, 2)
  while true do
    self:_step(1)
    run_callbacks(self)
    -- callbacks may have started more work: count after them
    if self:_pending() == 0 and #self._ready == 0 then return end
  end
end

--- Number of requests not yet finished (in flight, queued, or waiting on a timer).
function Client:_pending()
  return self._active + #self._queue + #self._timers
end

--- Lets `seconds` pass, driving requests in flight meanwhile (their callbacks run at the next poll).
function Client:_idle(seconds)
  local stop = clock() + seconds
  while true do
    local left = stop - clock()
    if left <= 0 then return end
    if self._active > 0 or #self._timers > 0 or #self._queue > 0 then
      self:_step(left)
    else
      sleep(left)
    end
  end
end

--- Drives the client until `req` is finished; returns its result, err.
local function flush_progress(req)
  local due = req._progress_due
  if not due then return end
  req._progress_due = nil
  for _, p in ipairs(due) do req.opts.on_progress(p[1], p[2]) end
end

function Client:_await(req)
  while not req.finished do
    if self._closed then error("gemini: client is closed", 3) end
    local id = req.id
    local c
    -- the fast lane: this request alone in flight, nothing queued or timed, no event-loop adapter.
    -- The core drives it to its end and hands back its result alone (nil: not yet, after a second;
    -- false: the core drives its sockets for an adapter; the general step takes over then)
    if self._active == 1 and id and self._reqs[id] == req and #self._queue == 0 and #self._timers == 0
        and not self._wake then
      c = self._core:await(id, 1)
    end
    if c then
      self._reqs[id] = nil
      complete(self, req, c)
      -- as `_collect` does after its completions (a retry timer, a request queued meanwhile)
      if #self._timers > 0 or #self._queue > 0 then
        due_timers(self)
        fill_slots(self)
      end
    else
      local left = self:_step(1)
      if left == 0 and not req.finished then error("gemini: internal error: request lost", 3) end
    end
    if req._progress_due then flush_progress(req) end
  end
  if req._progress_due then flush_progress(req) end
  return req.result, req.err
end

--- Sends a prepared record and returns the record (callback form) or the result (blocking form).
function Client:_execute(req)
  req.first_started_at = clock()
  -- every request not yet finished, in order: `close` ends them
  self._seq = self._seq + 1
  req._seq = self._seq
  self._open[req] = true
  if req.parts then
    self:_launch_parts(req)
  else
    if req.row.split and req.opts.on_progress then
      -- a split method that needed one request still reports its progress: 1/1
      req.on_finish = function(res) if res then progress(self, req, 1, 1) end end
    end
    launch(self, req)
  end
  if req.callback then return req end
  return self:_await(req)
end

--- Sends the parts of a split request (batch_embed_text over 100 texts) concurrently, within
-- max_in_flight; each part is retried alone; the results are merged in input order.
function Client:_launch_parts(req)
  local row, parts = req.row, req.parts
  local results, left = {}, #parts
  local on_progress = req.opts.on_progress
  for i, sub in ipairs(parts) do
    sub.first_started_at = req.first_started_at
    sub.on_finish = function(res, err)
      if req.finished then return end
      if not res then
        -- the batch ends first (with this error), then the other parts are dropped silently:
        -- cancelling them must not end it again
        finish(self, req, nil, err)
        for _, other in ipairs(parts) do
          other.on_finish = nil
          if not other.finished then other:cancel() end
        end
        return
      end
      results[i] = res
      left = left - 1
      if on_progress then progress(self, req, #parts - left, #parts) end
      if left == 0 then
        local merged = {}
        for _, r in ipairs(results) do
          for _, item in ipairs(r[row.split.merge] or {}) do merged[#merged + 1] = item end
        end
        finish(self, req, { [row.split.merge] = merged })
      end
    end
    launch(self, sub)
  end
end

--- The generic call: `client:call(method_id, ...)` with the arguments of that method.
-- @param id client method name, e.g. "generate_text"
-- @return result, or nil plus an error object (or a request handle with a callback)
function Client:call(id, ...)
  check_open(self, 2)
  local row = methods.by_id[id]
  if not row then error(format("bad argument #1 to 'call' (unknown method '%s')", tostring(id)), 2) end
  local n = select("#", ...)
  local req = prepare(self, row, id, { ... }, n, 0, 2)
  local a, b = self:_execute(req)
  return a, b
end

--- Internal entry for handles and iterators: like a method call with an argument-position shift.
function Client:_invoke(id, fname, shift, level, argv, n)
  check_open(self, level + 1)
  local req = prepare(self, methods.by_id[id], fname, argv, n, shift, level + 1)
  local a, b = self:_execute(req)
  return a, b
end

--- Internal: prepares without sending (for iterators that validate eagerly).
function Client:_prepare(id, fname, shift, level, argv, n)
  check_open(self, level + 1)
  return prepare(self, methods.by_id[id], fname, argv, n, shift, level + 1)
end

-- ================================================================================================
-- Request handles (callback form)

--- Has the request finished (result or error available, callback possibly still due)?
function Request:done()
  return self.finished == true
end

--- Drives the client until this request ends; returns its result, err.
function Request:wait()
  local a, b = self.client:_await(self)
  if self.callback then
    -- its callback runs at the next poll; waiting does not run it twice
    self._waited = true
  end
  return a, b
end

--- Cancels the request: its callback gets `nil, err` with status CANCELLED.
function Request:cancel()
  if self.finished then return false end
  local client = self.client
  self.cancelled_by_user = true
  if self.parts then
    local parts = self.parts
    self.parts = nil
    for _, sub in ipairs(parts) do sub.on_finish = nil; if not sub.finished then sub:cancel() end end
  end
  if self.id and client._reqs[self.id] == self then
    client._reqs[self.id] = nil
    client._core:cancel(self.id)
    if client._wake then client._wake() end
    client._active = client._active - 1
  end
  for i, q in ipairs(client._queue) do if q == self then table.remove(client._queue, i); break end end
  for i, t in ipairs(client._timers) do if t.req == self then table.remove(client._timers, i); break end end
  finish(client, self, nil, errors.new({ status = "CANCELLED", message = "request cancelled", method = self.method,
    path = self.path, rpc = self.rpc, kind = "cancelled" }, client._secrets))
  return true
end

function Request:__tostring()
  return format("gemini.request (%s %s, %s)", tostring(self.method), tostring(self.path),
    self.finished and "done" or "in flight")
end

-- ================================================================================================
-- Methods from the rows (made in the loop below; documented here for LDoc).
-- Every method takes an optional options table (`timeout`, `retry`, `deadline`) after its own
-- arguments, and an optional callback last (then it returns a request handle instead of blocking).

--- One page of models: `GET /v1beta3/models`.
-- @function Client:list_models
-- @param query optional `{ pageSize =, pageToken = }`
-- @return `{ models = {...}, nextPageToken = }`, or nil plus an error

--- Iterator over every model of every page (raises the error object on failure).
-- @function Client:models
-- @param query optional `{ pageSize = }`
-- @return iterator

--- A model: `GET /v1beta3/models/*`.
-- @function Client:get_model
-- @param name "models/x" or "x"
-- @return Model table, or nil plus an error

--- `POST {model}:generateText`, for models/* and tunedModels/*.
-- @function Client:generate_text
-- @param model name
-- @param body GenerateTextRequest table, or a prompt string
-- @return GenerateTextResponse table, or nil plus an error

--- `POST models/*:generateMessage`.
-- @function Client:generate_message
-- @param model name
-- @param body GenerateMessageRequest table, or a message string
-- @return GenerateMessageResponse table, or nil plus an error

--- `POST models/*:countMessageTokens`.
-- @function Client:count_message_tokens
-- @param model name
-- @param body CountMessageTokensRequest table
-- @return `{ tokenCount = }`, or nil plus an error

--- `POST models/*:countTextTokens`.
-- @function Client:count_text_tokens
-- @param model name
-- @param body CountTextTokensRequest table, or a prompt string
-- @return `{ tokenCount = }`, or nil plus an error

--- `POST models/*:embedText`.
-- @function Client:embed_text
-- @param model name
-- @param body `{ text = }`, or a string
-- @param opts optional call options, plus `compact_embeddings` (overrides the client option of that name:
--   `value` is then a `gemini.vector`, float32 values in one userdata with `#v`, `v[i]`, `v:dot(w)`,
--   `v:cosine(w)`, `v:norm()` and `v:totable()`, decoded in C; see docs/guide.md)
-- @return `{ embedding = { value = {...} } }`, or nil plus an error

--- `POST models/*:batchEmbedText`; over 100 texts, or over the 10 MiB request limit, it sends concurrent
-- chunks (`M.split_ranges`) within max_in_flight, each retried alone, merged in input order.
-- @function Client:batch_embed_text
-- @param model name
-- @param body `{ texts = {...} }`, or a list of strings
-- @param opts optional call options, plus `on_progress(done_chunks, total_chunks)`, `max_texts` (100)
--   and `max_bytes` (`M.MAX_BYTES`), and `compact_embeddings` (each `value` a `gemini.vector`, as for
--   `embed_text`)
-- @return `{ embeddings = {...} }`, or nil plus an error (the first chunk that failed for good)

--- One page of tuned models: `GET /v1beta3/tunedModels`.
-- @function Client:list_tuned_models
-- @param query optional `{ pageSize =, pageToken =, filter = }`
-- @return `{ tunedModels = {...}, nextPageToken = }`, or nil plus an error

--- Iterator over every tuned model of every page.
-- @function Client:tuned_models
-- @param query optional `{ pageSize =, filter = }`
-- @return iterator

--- A tuned model: `GET tunedModels/*`.
-- @function Client:get_tuned_model
-- @param name name or id
-- @return TunedModel table, or nil plus an error

--- `DELETE tunedModels/*`.
-- @function Client:delete_tuned_model
-- @param name name or id
-- @return true, or nil plus an error

--- `POST /v1beta3/tunedModels`: starts tuning.
-- @function Client:create_tuned_model
-- @param body TunedModel table
-- @param query optional `{ tunedModelId = }`
-- @return an operation handle (see `gemini.operation`), or nil plus an error

--- `PATCH tunedModels/*`; an absent updateMask is derived from the body's fields.
-- @function Client:update_tuned_model
-- @param name name or id
-- @param body TunedModel fields
-- @param query optional `{ updateMask = }`
-- @return TunedModel table, or nil plus an error

--- `POST tunedModels/*:transferOwnership`.
-- @function Client:transfer_ownership
-- @param name name or id
-- @param body `{ emailAddress = }`
-- @return true, or nil plus an error

--- `POST {tunedModels/*, corpora/*}/permissions`.
-- @function Client:create_permission
-- @param parent full name
-- @param body Permission table
-- @return Permission table, or nil plus an error

--- One page of permissions.
-- @function Client:list_permissions
-- @param parent full name
-- @param query optional `{ pageSize =, pageToken = }`
-- @return `{ permissions = {...}, nextPageToken = }`, or nil plus an error

--- Iterator over every permission of every page.
-- @function Client:permissions
-- @param parent full name
-- @param query optional `{ pageSize = }`
-- @return iterator

--- `GET .../permissions/*`.
-- @function Client:get_permission
-- @param name full name
-- @return Permission table, or nil plus an error

--- `PATCH .../permissions/*`; an absent updateMask is derived from the body's fields.
-- @function Client:update_permission
-- @param name full name
-- @param body `{ role = }`
-- @param query optional `{ updateMask = }`
-- @return Permission table, or nil plus an error

--- `DELETE .../permissions/*`.
-- @function Client:delete_permission
-- @param name full name
-- @return true, or nil plus an error

--- `GET /v1beta3/tunedModels/*/operations/*`.
-- @function Client:get_operation
-- @param name full operation name
-- @return an operation handle, or nil plus an error

--- `POST /v1beta3/tunedModels/*/operations/*:cancel`: asks the server to stop a running tuning (the
-- operation then ends with error `CANCELLED` and the model is `FAILED`); a finished operation stays as it
-- is. Safe to repeat. See also `op:cancel()`.
-- @function Client:cancel_operation
-- @param name full operation name
-- @return true, or nil plus an error

--- One page of a tuned model's operations.
-- @function Client:list_operations
-- @param name tuned model name or id
-- @param query optional `{ pageSize =, pageToken =, filter = }`
-- @return `{ operations = { handles... }, nextPageToken = }`, or nil plus an error

--- Iterator over a tuned model's operations (operation handles).
-- @function Client:operations
-- @param name tuned model name or id
-- @param query optional
-- @return iterator

--- Walks every page with callbacks; pages are fetched from `poll`/`run`. Also `each_tuned_model(query, ...)`,
-- `each_permission(parent, query, ...)` and `each_operation(name, query, ...)`.
-- @function Client:each_model
-- @param query optional
-- @param on_item function(item); return false to stop
-- @param on_done optional function(count, err)
-- @return a handle with `done()` and `cancel()`

for _, row in ipairs(methods.rows) do
  local id = row.id
  Client[id] = function(self, ...)
    check_open(self, 2)
    local n = select("#", ...)
    local req = prepare(self, row, id, { ... }, n, 0, 2)
    local a, b = self:_execute(req)
    return a, b
  end
  if row.iterator then
    Client[row.iterator] = function(self, ...)
      check_open(self, 2)
      local n = select("#", ...)
      local req = prepare(self, row, row.iterator, { ... }, n, 0, 2)
      return pager_mod().iterate(self, req)
    end
    -- each_model, each_tuned_model, each_permission, each_operation: the callback walk
    local each = "each_" .. row.iterator:gsub("s$", "")
    Client[each] = function(self, ...)
      check_open(self, 2)
      local argv, n = { ... }, select("#", ...)
      local on_item, on_done
      if n >= 2 and type(argv[n]) == "function" and type(argv[n - 1]) == "function" then
        on_item, on_done = argv[n - 1], argv[n]
        argv[n - 1], argv[n] = nil, nil
        n = n - 2
      elseif n >= 1 and type(argv[n]) == "function" then
        on_item = argv[n]
        argv[n] = nil
        n = n - 1
      else
        error(format("bad argument #%d to '%s' (function expected for on_item)", n + 1, each), 2)
      end
      local req = prepare(self, row, each, argv, n, 0, 2)
      return pager_mod().each(self, req, on_item, on_done)
    end
  end
end

--- A model handle: `client:model("text-bison-001").name == "models/text-bison-001"`.
-- @param name "models/x" or "x"
-- @return model handle (userdata)
function Client:model(name)
  check_open(self, 2)
  return handles_mod().make(self, "model", name, 2)
end

--- A tuned model handle.
-- @param name "tunedModels/x" or "x"
-- @return tuned model handle (userdata)
function Client:tuned_model(name)
  check_open(self, 2)
  return handles_mod().make(self, "tuned_model", name, 2)
end

--- A corpus handle (for its permissions).
-- @param name "corpora/x" or "x"
-- @return corpus handle (userdata)
function Client:corpus(name)
  check_open(self, 2)
  return handles_mod().make(self, "corpus", name, 2)
end

--- A permission handle (`tunedModels/*/permissions/*` or `corpora/*/permissions/*`).
-- @param name full permission name
-- @return permission handle (userdata)
function Client:permission(name)
  check_open(self, 2)
  return handles_mod().make(self, "permission", name, 2)
end

return M
