--- Permissions on tuned models and corpora: roles, grants and their rules.
--
-- A resource record has `owner` (email) and `perms` (array of { id, granteeType, emailAddress,
-- role }). The creator's OWNER permission is a USER permission like any other. GROUP grants
-- never match a caller (the emulator knows no group membership).
-- @module gemini.emulator.acl

local M = {}

--- Role ranks: larger is more powerful.
M.RANK = { READER = 1, WRITER = 2, OWNER = 3 }

--- The caller's best role on a resource, or nil.
-- @param res resource record
-- @param email caller identity
function M.role(res, email)
  local best, rank = nil, 0
  for _, p in ipairs(res.perms) do
    local match = (p.granteeType == "EVERYONE") or (p.granteeType == "USER" and p.emailAddress == email)
    local r = M.RANK[p.role] or 0
    if match and r > rank then best, rank = p.role, r end
  end
  return best
end

--- Does the caller hold at least role `need`?
function M.allows(res, email, need)
  local r = M.role(res, email)
  return r ~= nil and M.RANK[r] >= M.RANK[need]
end

--- Find a permission by id.
function M.find(res, id)
  for i, p in ipairs(res.perms) do if p.id == id then return p, i end end
end

--- Find the permission for a grantee.
function M.find_grantee(res, grantee_type, email)
  for _, p in ipairs(res.perms) do
    if p.granteeType == grantee_type and (grantee_type == "EVERYONE" or p.emailAddress == email) then return p end
  end
end

--- Give the resource a new owner: the grantee becomes OWNER, the old owner WRITER.
-- @param res resource record
-- @param email new owner
-- @param new_id function returning a fresh permission id
function M.transfer(res, email, new_id)
  if res.owner == email then return end
  for _, p in ipairs(res.perms) do
    if p.role == "OWNER" then p.role = "WRITER" end
  end
  local p = M.find_grantee(res, "USER", email)
  if p then
    p.role = "OWNER"
  else
    res.perms[#res.perms + 1] = { id = new_id(), granteeType = "USER", emailAddress = email, role = "OWNER" }
  end
  res.owner = email
end

return M
