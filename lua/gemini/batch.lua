--- Embedding at scale: `batch_embed_text` split by count AND by request size, on the client's public
-- callback API.
--
--    local batch = require("gemini.batch")
--    local res, err = batch.embed_text(client, "embedding-gecko-001", texts,
--      { on_progress = function(done, total) print(done .. "/" .. total) end })
--    -- callback form: returns a handle (done, cancel, wait) at once
--    batch.embed_text(client, "embedding-gecko-001", texts, nil, function(res, err) ... end)
--
-- The texts are cut into chunks of at most `max_texts` texts (100: the API's limit) whose JSON body
-- stays under `max_bytes` (the API's 10 MiB request limit, less a margin). The chunks are sent
-- concurrently as ordinary `batch_embed_text` calls, so they queue within the client's `max_in_flight`,
-- and each one is retried alone by the client's retry policy. The embeddings come back in input order:
-- `{ embeddings = { {value = {...}}, ... } }`, exactly what one `batch_embed_text` call returns. The first
-- chunk that fails (after its retries) fails the batch: the other chunks are cancelled.
-- `client:batch_embed_text` itself splits by count only; this module also splits by size.
-- @module gemini.batch

local jsonmod = require("gemini.json")

local M = {}

--- The request size limit of the API (bytes) and the margin kept under it for the rest of the body.
M.MAX_BYTES = 10 * 1024 * 1024 - 64 * 1024
M.MAX_TEXTS = 100

local CALL_OPTIONS = { timeout = "number", retry = "table", deadline = "number" }

--- Cuts `texts` into chunks: arrays of { first = i, texts = {...} }.
-- @param texts array of strings
-- @param max_texts at most this many texts per chunk
-- @param max_bytes at most about this many bytes of JSON per chunk (a text larger than that goes alone)
-- @return array of chunks
function M.chunks(texts, max_texts, max_bytes)
  local out = {}
  local cur, size = nil, 0
  local base = #'{"texts":[]}'
  for i, t in ipairs(texts) do
    local n = #jsonmod.quote(t) + 1
    if not cur or #cur.texts >= max_texts or (#cur.texts > 0 and size + n > max_bytes) then
      cur = { first = i, texts = {} }
      out[#out + 1] = cur
      size = base
    end
    cur.texts[#cur.texts + 1] = t
    size = size + n
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
  local chunks = M.chunks(texts, opts.max_texts or M.MAX_TEXTS, opts.max_bytes or M.MAX_BYTES)
  local callopts = {}
  for k in pairs(CALL_OPTIONS) do callopts[k] = opts[k] end
  local on_progress = opts.on_progress
  local total = #chunks
  local results = {}
  local reqs = {}
  local handle = { finished = false }
  local ndone = 0

  local function merged()
    local out = {}
    for i = 1, total do
      for _, e in ipairs(results[i].embeddings or {}) do out[#out + 1] = e end
    end
    return { embeddings = out }
  end
  local function cancel_rest()
    for _, r in ipairs(reqs) do if not r:done() then r:cancel() end end
  end

  if total == 0 then
    local empty = { embeddings = {} }
    if not callback then return empty end
    -- nothing to send: still answer through the client's driving, like any callback
    handle.finished, handle.result = true, empty
    client:_after(0, function() callback(empty) end)
    function handle.done() return true end
    function handle.cancel() return false end
    function handle.wait() return empty end
    return handle
  end

  if not callback then
    -- blocking: start every chunk (the client queues them), then wait for each in order
    for i, ch in ipairs(chunks) do
      reqs[i] = client:batch_embed_text(model, { texts = ch.texts }, callopts, function() end)
    end
    for i = 1, total do
      local res, err = reqs[i]:wait()
      if not res then
        cancel_rest()
        return nil, err
      end
      results[i] = res
      ndone = ndone + 1
      if on_progress then on_progress(ndone, total) end
    end
    return merged()
  end

  local ended = false        -- the user's callback has been called (or is being called)
  local function finish(res, err)
    if ended then return end
    ended = true
    handle.finished, handle.result, handle.err = true, res, err
    callback(res, err)
  end
  for i, ch in ipairs(chunks) do
    reqs[i] = client:batch_embed_text(model, { texts = ch.texts }, callopts, function(res, err)
      if ended then return end
      if not res then
        cancel_rest()
        finish(nil, err)
        return
      end
      results[i] = res
      ndone = ndone + 1
      if on_progress then on_progress(ndone, total) end
      if ndone == total then finish(merged()) end
    end)
  end

  -- Has the batch ended (all chunks in, or one failed, or cancelled)?
  function handle.done() return handle.finished end
  -- Cancels the chunks not yet done; the callback gets nil, err (CANCELLED) from the next poll.
  function handle.cancel()
    if handle.finished then return false end
    handle.finished = true
    -- the first cancelled chunk's callback ends the batch with its CANCELLED error
    for _, r in ipairs(reqs) do if not r:done() then r:cancel() end end
    return true
  end
  -- Drives the client until every chunk has ended; returns the result, err (the callback still runs).
  function handle.wait()
    local out = {}
    for i = 1, total do
      local res, err = reqs[i]:wait()
      if not res then
        cancel_rest()
        return nil, err
      end
      out[i] = res
    end
    results = out
    return merged()
  end
  return handle
end

return M
