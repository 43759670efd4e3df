-- Every script in examples/ runs against the emulator (GEMINI_BASE_URL/GEMINI_API_KEY), so none can rot.
local helper = require("spec.helpers.emulator")

local ROOT = helper.root() .. "/"
local shquote = helper.shquote
local function readfile(path) return helper.readfile(path) or "" end

-- What each script is given and must print. Scripts not listed here must still exit 0.
local CASES = {
  ["quickstart.lua"] = { expect = {} },
  ["chat_repl.lua"] = {
    stdin = "Hello\nWhat is Lua?\n/undo\n/tokens\n/history\n[[block:other]] hi\n/quit\n",
    expect = { "model> ", "(forgot: What is Lua?)", "tokens in the conversation", "0: Hello\n1: ",
      "(blocked: blocked by filter OTHER)", "2 messages in the history" },
  },
  ["semantic_search.lua"] = {
    expect = { "indexed 5 files from", "query: which language do editors embed for plugins?", "1. lua.txt" },
  },
  ["tune_from_csv.lua"] = {
    expect = { "10 examples from", "operation tunedModels/", "100.0% step 5/5", " is ACTIVE", "41 -> ",
      "OWNER   USER   alice@example.com", "READER  USER   reader@example.com", "deleted tunedModels/" },
  },
  ["async_batch_embed.lua"] = {
    expect = { "embedded 250 texts in 3 ", "text 250 has 768 dimensions" },
  },
  ["error_handling.lua"] = {
    expect = { "1. NOT_FOUND (HTTP 404)", "2. text = nil; blocked by filter SAFETY",
      "with safety = { toxicity = 'none' }: answered", "3. raised: true: bad argument #2 to 'generate_text'",
      "did you mean 'temperature'?", "raised: true: bad argument #1 to 'model'", "4. code = nil, status = UNAVAILABLE",
      "5. check the name" },
  },
}

local function list_examples()
  local names = {}
  local p = assert(io.popen("ls -1 " .. shquote(ROOT .. "examples")))
  for name in p:lines() do
    if name:match("%.lua$") then names[#names + 1] = name end
  end
  p:close()
  table.sort(names)
  return names
end

describe("examples/", function()
  local emu = helper.with_emulator{ "--api-key", "example-key=alice@example.com", tuning_step_ms = 10, reset = false }

  local function run(script, stdin)
    local out, input = os.tmpname(), os.tmpname()
    local f = assert(io.open(input, "wb"))
    f:write(stdin or "")
    f:close()
    local cmd = ("cd %s && GEMINI_BASE_URL=%s GEMINI_API_KEY=example-key lua5.4 examples/%s <%s >%s 2>&1; echo $?")
      :format(shquote(ROOT), shquote(emu.url), script, input, out)
    local p = assert(io.popen(cmd))
    local code = tonumber(p:read("*a"):match("(%d+)%s*$"))
    p:close()
    local text = readfile(out)
    os.remove(out); os.remove(input)
    return code, text
  end

  it("ships the use-case scripts", function()
    local have = {}
    for _, n in ipairs(list_examples()) do have[n] = true end
    for name in pairs(CASES) do assert.is_true(have[name] == true, "missing examples/" .. name) end
  end)

  for _, name in ipairs(list_examples()) do
    local case = CASES[name] or { expect = {} }
    it(name .. " runs and prints what it promises", function()
      local code, text = run(name, case.stdin)
      assert.are.equal(0, code, name .. " failed:\n" .. text)
      assert.is_true(#text > 0, name .. " printed nothing")
      for _, want in ipairs(case.expect) do
        assert.is_truthy(text:find(want, 1, true), name .. " did not print " .. want .. "\n--- output:\n" .. text)
      end
    end)
  end
end)
