--- Pagination: iterators over every item of every page of a list method, blocking or with callbacks.
--
--    for m in client:models{ pageSize = 50 } do print(m.name) end          -- blocking iterator
--    client:each_model({ pageSize = 50 }, function(m) print(m.name) end,   -- callbacks, pages fetched
--      function(count, err) print(count, err) end)                        -- without blocking
--
-- The iterator fetches pages lazily (one request per page, following `nextPageToken`) and raises
-- the error object (see `gemini.errors`) if a page fails. Arguments are checked when the iterator
-- is made, before any request.
-- @module gemini.pager

local M = {}

--- A copy of the prepared list request `req` asking for the page at `token` (nil: the first page).
-- @param req prepared request record
-- @param token page token or nil
-- @return a fresh request record
function M.page_request(req, token)
  local row = req.row
  local q = {}
  for _, spec in ipairs(row.query) do
    if spec[1] == "pageToken" then
      if token then q[#q + 1] = { "pageToken", token } end
    else
      for _, kv in ipairs(req.query) do if kv[1] == spec[1] then q[#q + 1] = kv end end
    end
  end
  local page_req = setmetatable({}, getmetatable(req))
  for k, v in pairs(req) do page_req[k] = v end
  page_req.query = q
  page_req.callback = nil
  page_req.attempts = 0
  page_req.finished, page_req.result, page_req.err, page_req.id = nil, nil, nil, nil
  return page_req
end

local function first_token(req)
  for _, kv in ipairs(req.query or {}) do if kv[1] == "pageToken" then return kv[2] end end
  return nil
end

local function next_token(page, token)
  local nt = page.nextPageToken
  if type(nt) == "string" and nt ~= "" and nt ~= token then return nt end
  return nil
end

--- Makes a blocking iterator from a prepared request record (see `client:_prepare`).
-- @param client the client
-- @param req prepared request (its row has `items`)
-- @return iterator function yielding items
function M.iterate(client, req)
  local row = req.row
  local items, i = nil, 0
  local finished = false
  local token = first_token(req)
  return function()
    while true do
      if items and i < #items then
        i = i + 1
        return items[i]
      end
      if finished then return nil end
      local page, err = client:_execute(M.page_request(req, token))
      if not page then error(err, 0) end
      items, i = page[row.items] or {}, 0
      token = next_token(page, token)
      if not token then finished = true end
    end
  end
end

--- Walks every page without blocking: `on_item(item)` for each item (return `false` to stop),
-- then `on_done(count, err)`. Pages are requested one after the other from the client's driving
-- (`poll`, `run`, or any blocking call); callbacks run from `poll`/`run`.
-- @param client the client
-- @param req prepared request
-- @param on_item function(item)
-- @param on_done optional function(count, err)
-- @return a handle with `done()` and `cancel()`
function M.each(client, req, on_item, on_done)
  local row = req.row
  local token = first_token(req)
  local count = 0
  local handle = { finished = false }
  local current
  local function over(err)
    handle.finished = true
    if on_done then on_done(count, err) end
  end
  local function fetch()
    local page_req = M.page_request(req, token)
    page_req.callback = function(page, err)
      if handle.cancelled then return end
      if not page then return over(err) end
      for _, item in ipairs(page[row.items] or {}) do
        count = count + 1
        if on_item(item) == false then return over(nil) end
      end
      token = next_token(page, token)
      if token then fetch() else over(nil) end
    end
    current = client:_execute(page_req)
  end
  function handle.done() return handle.finished end
  function handle.cancel()
    if handle.finished then return false end
    handle.cancelled = true
    handle.finished = true
    if current then current:cancel() end
    return true
  end
  fetch()
  return handle
end

return M
