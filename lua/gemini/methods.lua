--- The v1beta3 surface as data: one row per REST method.
--
-- A row says everything the generic call path needs:
--
--  * `id`: the client method name (`generate_text`); `rpc`: the REST method name (`generateText`,
--    as in Google's docs, in the emulator's fault rules and in `err.rpc`);
--  * `verb` and `path`: the path template; `{name}` is replaced by the validated resource name;
--  * `args`: the positional arguments, in order: `{ "name", kind }` (a resource name of
--    `gemini.names.kinds[kind]`), `{ "body", message, exclude = {...} }` (a table encoded as that
--    schema message; `exclude` lists JSON fields that are not accepted in the body), or
--    `{ "query" }` (a table of query parameters);
--  * `query`: the accepted query parameters, in URL order, with their types (`int`, `string`, `fieldmask`,
--    `id`: a resource id checked like a name's segment);
--  * `output`: the schema message of the reply, `"empty"` (returns `true`) or `"operation"`;
--  * `items`: for list methods, the field holding the page's items (for iterators);
--  * `iterator`: the name of the client's iterator over every item of every page;
--  * `side_effect`: a POST that must not be retried blindly (issue 5);
--  * `derive_mask`: an absent `updateMask` is derived from the body's top-level fields;
--  * `shorthand`: turns a non-table body (a prompt string, a list of texts) into the request table;
--  * `split`: a list field longer than `max` is sent as several concurrent requests whose `merge`
--    lists are joined in order (batch_embed_text over 100 texts).
-- @module gemini.methods

local M = {}

local function text_prompt(v)
  if type(v) == "string" then return { prompt = { text = v } } end
  return v
end

local function message_prompt(v)
  if type(v) == "string" then return { prompt = { messages = { { content = v } } } } end
  return v
end

local function embed_one(v)
  if type(v) == "string" then return { text = v } end
  return v
end

local function embed_many(v)
  if type(v) == "table" and v.texts == nil and v[1] ~= nil then return { texts = v } end
  return v
end

local PAGE = { { "pageSize", "int" }, { "pageToken", "string" } }
local PAGE_FILTER = { { "pageSize", "int" }, { "pageToken", "string" }, { "filter", "string" } }

M.rows = {
  -- models
  { id = "list_models", rpc = "listModels", verb = "GET", path = "/v1beta3/models",
    args = { { "query" } }, query = PAGE, output = "ListModelsResponse", items = "models", iterator = "models" },
  { id = "get_model", rpc = "getModel", verb = "GET", path = "/v1beta3/{name}",
    args = { { "name", "model" } }, output = "Model" },
  { id = "generate_text", rpc = "generateText", verb = "POST", path = "/v1beta3/{name}:generateText",
    args = { { "name", "generative_model" }, { "body", "GenerateTextRequest", exclude = { model = true } } },
    output = "GenerateTextResponse", shorthand = text_prompt },
  { id = "generate_message", rpc = "generateMessage", verb = "POST", path = "/v1beta3/{name}:generateMessage",
    args = { { "name", "model" }, { "body", "GenerateMessageRequest", exclude = { model = true } } },
    output = "GenerateMessageResponse", shorthand = message_prompt },
  { id = "count_message_tokens", rpc = "countMessageTokens", verb = "POST",
    path = "/v1beta3/{name}:countMessageTokens",
    args = { { "name", "model" }, { "body", "CountMessageTokensRequest", exclude = { model = true } } },
    output = "CountMessageTokensResponse", shorthand = message_prompt },
  { id = "count_text_tokens", rpc = "countTextTokens", verb = "POST", path = "/v1beta3/{name}:countTextTokens",
    args = { { "name", "model" }, { "body", "CountTextTokensRequest", exclude = { model = true } } },
    output = "CountTextTokensResponse", shorthand = text_prompt },
  { id = "embed_text", rpc = "embedText", verb = "POST", path = "/v1beta3/{name}:embedText",
    args = { { "name", "model" }, { "body", "EmbedTextRequest", exclude = { model = true } } },
    output = "EmbedTextResponse", shorthand = embed_one },
  { id = "batch_embed_text", rpc = "batchEmbedText", verb = "POST", path = "/v1beta3/{name}:batchEmbedText",
    args = { { "name", "model" }, { "body", "BatchEmbedTextRequest", exclude = { model = true } } },
    output = "BatchEmbedTextResponse", shorthand = embed_many,
    split = { field = "texts", max = 100, merge = "embeddings" } },

  -- tuned models
  { id = "list_tuned_models", rpc = "listTunedModels", verb = "GET", path = "/v1beta3/tunedModels",
    args = { { "query" } }, query = PAGE_FILTER, output = "ListTunedModelsResponse", items = "tunedModels",
    iterator = "tuned_models" },
  { id = "get_tuned_model", rpc = "getTunedModel", verb = "GET", path = "/v1beta3/{name}",
    args = { { "name", "tuned_model" } }, output = "TunedModel" },
  { id = "create_tuned_model", rpc = "createTunedModel", verb = "POST", path = "/v1beta3/tunedModels",
    args = { { "body", "TunedModel" }, { "query" } }, query = { { "tunedModelId", "id" } },
    output = "operation", side_effect = true },
  { id = "update_tuned_model", rpc = "updateTunedModel", verb = "PATCH", path = "/v1beta3/{name}",
    args = { { "name", "tuned_model" }, { "body", "TunedModel" }, { "query" } },
    query = { { "updateMask", "fieldmask" } }, output = "TunedModel", derive_mask = true },
  { id = "delete_tuned_model", rpc = "deleteTunedModel", verb = "DELETE", path = "/v1beta3/{name}",
    args = { { "name", "tuned_model" } }, output = "empty" },
  { id = "transfer_ownership", rpc = "transferOwnership", verb = "POST", path = "/v1beta3/{name}:transferOwnership",
    args = { { "name", "tuned_model" }, { "body", "TransferOwnershipRequest", exclude = { name = true } } },
    output = "empty", side_effect = true },

  -- permissions (tunedModels/* and corpora/*)
  { id = "create_permission", rpc = "createPermission", verb = "POST", path = "/v1beta3/{name}/permissions",
    args = { { "name", "permission_parent" }, { "body", "Permission" } }, output = "Permission", side_effect = true },
  { id = "list_permissions", rpc = "listPermissions", verb = "GET", path = "/v1beta3/{name}/permissions",
    args = { { "name", "permission_parent" }, { "query" } }, query = PAGE, output = "ListPermissionsResponse",
    items = "permissions", iterator = "permissions" },
  { id = "get_permission", rpc = "getPermission", verb = "GET", path = "/v1beta3/{name}",
    args = { { "name", "permission" } }, output = "Permission" },
  { id = "update_permission", rpc = "updatePermission", verb = "PATCH", path = "/v1beta3/{name}",
    args = { { "name", "permission" }, { "body", "Permission" }, { "query" } },
    query = { { "updateMask", "fieldmask" } }, output = "Permission", derive_mask = true },
  { id = "delete_permission", rpc = "deletePermission", verb = "DELETE", path = "/v1beta3/{name}",
    args = { { "name", "permission" } }, output = "empty" },

  -- long-running operations (polled at /v1beta3/{name}, see v1beta3-methods.md section 2)
  { id = "get_operation", rpc = "getOperation", verb = "GET", path = "/v1beta3/{name}",
    args = { { "name", "operation" } }, output = "operation" },
  { id = "list_operations", rpc = "listOperations", verb = "GET", path = "/v1beta3/{name}/operations",
    args = { { "name", "tuned_model" }, { "query" } }, query = PAGE_FILTER, output = "ListOperationsResponse",
    items = "operations", iterator = "operations" },
  -- google.longrunning CancelOperation (bound as POST {name=**/operations/*}:cancel, body `*`): repeatable
  { id = "cancel_operation", rpc = "cancelOperation", verb = "POST", path = "/v1beta3/{name}:cancel",
    args = { { "name", "operation" } }, output = "empty" },
}

--- Rows by client method name.
M.by_id = {}
for _, row in ipairs(M.rows) do M.by_id[row.id] = row end

return M
