-- Callback results are identical to blocking results for every client method (and for handle
-- methods): one scenario that calls every REST method runs twice on the same emulator state (reset and
-- reseeded), once blocking and once in callback form, and the two transcripts are deep-compared.
local emulator = require("spec.helpers.emulator")
local gemini = require("gemini")
local methods = require("gemini.methods")

local unpack = table.unpack or unpack  -- luacheck: ignore 143

-- A comparable, plain copy: operation handles and error objects become tables of what users read,
-- timestamps (which follow the wall clock) become "<time>".
local function plain(v, seen)
  seen = seen or {}
  local t = type(v)
  if t == "string" and v:match("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d") then return "<time>" end
  if t == "userdata" and v.kind == "operation" then
    return { operation = v.name, metadata = plain(v.metadata, seen), done = v:done(),
             response = plain(v.response, seen), error = plain(v.error, seen) }
  end
  if t ~= "table" then return v end
  if seen[v] then return seen[v] end
  local out = {}
  seen[v] = out
  for k, x in pairs(v) do out[k] = plain(x, seen) end
  if getmetatable(v) and getmetatable(v).__tostring then out.__text = tostring(v) end
  return out
end

local EXAMPLES = { examples = { { textInput = "1", output = "2" }, { textInput = "2", output = "3" } } }

