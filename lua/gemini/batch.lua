--- Embedding at scale, as a function: `gemini.batch.embed_text(client, model, texts, opts, callback)`.
--
--    local batch = require("gemini.batch")
--    local res, err = batch.embed_text(client, "embedding-gecko-001", texts,
--      { on_progress = function(done, total) print(done .. "/" .. total) end })
--    -- callback form: returns a handle (done, cancel, wait) at once
--    batch.embed_text(client, "embedding-gecko-001", texts, nil, function(res, err) ... end)
--
-- A thin face of `client:batch_embed_text`, which does the work: the texts are cut into chunks of at
-- most `max_texts` texts (100: the API's limit) whose JSON body stays under `max_bytes` (the API's
-- 10 MiB request limit, less a margin), sent concurrently within the client's `max_in_flight`, each
-- retried alone by the client's retry policy, and merged in input order:
-- `{ embeddings = { {value = {...}}, ... } }`. The first chunk that fails (after its retries) fails
-- the batch and the other chunks are dropped. This module adds: texts given as a plain array, its
-- argument checks, and an empty array answered `{ embeddings = {} }` without a request.
-- @module gemini.batch

local client_mod = require("gemini.client")

local M = {}

--- The request size limit of the API (bytes), less the margin kept for the rest of the body.
M.MAX_BYTES = client_mod.MAX_BYTES
M.MAX_TEXTS = 100

local CALL_OPTIONS = { timeout = "number", retry = "table", deadline = "number" }

--- Cuts `texts` into chunks, as `client:batch_embed_text` does: arrays of { first = i, texts = {...} }.
-- @param texts array of strings
-- @param max_texts at most this many texts per chunk
-- @param max_bytes at most about this many bytes of JSON per chunk (a text larger than that goes alone)
-- @return array of chunks
function M.chunks(texts, max_texts, max_bytes)
  local out = {}
  for i, r in ipairs(client_mod.split_ranges(texts, max_texts, max_bytes)) do
    local t = {}
    for j = r.first, r.last do t[#t + 1] = texts[j] end
    out[i] = { first = r.first, texts = t }
  end
  return out
end

local function check_args(client, model, texts, opts, callback)
  if type(client) ~= "table" or type(client.batch_embed_text) ~= "function" then
    error("bad argument #1 to 'embed_text' (a gemini client expected)", 3)
  end
  if type(model) ~= "string" and type(model) ~= "userdata" then
    error("bad argument #2 to 'embed_text' (model name expected, got " .. type(model) .. ")", 3)
  end
  if type(model) == "userdata" then model = model.name end
  if type(texts) == "table" and type(texts.texts) == "table" then texts = texts.texts end
  if type(texts) ~= "table" then
    error("bad argument #3 to 'embed_text' (array of texts expected, got " .. type(texts) .. ")", 3)
  end
  for i, t in ipairs(texts) do
    if type(t) ~= "string" then
      error("bad argument #3 to 'embed_text' (text " .. i .. " is a " .. type(t) .. ", not a string)", 3)
    end
  end
  if opts ~= nil and type(opts) ~= "table" then
    error("bad argument #4 to 'embed_text' (table expected, got " .. type(opts) .. ")", 3)
  end
  opts = opts or {}
  for k, v in pairs(opts) do
    if k == "on_progress" then
      if type(v) ~= "function" then error("bad argument #4 to 'embed_text' (on_progress must be a function)", 3) end
    elseif k == "max_texts" or k == "max_bytes" then
      if type(v) ~= "number" or v < 1 then
        error("bad argument #4 to 'embed_text' (" .. k .. " must be a positive number)", 3)
      end
    elseif CALL_OPTIONS[k] then
      if type(v) ~= CALL_OPTIONS[k] and not (k == "retry" and v == false) then
        error("bad argument #4 to 'embed_text' (" .. k .. " must be a " .. CALL_OPTIONS[k] .. ")", 3)
      end
    else
      error("bad argument #4 to 'embed_text' (unknown option '" .. tostring(k) ..
        "': on_progress, max_texts, max_bytes, timeout, retry, deadline)", 3)
    end
  end
  if callback ~= nil and type(callback) ~= "function" then
    error("bad argument #5 to 'embed_text' (function expected, got " .. type(callback) .. ")", 3)
  end
  return model, texts, opts
end

--- Embeds any number of texts with as few, concurrent, `batch_embed_text` requests as the limits allow.
-- @param client a gemini client
-- @param model model name ("embedding-gecko-001", "models/...") or model handle
-- @param texts array of strings (or a BatchEmbedTextRequest table `{ texts = {...} }`)
-- @param opts optional `{ on_progress = function(done_chunks, total_chunks), max_texts = 100,
--   max_bytes = M.MAX_BYTES, timeout =, retry =, deadline = }` (the last three apply to each chunk)
-- @param callback optional function(result, err): given, the call returns a handle at once
-- @return `{ embeddings = {...} }` in input order, or nil plus the error object of the failed chunk;
--   with a callback: a handle with `done()`, `cancel()` and `wait()`
function M.embed_text(client, model, texts, opts, callback)
  model, texts, opts = check_args(client, model, texts, opts, callback)
  local callopts = {}
  for k in pairs(CALL_OPTIONS) do callopts[k] = opts[k] end
  callopts.on_progress, callopts.max_texts, callopts.max_bytes = opts.on_progress, opts.max_texts, opts.max_bytes

  if #texts == 0 then
    local empty = { embeddings = {} }
    if not callback then return empty end
    -- nothing to send: still answer through the client's driving, like any callback
    local handle = { finished = true, result = empty }
    client:_after(0, function() callback(empty) end)
    function handle.done() return true end
    function handle.cancel() return false end
    function handle.wait() return empty end
    return handle
  end

  if not callback then return client:batch_embed_text(model, { texts = texts }, callopts) end
  local req = client:batch_embed_text(model, { texts = texts }, callopts, callback)
  local handle = { request = req }
  -- Has the batch ended (all chunks in, or one failed, or cancelled)?
  function handle.done() return req:done() end
  -- Cancels the chunks not yet done; the callback gets nil, err (CANCELLED) from the next poll.
  function handle.cancel() return req:cancel() end
  -- Drives the client until the batch has ended; returns the result, err (the callback still runs).
  function handle.wait() return req:wait() end
  return handle
end

return M
