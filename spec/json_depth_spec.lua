-- Nesting limits and cycles in json.lua's walks (HACKING.md, "The Lua layer"): a request body or a
-- free-form value that holds itself, or nests past json.MAX_DEPTH levels, raises a clear error at once
-- and sends nothing; a reply that a user codec hands back with a cycle or absurd nesting is decoded as
-- far as it goes and returned, never looping or overflowing the Lua stack. With the C codec on and off.
local json = require("gemini.json")
local schema = require("gemini.schema")
local cjson = require("cjson").new()
local helper = require("spec.helpers.emulator")

local MAX = json.MAX_DEPTH
local ANY_NODE = "type.googleapis.com/" .. schema.package .. ".DepthSpec.Node"

-- the real schema has no recursive message and no free-form field: one of each, hung under TextPrompt
-- while this file runs (teardown restores the schema)
local NODE = { name = "DepthSpec.Node", fields = {
  { name = "child", json = "child", type = "message", message = "DepthSpec.Node", repeated = false },
  { name = "n", json = "n", type = "int32", repeated = false },
  { name = "kids", json = "kids", type = "message", message = "DepthSpec.Node", repeated = true },
  { name = "extra", json = "extra", type = "any", repeated = false },
} }
local PROMPT_EXTRA = {
  { name = "depth_spec", json = "depthSpec", type = "message", message = "DepthSpec.Node", repeated = false },
  { name = "depth_any", json = "depthAny", type = "any", repeated = false },
}

-- fn(on) with the C codec on, then off (json.native(false): the Lua fast paths); native(true) after
local function both(fn)
  for _, on in ipairs({ true, false }) do
    assert.equal(on, json.native(on))
    local ok, err = pcall(fn, on)
    json.native(true)
    if not ok then error(err, 0) end
  end
end

-- the error a call raises
local function raised(f, ...)
  local ok, err = pcall(f, ...)
  assert.is_false(ok, "expected an error")
  return err
end

-- a chain of `levels` DepthSpec.Node objects (the outermost is level 1) ending in { n = 1 }
local function chain(levels)
  local t = { n = 1 }
  for _ = 2, levels do t = { child = t } end
  return t
end

local function nested_arrays(levels)
  local t = json.array()
  for _ = 2, levels do t = { t } end
  return t
end

