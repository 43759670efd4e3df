--- Deterministic hashing and pseudo-random numbers without bitwise operators
-- (portable across Lua 5.1, LuaJIT, 5.3 and 5.4).
-- @module gemini.emulator.rand

local M = {}

local floor = math.floor
local MOD = 2147483647 -- 2^31 - 1 (Park-Miller)

--- A 31-bit hash of a string (polynomial, exact in doubles).
-- @param s string
-- @param h optional starting value
function M.hash(s, h)
  h = h or 5381
  for i = 1, #s do
    h = (h * 131 + s:byte(i)) % MOD
  end
  return h
end

--- A generator: returns a function giving floats in [0, 1) (or integers in [1, n] when called with n).
-- @param seed any number or string
function M.new(seed)
  local x
  if type(seed) == "string" then x = M.hash(seed) else x = floor(seed or 1) % MOD end
  if x <= 0 then x = x + 12345 end
  return function(n)
    x = (x * 48271) % MOD
    local r = (x - 1) / (MOD - 1)
    if n then return floor(r * n) + 1 end
    return r
  end
end

local ALNUM = "abcdefghijklmnopqrstuvwxyz0123456789"

--- A random id of `len` characters from [a-z0-9] (first character a letter when `letter_first`).
function M.id(gen, len, letter_first)
  local t = {}
  for i = 1, len do
    local k = gen(letter_first and i == 1 and 26 or 36)
    t[i] = ALNUM:sub(k, k)
  end
  return table.concat(t)
end

return M
