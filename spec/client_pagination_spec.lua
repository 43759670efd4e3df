-- Pagination across several pages: page methods and iterators, for every list method.
local emulator = require("spec.helpers.emulator")

describe("client pagination", function()
  local emu = emulator.with_emulator { "--api-key", "k1=alice@example.com", "--tuning-step-ms", "5" }
  local client
  setup(function() client = emu:client { retry = false } end)

  local function make_tuned(id)
    local op = assert(client:create_tuned_model({
      displayName = id, baseModel = "models/text-bison-001",
      tuningTask = { trainingData = { examples = { examples = { { textInput = "a", output = "b" } } } } },
    }, { tunedModelId = id }))
    return op
  end

  it("page methods follow nextPageToken by hand", function()
    for i = 1, 5 do make_tuned("tm" .. i) end
    local names, token, pages = {}, nil, 0
    repeat
      local page = assert(client:list_tuned_models { pageSize = 2, pageToken = token })
      pages = pages + 1
      for _, m in ipairs(page.tunedModels) do names[#names + 1] = m.name end
      token = page.nextPageToken
    until not token
    assert.equal(3, pages)
    assert.equal(5, #names)
    local j = emu:requests()
    local last = j[#j]
    assert.matches("^pageSize=2&pageToken=", last.query)
  end)

  it("iterators walk every page lazily", function()
    for i = 1, 5 do make_tuned("it" .. i) end
    local before = #emu:requests()
    local iter = client:tuned_models { pageSize = 2 }
    assert.equal(before, #emu:requests())     -- nothing fetched yet
    local first = iter()
    assert.is_string(first.name)
    assert.equal(before + 1, #emu:requests())
    local n = 1
    for _ in iter do n = n + 1 end
    assert.equal(5, n)
    assert.equal(before + 3, #emu:requests())
    assert.is_nil(iter())               -- stays exhausted
  end)

  it("iterators over permissions and operations cross pages", function()
    local op = make_tuned("perm")
    assert(op:wait { interval = 0.01 })
    for i = 1, 4 do
      assert(client:create_permission("tunedModels/perm",
        { granteeType = "USER", emailAddress = "u" .. i .. "@example.com", role = "READER" }))
    end
    local emails = {}
    for p in client:permissions("tunedModels/perm", { pageSize = 2 }) do emails[#emails + 1] = p.emailAddress end
    assert.equal(5, #emails)   -- the owner plus four readers
    local ops = {}
    for o in client:operations("perm", { pageSize = 1 }) do ops[#ops + 1] = o.name end
    assert.same({ op.name }, ops)
    local models = {}
    for m in client:models { pageSize = 2 } do models[#models + 1] = m.name end
    assert.is_true(#models >= 3)
  end)

  it("each_* walks every page with callbacks, without blocking", function()
    for i = 1, 5 do make_tuned("cb" .. i) end
    local items, total, failure = {}, nil, "unset"
    local h = client:each_tuned_model({ pageSize = 2 }, function(m) items[#items + 1] = m.name end,
      function(count, err) total, failure = count, err end)
    assert.is_false(h.done())
    assert.equal(0, #items)
    client:run()
    assert.is_true(h.done())
    assert.equal(5, #items)
    assert.equal(5, total)
    assert.is_nil(failure)
    -- stop early by returning false
    local seen = 0
    client:each_model({ pageSize = 1 }, function() seen = seen + 1; return seen < 2 end)
    client:run()
    assert.equal(2, seen)
    -- errors arrive in on_done
    emu:control("POST", "/emulator/v1/faults", { rules = { { match = { method = "listPermissions" },
      action = "error", status = 500, errorStatus = "INTERNAL" } } })
    local got
    client:each_permission("tunedModels/cb1", function() end, function(_, err) got = err end)
    client:run()
    assert.equal("INTERNAL", got.status)
  end)

  it("an empty list yields nothing", function()
    local n = 0
    for _ in client:tuned_models() do n = n + 1 end
    assert.equal(0, n)
    local page = assert(client:list_tuned_models())
    assert.is_nil(page.nextPageToken)
  end)

  it("iterators check their arguments at once", function()
    assert.is_false((pcall(client.models, client, { pageSise = 2 })))
    assert.is_false((pcall(client.permissions, client, "nope")))
    assert.equal(0, #emu:requests())
  end)
end)
