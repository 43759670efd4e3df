--- Opaque page tokens bound to the request's parameters (all but pageSize, as AIP-158 allows).
-- @module gemini.emulator.pager

local rand = require "gemini.emulator.rand"

local M = {}

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

local function b64(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local k = { math.floor(n / 262144) % 64, math.floor(n / 4096) % 64, math.floor(n / 64) % 64, n % 64 }
    local m = c and 4 or (b and 3 or 2)
    for j = 1, m do out[#out + 1] = B64:sub(k[j] + 1, k[j] + 1) end
  end
  return table.concat(out)
end

local function unb64(s)
  if not s:match("^[%w%-_]*$") then return nil end
  local out = {}
  for i = 1, #s, 4 do
    local chunk = s:sub(i, i + 3)
    local n, m = 0, #chunk
    if m < 2 then return nil end
    for j = 1, 4 do
      local c = chunk:sub(j, j)
      local v = (c ~= "") and (B64:find(c, 1, true) - 1) or 0
      n = n * 64 + v
    end
    local bytes = { math.floor(n / 65536) % 256, math.floor(n / 256) % 256, n % 256 }
    for j = 1, m - 1 do out[#out + 1] = string.char(bytes[j]) end
  end
  return table.concat(out)
end

-- Page sizes per list method: { default, max }.
M.SIZES = {
  listModels = { 50, 1000 }, listTunedModels = { 10, 1000 }, listPermissions = { 10, 1000 },
  listOperations = { 10, 1000 },
}

--- Slice `items` for one page.
-- @param items array
-- @param method list method name (for the sizes)
-- @param page_size requested page size (nil or 0 = default; above max = max; negative = error)
-- @param page_token token from a previous page or nil/""
-- @param binding string identifying the request's other parameters
-- @return page (array), next_token (or nil); or nil, error message
function M.page(items, method, page_size, page_token, binding)
  local sizes = M.SIZES[method] or { 10, 1000 }
  page_size = page_size or 0
  if page_size < 0 then return nil, "page_size must not be negative." , "page_size" end
  if page_size == 0 then page_size = sizes[1] end
  if page_size > sizes[2] then page_size = sizes[2] end
  local sig = tostring(rand.hash(method .. "|" .. binding))
  local offset = 0
  if page_token and page_token ~= "" then
    local raw = unb64(page_token)
    local o, s
    if raw then o, s = raw:match("^o=(%d+);s=(%d+)$") end
    if not o or s ~= sig then
      return nil, "Invalid page token: it does not belong to this request or its parameters changed.", "page_token"
    end
    offset = tonumber(o)
  end
  local page = {}
  for i = offset + 1, math.min(offset + page_size, #items) do page[#page + 1] = items[i] end
  local next_token
  if offset + page_size < #items then next_token = b64("o=" .. (offset + page_size) .. ";s=" .. sig) end
  return page, next_token
end

return M
