-- gemini.safety: the safety = {...} shorthand expanded to wire safetySettings.
local safety = require("gemini.safety")

describe("gemini.safety", function()
  it("expands short aliases to wire settings in category order", function()
    local body = { prompt = { text = "hi" }, safety = { toxicity = "low", derogatory = "none",
      violence = "medium", sexual = "high", medical = "only_high", dangerous = "block_none" } }
    local out = safety.expand(body)
    assert.are.same({ prompt = { text = "hi" }, safetySettings = {
      { category = "HARM_CATEGORY_DEROGATORY", threshold = "BLOCK_NONE" },
      { category = "HARM_CATEGORY_TOXICITY", threshold = "BLOCK_LOW_AND_ABOVE" },
      { category = "HARM_CATEGORY_VIOLENCE", threshold = "BLOCK_MEDIUM_AND_ABOVE" },
      { category = "HARM_CATEGORY_SEXUAL", threshold = "BLOCK_ONLY_HIGH" },
      { category = "HARM_CATEGORY_MEDICAL", threshold = "BLOCK_ONLY_HIGH" },
      { category = "HARM_CATEGORY_DANGEROUS", threshold = "BLOCK_NONE" },
    } }, out)
  end)

  it("does not modify the body it is given", function()
    local body = { safety = { toxicity = "low" } }
    local out = safety.expand(body)
    assert.are_not.equal(body, out)
    assert.are.same({ safety = { toxicity = "low" } }, body)
    assert.is_nil(out.safety)
  end)

  it("is case-insensitive and accepts full wire names", function()
    local out = safety.expand({ safety = { HARM_CATEGORY_TOXICITY = "BLOCK_MEDIUM_AND_ABOVE", Violence = "Low",
      harm_category_sexual = "block_only_high", DANGEROUS = "NONE" } })
    assert.are.same({
      { category = "HARM_CATEGORY_TOXICITY", threshold = "BLOCK_MEDIUM_AND_ABOVE" },
      { category = "HARM_CATEGORY_VIOLENCE", threshold = "BLOCK_LOW_AND_ABOVE" },
      { category = "HARM_CATEGORY_SEXUAL", threshold = "BLOCK_ONLY_HIGH" },
      { category = "HARM_CATEGORY_DANGEROUS", threshold = "BLOCK_NONE" },
    }, out.safetySettings)
  end)

  it("sets every category from a single threshold string", function()
    local out = safety.expand({ safety = "none" })
    assert.are.equal(6, #out.safetySettings)
    for i, s in ipairs(out.safetySettings) do
      assert.are.equal(safety.CATEGORIES[i], s.category)
      assert.are.equal("BLOCK_NONE", s.threshold)
    end
  end)

  it("keeps explicit safetySettings and adds the shorthand", function()
    local out = safety.expand({
      safetySettings = { { category = "HARM_CATEGORY_MEDICAL", threshold = "BLOCK_NONE" } },
      safety = { toxicity = "high" } })
    assert.are.same({
      { category = "HARM_CATEGORY_MEDICAL", threshold = "BLOCK_NONE" },
      { category = "HARM_CATEGORY_TOXICITY", threshold = "BLOCK_ONLY_HIGH" },
    }, out.safetySettings)
  end)

  it("returns a body without shorthand unchanged", function()
    local body = { prompt = { text = "x" } }
    assert.are.equal(body, safety.expand(body))
  end)

  it("raises on an unknown category, listing the valid ones", function()
    local ok, err = pcall(safety.expand, { safety = { rudeness = "low" } })
    assert.is_false(ok)
    assert.matches('unknown harm category "rudeness"', err, 1, true)
    assert.matches("derogatory, toxicity, violence, sexual, medical, dangerous", err, 1, true)
  end)

  it("raises on an unknown threshold, listing the valid ones", function()
    local ok, err = pcall(safety.expand, { safety = { toxicity = "lots" } })
    assert.is_false(ok)
    assert.matches('unknown block threshold "lots" for toxicity', err, 1, true)
    assert.matches("none (block_none), low (block_low_and_above)", err, 1, true)
    ok, err = pcall(safety.expand, { safety = { toxicity = 3 } })
    assert.is_false(ok)
    assert.matches('unknown block threshold "3"', err, 1, true)
    ok, err = pcall(safety.expand, { safety = "sometimes" })
    assert.is_false(ok)
    assert.matches('unknown block threshold "sometimes"', err, 1, true)
  end)

  it("raises when a category is both in safety and safetySettings", function()
    local ok, err = pcall(safety.expand, {
      safetySettings = { { category = "HARM_CATEGORY_TOXICITY", threshold = "BLOCK_NONE" } },
      safety = { toxicity = "low" } })
    assert.is_false(ok)
    assert.matches("category HARM_CATEGORY_TOXICITY is in both safety and safetySettings", err, 1, true)
  end)

  it("raises on a shorthand of the wrong type", function()
    local ok, err = pcall(safety.expand, { safety = 5 })
    assert.is_false(ok)
    assert.matches("safety must be a table or a threshold string, got number", err, 1, true)
  end)

  it("resolves single aliases", function()
    assert.are.equal("HARM_CATEGORY_MEDICAL", safety.category("Medical"))
    assert.are.equal("BLOCK_ONLY_HIGH", safety.threshold("only_high"))
    assert.has_error(function() safety.category("nope") end)
  end)
end)
