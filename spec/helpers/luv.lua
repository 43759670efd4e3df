--- Spec helper: the luv module, kept alive for the whole busted process.
--
--    local uv = require("spec.helpers.luv")    -- instead of require("luv") in a spec file
--
-- busted runs each spec file insulated: the modules a file required are dropped from package.loaded
-- when it ends. A luv module table that becomes garbage takes its loop with it (its `_loop` userdata's
-- __gc closes the loop and Lua frees the memory), but luv keeps the loop pointer in its per-state
-- context and hands it to the next require("luv"): that file then runs on freed memory and the
-- process crashes (uv_walk, uv_run) or corrupts the heap, depending on what reused it (luvit/luv#244,
-- #819, fixed upstream by luvit/luv#821; Debian 12 ships luv 1.44.2 without the fix). Every spec file
-- that uses luv takes it from here: the first module table is anchored in the registry, which
-- insulation does not touch, so the one loop lives until the process exits.
-- spec/luv_lifecycle_spec.lua checks this in a child process.
-- @module spec.helpers.luv

local KEY = "lua-gemini spec: luv module (spec/helpers/luv.lua)"
local registry = debug.getregistry()
local uv = registry[KEY]
if uv == nil then
  uv = require("luv")
  registry[KEY] = uv
end
return uv
