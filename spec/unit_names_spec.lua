-- Pure unit tests of gemini.names: patterns, short names, refusals, query encoding.
local names = require("gemini.names")

describe("gemini.names", function()
  it("expands short names to their collection", function()
    assert.equal("models/text-bison-001", names.check("model", "text-bison-001"))
    assert.equal("models/gemini-1.5-flash-001", names.check("model", "gemini-1.5-flash-001"))
    assert.equal("tunedModels/abc", names.check("tuned_model", "abc"))
    assert.equal("corpora/c1", names.check("corpus", "c1"))
    assert.equal("models/x", names.check("generative_model", "x"))
    assert.equal("tunedModels/x", names.check("generative_model", "tunedModels/x"))
  end)

  it("accepts full names of every kind", function()
    assert.equal("tunedModels/a/permissions/p1", names.check("permission", "tunedModels/a/permissions/p1"))
    assert.equal("corpora/a/permissions/p1", names.check("permission", "corpora/a/permissions/p1"))
    assert.equal("tunedModels/a/operations/op1", names.check("operation", "tunedModels/a/operations/op1"))
    assert.equal("corpora/a", names.check("permission_parent", "corpora/a"))
    assert.equal("tunedModels/a", names.check("permission_parent", "tunedModels/a"))
  end)

  local refused = {
    { "model", "models/a/b", "expected models/{id}" },
    { "model", "tunedModels/a", "expected models/{id}" },
    { "model", "models/", "empty segment" },
    { "model", "models/..", "'..'" },
    { "model", "..", "'..'" },
    { "model", "models/a?key=x", "would add a query" },
    { "model", "models/a#frag", "would add a fragment" },
    { "model", "models/a b", "whitespace" },
    { "model", "models/a\nb", "control character" },
    { "model", "models/a%2Fb", "percent" },
    { "model", "models/a:generateText", "would change the method" },
    { "model", "", "empty resource name" },
    { "permission_parent", "abc", "expected tunedModels/{id} or corpora/{id}" },
    { "permission", "tunedModels/a/permissions", "expected" },
    { "operation", "tunedModels/a/operations/../x", "'..'" },
  }
  for _, case in ipairs(refused) do
    it("refuses " .. string.format("%q", case[2]) .. " as " .. case[1], function()
      local full, why = names.check(case[1], case[2])
      assert.is_nil(full)
      assert.matches(case[3], why, 1, true)
    end)
  end

  it("refuses non-strings", function()
    local full, why = names.check("model", nil)
    assert.is_nil(full)
    assert.equal("expected a resource name (string), got nil", why)
  end)

  it("raises argument errors with the position", function()
    local ok, err = pcall(names.arg, "model", "a/b", 2, "get_model")
    assert.is_false(ok)
    assert.matches("bad argument #2 to 'get_model' (invalid name \"a/b\"", err, 1, true)
  end)

  it("percent-encodes query values", function()
    assert.equal("owner%3Ame", names.escape("owner:me"))
    assert.equal("a%20b%26c%3Dd%3F%23", names.escape("a b&c=d?#"))
    assert.equal("?pageSize=5&filter=owner%3Ame", names.query({ { "pageSize", "5" }, { "filter", "owner:me" } }))
    assert.equal("", names.query({}))
  end)
end)