describe("json nesting limits and cycles", function()
  local emu = helper.with_emulator {}
  local client, prompt_fields

  setup(function()
    client = emu:client { retry = false }
    local prompt = schema.messages.TextPrompt
    prompt_fields = prompt.fields
    local fields = {}
    for i, f in ipairs(prompt_fields) do fields[i] = f end
    for _, f in ipairs(PROMPT_EXTRA) do fields[#fields + 1] = f end
    prompt.fields = fields
    schema.messages["DepthSpec.Node"] = NODE
    json.native(true, true)   -- the C plan and json.lua's indexes, from the schema as it is now
  end)

  teardown(function()
    schema.messages.TextPrompt.fields = prompt_fields
    schema.messages["DepthSpec.Node"] = nil
    json.native(true, true)
  end)

  local function generate(prompt)
    return raised(client.generate_text, client, "text-bison-001", { prompt = prompt })
  end

  it("has the limits HACKING.md states", function()
    assert.equal(64, json.FAST_DEPTH)
    assert.equal(128, json.MAX_DEPTH)
  end)

  it("a body that holds itself raises at once, naming the cycle, and sends nothing", function()
    both(function()
      local node = { n = 1 }
      node.child = node
      assert.equal("bad argument #2 to 'generate_text' (a cycle: field 'prompt.depthSpec' contains itself " ..
        "(at 'prompt.depthSpec.child'))", generate({ text = "x", depthSpec = node }))
      local kid = { n = 2 }
      kid.kids = { { n = 3 }, { child = kid } }
      assert.equal("bad argument #2 to 'generate_text' (a cycle: field 'prompt.depthSpec.child' contains itself " ..
        "(at 'prompt.depthSpec.child.kids[1].child'))", generate({ text = "x", depthSpec = { child = kid } }))
      -- in a free-form value, and in an Any whose @type names a message
      local free = { b = 1 }
      free.a = { 1, free }
      assert.equal("bad argument #2 to 'generate_text' (a cycle: field 'prompt.depthAny' contains itself " ..
        "(at 'prompt.depthAny.a[1]'))", generate({ text = "x", depthAny = free }))
      local any = { ["@type"] = ANY_NODE }
      any.extra = { any }
      assert.equal("bad argument #2 to 'generate_text' (a cycle: field 'prompt.depthAny' contains itself " ..
        "(at 'prompt.depthAny.extra[0]'))", generate({ text = "x", depthAny = any }))
      -- the body itself
      local body = {}
      body.prompt = { text = "x", depthSpec = { extra = body } }
      assert.equal("bad argument #2 to 'generate_text' (a cycle: GenerateTextRequest contains itself " ..
        "(at 'prompt.depthSpec.extra'))", raised(client.generate_text, client, "text-bison-001", body))
      -- fields of the real schema cannot nest: the first unknown key is named, as before
      local t = { text = "x" }
      t.x = t
      assert.equal("bad argument #2 to 'generate_text' (unknown field 'x' in TextPrompt at 'prompt')", generate(t))
    end)
    assert.same({}, emu:requests())
  end)

  it("a 1000-level body raises 'nests deeper than 128 levels' at once and sends nothing", function()
    both(function()
      local err = generate({ text = "x", depthSpec = chain(1000) })
      assert.matches("bad argument #2 to 'generate_text' (field 'prompt.depthSpec.child.child.child", err, 1, true)
      assert.matches("child.child.child' nests deeper than 128 levels)", err, 1, true)
      err = generate({ text = "x", depthAny = nested_arrays(1000) })
      assert.matches("bad argument #2 to 'generate_text' (field 'prompt.depthAny[0][0][0]", err, 1, true)
      assert.matches("[0][0]' nests deeper than 128 levels)", err, 1, true)
    end)
    assert.same({}, emu:requests())
  end)

  it("json:encode raises on a free-form value that holds itself or nests past 128 levels", function()
    both(function()
      local J = json.new()
      local cyc = {}
      cyc.x = cyc
      assert.equal("cannot encode JSON: a cycle: the value contains itself (at 'x')", raised(J.encode, J, cyc))
      local inner = { b = {} }
      inner.b.c = inner
      assert.equal("cannot encode JSON: a cycle: 'a' contains itself (at 'a.b.c')",
        raised(J.encode, J, { a = inner, z = 1 }))
      local arr = {}
      arr[1] = { arr }
      assert.equal("cannot encode JSON: a cycle: the value contains itself (at '[0][0]')", raised(J.encode, J, arr))
      local err = raised(J.encode, J, nested_arrays(1000))
      assert.matches("^cannot encode JSON: nesting deeper than 128 levels %(at '%[0%]%[0%]", err)
      assert.matches("[0][0]')", err, 1, true)
      -- a table met twice, but not inside itself, is no cycle
      local shared = { 1, 2 }
      assert.equal('{"a":[1,2],"b":[1,2]}', J:encode({ a = shared, b = shared }))
    end)
  end)

  it("nesting up to 128 levels encodes, the same bytes with the C codec on and off", function()
    for _, levels in ipairs({ 1, 63, 64, 65, 66, 100, MAX }) do
      local want = ('{"child":'):rep(levels - 1) .. '{"n":1}' .. ("}"):rep(levels - 1)
      both(function()
        local J = json.new()
        assert.equal(want, J:encode_message("DepthSpec.Node", chain(levels)))
        assert.equal(want, J:encode(chain(levels)))
      end)
    end
    -- one more level raises; the levels of a free-form value count from the body's top
    both(function()
      local J = json.new()
      assert.matches("^field 'child%.child.*child' nests deeper than 128 levels$",
        raised(J.encode_message, J, "DepthSpec.Node", chain(MAX + 1)))
      assert.matches("^cannot encode JSON: nesting deeper than 128 levels", raised(J.encode, J, chain(MAX + 1)))
      assert.equal(("["):rep(MAX) .. ("]"):rep(MAX), J:encode(nested_arrays(MAX)))
      local body = { extra = nested_arrays(MAX - 1) }   -- 1 + 127 levels
      assert.equal('{"extra":' .. ("["):rep(MAX - 1) .. ("]"):rep(MAX - 1) .. "}",
        J:encode_message("DepthSpec.Node", body))
      body = { extra = nested_arrays(MAX) }
      assert.matches("^field 'extra%[0%].*%[0%]' nests deeper than 128 levels$",
        raised(J.encode_message, J, "DepthSpec.Node", body))
      -- a legal body through the client still goes out
      assert(client:generate_text("text-bison-001", { prompt = { text = "hello" } }))
    end)
    assert.equal(2, #emu:requests())
  end)

  it("a reply a user codec hands back holding itself is decoded as far as it goes and returned", function()
    local loops = {}
    local codec = { encode = cjson.encode, null = cjson.null, decode = function(s)
      local t = cjson.decode(s)
      local cyc = { gone = cjson.null, kept = { cjson.null } }
      cyc.self, cyc.list = cyc, { cyc, { cyc } }
      t.extra = cyc
      loops[#loops + 1] = cyc
      return t
    end }
    local c = emu:client { retry = false, json = codec }
    both(function()
      local res, err = c:generate_text("text-bison-001", { prompt = { text = "hello" } })
      assert.is_nil(err)
      assert.is_string(res.candidates[1].output)
      local cyc = loops[#loops]
      assert.equal(cyc, res.extra)
      assert.equal(cyc, res.extra.self)
      assert.is_nil(cyc.gone)                       -- nulls of object keys are dropped, as in any reply
      assert.equal(cjson.null, cyc.kept[1])         -- (array items keep theirs)
    end)
    assert.equal(2, #loops)
  end)

  it("decode_reply and decode_any end on tables that hold themselves or nest 1000 levels", function()
    both(function()
      local J = json.new()
      local node = { n = "7" }
      node.child = node
      node.kids = { node, { child = node, n = "8" } }
      assert.equal(node, J:decode_reply("DepthSpec.Node", node))
      assert.equal(7, node.n)
      assert.equal(8, node.kids[2].n)
      -- an Any (with and without a known @type) holding itself
      local any = { ["@type"] = ANY_NODE, n = "3", gone = J.null }
      any.extra = any
      any.child = { extra = { any, any } }
      assert.equal(any, J:decode_any(any))
      assert.equal(3, any.n)
      assert.is_nil(any.gone)
      local free = { gone = J.null }
      free.a, free.b = free, { free, free }
      assert.equal(free, J:decode_any(free))
      assert.is_nil(free.gone)
      -- 1000 levels: the first 128 are decoded, the rest left as they are
      local deep = { n = "1", gone = J.null }
      local top = deep
      for i = 2, 1000 do
        deep.child = { n = tostring(i), gone = J.null }
        deep = deep.child
      end
      assert.equal(top, J:decode_reply("DepthSpec.Node", top))
      assert.equal(1, top.n)
      assert.is_nil(top.gone)
      assert.equal("1000", deep.n)
      local free_deep = { gone = J.null }
      local inner = free_deep
      for _ = 2, 1000 do
        inner.x = { gone = J.null }
        inner = inner.x
      end
      assert.equal(free_deep, J:decode_any(free_deep))
      assert.is_nil(free_deep.gone)
      assert.equal(J.null, inner.gone)
      local reply = { candidates = { { output = "o" } }, extra = free_deep }
      assert.equal(reply, J:decode_reply("GenerateTextResponse", reply))
    end)
  end)

  it("cycles with many ways back end at once #timing", function()
    -- a walk that only stopped at a depth limit would take 2^64 steps on these
    both(function()
      local J = json.new()
      local t0 = os.clock()
      local node = { n = 1 }
      node.child, node.kids = node, { node, node, node }
      assert.matches("^a cycle: DepthSpec.Node contains itself", raised(J.encode_message, J, "DepthSpec.Node", node))
      local free = {}
      free.a, free.b, free.c = free, free, { free, free }
      assert.matches("^cannot encode JSON: a cycle", raised(J.encode, J, free))
      assert.equal(free, J:decode_any(free))
      assert.equal(free, select(1, J:decode_reply("GenerateTextResponse", { candidates = {}, extra = free })).extra)
      assert.equal(node, J:decode_reply("DepthSpec.Node", node))
      assert.is_true(os.clock() - t0 < 1, "took " .. (os.clock() - t0) .. " s of CPU")
    end)
  end)
end)