-- Every method, in an order that builds the state the next ones need. `call(obj, method, ...)` is the
-- blocking or the callback form; it returns what the method gave (result, err).
local function scenario(client, call)
  local log = {}
  local function rec(label, ...)
    local n = select("#", ...)
    log[#log + 1] = { label = label, n = n, values = plain({ ... }) }
    return ...
  end
  local texts = {}
  for i = 1, 130 do texts[i] = "text " .. i end
  rec("list_models", call(client, "list_models", { pageSize = 2 }))
  rec("get_model", call(client, "get_model", "text-bison-001"))
  rec("generate_text", call(client, "generate_text", "text-bison-001",
    { prompt = { text = "Write a haiku" }, temperature = 0.5, candidateCount = 2 }))
  rec("generate_message", call(client, "generate_message", "chat-bison-001",
    { prompt = { context = "Be brief", messages = { { content = "Hello" } } } }))
  rec("count_message_tokens", call(client, "count_message_tokens", "chat-bison-001",
    { prompt = { messages = { { content = "Hello there" } } } }))
  rec("count_text_tokens", call(client, "count_text_tokens", "text-bison-001", { prompt = { text = "a b c d" } }))
  rec("embed_text", call(client, "embed_text", "embedding-gecko-001", { text = "embed me" }))
  rec("batch_embed_text", call(client, "batch_embed_text", "embedding-gecko-001", { texts = { "x", "y", "z" } }))
  rec("batch_embed_text split", call(client, "batch_embed_text", "embedding-gecko-001", { texts = texts }))
  local op = rec("create_tuned_model", call(client, "create_tuned_model", { displayName = "parity",
    baseModel = "models/text-bison-001", tuningTask = { trainingData = { examples = EXAMPLES } } },
    { tunedModelId = "parity" }))
  rec("get_operation", call(client, "get_operation", op.name))
  rec("list_operations", call(client, "list_operations", "tunedModels/parity", { pageSize = 5 }))
  rec("cancel_operation", call(client, "cancel_operation", op.name))
  rec("list_tuned_models", call(client, "list_tuned_models", { pageSize = 5 }))
  rec("get_tuned_model", call(client, "get_tuned_model", "parity"))
  rec("update_tuned_model", call(client, "update_tuned_model", "parity", { description = "now described" }))
  local perm = rec("create_permission", call(client, "create_permission", "tunedModels/parity",
    { role = "READER", granteeType = "USER", emailAddress = "bob@example.com" }))
  rec("list_permissions", call(client, "list_permissions", "tunedModels/parity", { pageSize = 10 }))
  rec("get_permission", call(client, "get_permission", perm.name))
  rec("update_permission", call(client, "update_permission", perm.name, { role = "WRITER" }))
  rec("delete_permission", call(client, "delete_permission", perm.name))
  rec("create_permission corpus", call(client, "create_permission", "corpora/parity-corpus",
    { role = "READER", granteeType = "EVERYONE" }))
  -- through handles
  local h = client:model("text-bison-001")
  rec("model:count_text_tokens", call(h, "count_text_tokens", { prompt = { text = "handle" } }))
  rec("model:get", call(h, "get"))
  local th = client:tuned_model("parity")
  rec("tuned_model:get", call(th, "get"))
  rec("tuned_model:generate_text", call(th, "generate_text", { prompt = { text = "3" } }))
  -- errors: an API error, a local fault, then a transfer that leaves alice without the right to delete
  rec("get_model missing", call(client, "get_model", "no-such-model"))
  rec("generate_text bad", call(client, "generate_text", "text-bison-001",
    { prompt = { text = "x" }, temperature = 7 }))
  rec("transfer_ownership", call(client, "transfer_ownership", "parity", { emailAddress = "bob@example.com" }))
  rec("delete_tuned_model", call(client, "delete_tuned_model", "parity"))
  return log
end

describe("callback form", function()
  local emu = emulator.with_emulator { "--api-key", "k1=alice@example.com", "--api-key", "k2=bob@example.com",
    "--tuning-step-ms", "0", reset = false }
  local client
  setup(function() client = emu:client { retry = false } end)

  local function blocking(obj, m, ...)
    return obj[m](obj, ...)
  end

  local function async(obj, m, ...)
    local args = { n = select("#", ...), ... }
    local calls, res, err = 0, nil, nil
    args[args.n + 1] = function(r, e) calls = calls + 1; res, err = r, e end
    local req = obj[m](obj, unpack(args, 1, args.n + 1))
    -- it returned at once with a request handle, before any reply
    assert.equal("table", type(req), m)
    assert.is_false(req:done(), m)
    assert.equal(0, calls, m)
    client:run()
    assert.equal(1, calls, m)
    return res, err
  end

  it("gives exactly what the blocking call gives, for every method (results and errors)", function()
    emu:reset()
    local want = scenario(client, blocking)
    local journal_b = emu:requests()
    emu:reset()
    local got = scenario(client, async)
    local journal_a = emu:requests()

    -- every REST method of the table was called
    local called = {}
    for _, r in ipairs(journal_b) do called[r.rpc] = true end
    for _, row in ipairs(methods.rows) do assert.is_true(called[row.rpc] == true, row.rpc) end

    assert.equal(#want, #got)
    for i = 1, #want do
      assert.same(want[i], got[i], want[i].label)
    end
    -- the error cases really are errors, with their fields
    local by = {}
    for _, e in ipairs(got) do by[e.label] = e end
    assert.equal("NOT_FOUND", by["get_model missing"].values[2].status)
    assert.equal(404, by["get_model missing"].values[2].code)
    assert.equal("INVALID_ARGUMENT", by["generate_text bad"].values[2].status)
    assert.equal("/v1beta3/models/text-bison-001:generateText", by["generate_text bad"].values[2].path)
    assert.equal(130, #by["batch_embed_text split"].values[1].embeddings)
    -- the same requests went on the wire, in the same order (split chunks may finish in any order)
    assert.equal(#journal_b, #journal_a)
    local function key(r) return r.method .. " " .. r.path .. "?" .. tostring(r.query) .. " " .. tostring(r.body) end
    local kb, ka = {}, {}
    for i = 1, #journal_b do kb[i], ka[i] = key(journal_b[i]), key(journal_a[i]) end
    table.sort(kb)
    table.sort(ka)
    assert.same(kb, ka)
  end)

  it("gives the same error fields for a transport failure", function()
    local c = gemini.new { api_key = "k1", base_url = "http://127.0.0.1:1", retry = false, connect_timeout = 2 }
    local _, e1 = c:get_model("text-bison-001")
    local e2
    c:get_model("text-bison-001", function(_, e) e2 = e end)
    c:run()
    c:close()
    assert.is_table(e1)
    assert.is_table(e2)
    -- the same kind of failure, field for field ...
    assert.equal("connect", e1.kind)
    assert.equal("UNAVAILABLE", e1.status)
    for _, k in ipairs { "status", "code", "kind", "curl_code", "method", "path", "rpc" } do
      assert.equal(e1[k], e2[k], k)
    end
    -- ... and the same text, up to the elapsed time libcurl puts in its message ("after 0 ms" vs "after 1 ms")
    local function normal(e)
      local p = plain(e)
      for _, k in ipairs { "message", "__text" } do
        if type(p[k]) == "string" then p[k] = p[k]:gsub("after %d+ ms", "after N ms") end
      end
      return p
    end
    assert.same(normal(e1), normal(e2))
  end)
end)
