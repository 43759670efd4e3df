--- Pagination: iterators over every item of every page of a list method.
--
--    for m in client:models{ pageSize = 50 } do print(m.name) end
--
-- The iterator fetches pages lazily (one request per page, following `nextPageToken`) and raises
-- the error object (see `gemini.errors`) if a page fails. Arguments are checked when the iterator
-- is made, before any request.
-- @module gemini.pager

local M = {}

--- Makes an iterator from a prepared request record (see `client:_prepare`).
-- @param client the client
-- @param req prepared request (its row has `items`)
-- @return iterator function yielding items
function M.iterate(client, req)
  local row = req.row
  local items, i = nil, 0
  local finished = false
  local token
  local base_query = {}
  for _, kv in ipairs(req.query) do
    if kv[1] ~= "pageToken" then base_query[#base_query + 1] = kv end
  end
  if req.query then
    for _, kv in ipairs(req.query) do if kv[1] == "pageToken" then token = kv[2] end end
  end
  local pages = 0
  return function()
    while true do
      if items and i < #items then
        i = i + 1
        return items[i]
      end
      if finished then return nil end
      local q = {}
      for k, kv in ipairs(base_query) do q[k] = kv end
      if token then
        -- pageToken keeps its place in the row's query order
        local ordered = {}
        for _, spec in ipairs(row.query) do
          for _, kv in ipairs(q) do if kv[1] == spec[1] then ordered[#ordered + 1] = kv end end
          if spec[1] == "pageToken" then ordered[#ordered + 1] = { "pageToken", token } end
        end
        q = ordered
      end
      local page_req = setmetatable({}, getmetatable(req))
      for k, v in pairs(req) do page_req[k] = v end
      page_req.query = q
      page_req.callback = nil
      page_req.attempts = 0
      page_req.finished, page_req.result, page_req.err = nil, nil, nil
      local page, err = client:_execute(page_req)
      if not page then error(err, 0) end
      pages = pages + 1
      items, i = page[row.items] or {}, 0
      local nt = page.nextPageToken
      if type(nt) == "string" and nt ~= "" and nt ~= token then
        token = nt
      else
        finished = true
      end
    end
  end
end

return M
