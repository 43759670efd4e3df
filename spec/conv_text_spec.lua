-- gemini.text: the text of a reply, and a reason naming the filters for a blocked reply.
local text = require("gemini.text")

describe("gemini.text", function()
  local ratings = {
    { category = "HARM_CATEGORY_DEROGATORY", probability = "NEGLIGIBLE" },
    { category = "HARM_CATEGORY_TOXICITY", probability = "NEGLIGIBLE" },
  }

  it("returns the first candidate's output of a generateText reply", function()
    local res = { candidates = { { output = ", world!", safetyRatings = ratings }, { output = "second" } } }
    assert.are.equal(", world!", text(res))
    assert.are.equal(", world!", text.text(res))
    assert.are.equal("second", text(res, 2))
  end)

  it("returns the first candidate's content of a generateMessage reply", function()
    local res = {
      candidates = { { author = "1", content = "Hi! How can I help you today?" } },
      messages = { { author = "0", content = "hi" } },
    }
    assert.are.equal("Hi! How can I help you today?", text(res))
  end)

  it("treats a candidate whose output was omitted (empty string in proto3 JSON) as empty text", function()
    assert.are.equal("", text({ candidates = { { safetyRatings = ratings } } }))
  end)

  it("names the filter of a blocked reply and returns nil", function()
    local t, why = text({ filters = { { reason = "OTHER" } } })
    assert.is_nil(t)
    assert.are.equal("blocked by filter OTHER", why)
  end)

  it("names every filter, its message and the safety feedback", function()
    local res = {
      filters = { { reason = "SAFETY", message = "The prompt was blocked." }, { reason = "OTHER" } },
      safetyFeedback = { {
        rating = { category = "HARM_CATEGORY_TOXICITY", probability = "HIGH" },
        setting = { category = "HARM_CATEGORY_TOXICITY", threshold = "BLOCK_LOW_AND_ABOVE" },
      } },
    }
    local t, why = text(res)
    assert.is_nil(t)
    assert.are.equal("blocked by filters SAFETY: The prompt was blocked.; OTHER "
      .. "(HARM_CATEGORY_TOXICITY rated HIGH (threshold BLOCK_LOW_AND_ABOVE))", why)
  end)

  it("understands enums decoded as numbers", function()
    local _, why = text({
      filters = { { reason = 1 } },
      safetyFeedback = { { rating = { category = 6, probability = 4 }, setting = { category = 6, threshold = 1 } } },
    })
    assert.are.equal("blocked by filter SAFETY (HARM_CATEGORY_DANGEROUS rated HIGH (threshold BLOCK_LOW_AND_ABOVE))",
      why)
  end)

  it("never raises an index error on odd values", function()
    for _, v in ipairs({ {}, { candidates = {} }, { candidates = {}, filters = {} }, { candidates = { 5 } } }) do
      local t, why = text(v)
      assert.is_nil(t)
      assert.is_string(why)
    end
    local t, why = text(nil)
    assert.is_nil(t)
    assert.are.equal("no reply (got nil)", why)
    t, why = text("a string")
    assert.is_nil(t)
    assert.are.equal("no reply (got string)", why)
    t, why = text({ candidates = { { output = "x" } } }, 3)
    assert.is_nil(t)
    assert.are.equal("the reply has 1 candidate(s), no candidate 3", why)
    assert.are.equal("the reply has no candidates", select(2, text({})))
  end)

  it("lists every candidate with all()", function()
    assert.are.same({ "a", "", "c" }, text.all({ candidates = { { output = "a" }, {}, { output = "c" } } }))
    local t, why = text.all({ filters = { { reason = "OTHER" } } })
    assert.is_nil(t)
    assert.are.equal("blocked by filter OTHER", why)
  end)

  it("blocked() is nil for a reply with candidates", function()
    assert.is_nil(text.blocked({ candidates = { { output = "x" } } }))
    assert.are.equal("blocked by filter OTHER", text.blocked({ filters = { { reason = "OTHER" } } }))
  end)
end)
