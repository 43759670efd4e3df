--- Spec helper: a seeded Park-Miller generator, the same sequence on every interpreter (products stay
-- below 2^53, so Lua 5.1's doubles and 5.3+'s integers agree).
--
--    local r = require("spec.helpers.rng")(42)
--    r()        --> a float in (0, 1)
--    r(1, 6)    --> an integer in 1..6
-- @module spec.helpers.rng
return function(seed)
  local s = seed
  return function(a, b)
    s = s * 16807 % 2147483647
    if not a then return s / 2147483647 end
    return a + s % (b - a + 1)
  end
end
