--- Resource handles: userdata from the C core (`core.handle`), methods from this module.
--
--    local m = client:model("text-bison-001")       -- m.name == "models/text-bison-001"
--    m:generate_text{ prompt = { text = "Hi" } }
--
-- Kinds and methods:
--
--  * model: `get, generate_text, generate_message, count_message_tokens, count_text_tokens, embed_text,
--    batch_embed_text`, and `chat{...}` (a `gemini.chat` session)
--  * tuned_model: `get, update, delete, transfer_ownership, generate_text, create_permission,
--    list_permissions, permissions, permission(id), operations, list_operations`
--  * corpus: `create_permission, list_permissions, permissions, permission(id)`
--  * permission: `get, update, delete`
--
-- Each method is the client method of the same meaning with the handle's name as first argument;
-- argument positions in error messages count from the handle method's own arguments. Every
-- method also takes an optional callback as its last argument (non-blocking form).
-- @module gemini.handles

local core = require("gemini.core")
local names = require("gemini.names")

local M = {}

local select = select

-- handle method -> client method id; iterators are marked with iter = true
local KINDS = {
  model = { core_kind = "model", name_kind = "model", methods = {
    get = "get_model", generate_text = "generate_text", generate_message = "generate_message",
    count_message_tokens = "count_message_tokens", count_text_tokens = "count_text_tokens",
    embed_text = "embed_text", batch_embed_text = "batch_embed_text",
  } },
  tuned_model = { core_kind = "tunedModel", name_kind = "tuned_model", methods = {
    get = "get_tuned_model", update = "update_tuned_model", delete = "delete_tuned_model",
    transfer_ownership = "transfer_ownership", generate_text = "generate_text",
    create_permission = "create_permission", list_permissions = "list_permissions",
    permissions = { "list_permissions", iter = true }, operations = { "list_operations", iter = true },
    list_operations = "list_operations",
  }, sub_permission = true },
  corpus = { core_kind = "corpus", name_kind = "corpus", methods = {
    create_permission = "create_permission", list_permissions = "list_permissions",
    permissions = { "list_permissions", iter = true },
  }, sub_permission = true },
  permission = { core_kind = "permission", name_kind = "permission", methods = {
    get = "get_permission", update = "update_permission", delete = "delete_permission",
  } },
}
M.KINDS = KINDS

local function check_handle(h, kind, fname)
  if type(h) ~= "userdata" or h.client == nil or h.kind ~= kind then
    error("bad self to '" .. fname .. "' (a gemini " .. kind .. " handle; call it with ':')", 3)
  end
end

local function pack(...) return { ... }, select("#", ...) end

local function build_methods(kind, spec)
  local mt = {}
  for hname, target in pairs(spec.methods) do
    local id = type(target) == "table" and target[1] or target
    if type(target) == "table" and target.iter then
      mt[hname] = function(h, ...)
        check_handle(h, kind, hname)
        local argv, n = pack(h.name, ...)
        local req = h.client:_prepare(id, hname, -1, 2, argv, n)
        return require("gemini.pager").iterate(h.client, req)
      end
    else
      mt[hname] = function(h, ...)
        check_handle(h, kind, hname)
        local argv, n = pack(h.name, ...)
        local a, b = h.client:_invoke(id, hname, -1, 2, argv, n)
        return a, b
      end
    end
  end
  if kind == "model" or kind == "tuned_model" then
    --- A chat session on this model (see `gemini.chat`): `client:model("chat-bison-001"):chat{ context = ... }`.
    mt.chat = function(h, opts)
      check_handle(h, kind, "chat")
      return require("gemini.chat").new(h, opts)
    end
  end
  if spec.sub_permission then
    --- A permission handle under this resource: `h:permission("123")` or the full name.
    mt.permission = function(h, id)
      check_handle(h, kind, "permission")
      local full
      if type(id) == "string" and not id:find("/", 1, true) then
        local ok, why = names.check_id(id)
        if not ok then error("bad argument #1 to 'permission' (invalid permission id " .. names.quote(id) ..
          ": " .. why .. ")", 2) end
        full = h.name .. "/permissions/" .. id
      else
        local why
        full, why = names.check("permission", id)
        if not full then error("bad argument #1 to 'permission' (" .. why .. ")", 2) end
        if full:sub(1, #h.name + 1) ~= h.name .. "/" then
          error("bad argument #1 to 'permission' (" .. full .. " is not under " .. h.name .. ")", 2)
        end
      end
      return M.make(h.client, "permission", full, 1)
    end
  end
  if kind == "model" then
    --- A chat session on this model (see `gemini.chat`): `model:chat{ context =, examples =, temperature = }`.
    mt.chat = function(h, opts)
      check_handle(h, kind, "chat")
      return require("gemini.chat").new(h, opts)
    end
  end
  return mt
end

local registered = false
local function register()
  if registered then return end
  for kind, spec in pairs(KINDS) do
    core.handle_methods(spec.core_kind, build_methods(kind, spec))
  end
  registered = true
end

--- Makes a handle of `kind` for `name` (short names get their collection); raises on a bad name.
-- @param client the client
-- @param kind "model", "tuned_model", "corpus" or "permission"
-- @param name resource name or short id
-- @param level error level of the user's call (from the caller)
-- @return handle userdata with `.name`, `.client`, `.kind`
function M.make(client, kind, name, level)
  register()
  local spec = KINDS[kind]
  local full, why = names.check(spec.name_kind, name)
  if not full then error("bad argument #1 to '" .. kind .. "' (" .. why .. ")", (level or 1) + 1) end
  return core.handle(spec.core_kind, full, { client = client, kind = kind })
end

return M
