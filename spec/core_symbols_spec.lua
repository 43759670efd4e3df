--- The built gemini.core exports only its entry point (the Makefile compiles with -fvisibility=hidden):
-- internal helpers (gm_*) cannot clash with another module's symbols in the host process.
describe("gemini.core shared object", function()
  it("exports luaopen_gemini_core and nothing else of its own", function()
    local so = package.searchpath and package.searchpath("gemini.core", package.cpath)
    if not so or not so:match("%.so$") then return pending("no core.so on package.cpath") end
    local p = io.popen("nm -D --defined-only '" .. so .. "' 2>/dev/null")
    local out = p:read("*a")
    p:close()
    if out == "" then return pending("nm is not available") end
    local exported = {}
    for kind, name in out:gmatch("%x+ (%a) ([%w_@.]+)") do
      -- text and data symbols; the linker's own (_init, _fini, __bss_start, _end, _edata) start with _
      if kind:match("[TDBR]") and not name:match("^_") then exported[#exported + 1] = name end
    end
    table.sort(exported)
    assert.same({ "luaopen_gemini_core" }, exported)
  end)
end)
