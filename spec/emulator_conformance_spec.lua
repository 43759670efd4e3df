-- Conformance of bin/gemini-emulator with clients written by someone else.
--
-- 1. Google's own generated Node client for v1beta3 (@google-ai/generativelanguage, google-gax REST
--    fallback: `$alt=json;enum-encoding=int`, integer enums, x-goog-api-key) runs every method through
--    spec/conformance/conformance.js and prints a JSON summary of what it saw; asserted here.
--    The node dependencies are installed with `npm ci` when missing; without node/npm the block is pending.
-- 2. Raw REST JSON through curl, without `$alt`, the way Google's REST tutorials spoke to the API:
--    snake_case names, the tuning tutorial's body with its trailing commas, the `/v1/` operation poll,
--    `?key=`.
local helper = require "spec.helpers.emulator"
local cjson = require("cjson").new()

local execute, shquote, readfile = helper.execute, helper.shquote, helper.readfile

local CONF = helper.root() .. "/spec/conformance"
local HAVE_NODE = execute("command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1")

describe("emulator conformance with Google's generated Node client (v1beta3, REST fallback)", function()
  if not HAVE_NODE then
    pending("node and npm are not on PATH: the conformance run with @google-ai/generativelanguage is skipped")
    return
  end

  local emu, run, checks, errors
  setup(function()
    if not readfile(CONF .. "/node_modules/@google-ai/generativelanguage/package.json") then
      local log = os.tmpname()
      local ok = execute("npm ci --prefix " .. shquote(CONF) .. " --no-audit --no-fund >" .. shquote(log) .. " 2>&1")
      local out = readfile(log) or ""
      os.remove(log)
      assert(ok, "npm ci --prefix spec/conformance failed (it needs the npm registry):\n" .. out)
    end
    emu = helper.start{ "--api-key", "k1=alice@example.com", "--api-key", "k2=bob@example.com",
      "--tuning-step-ms", "5" }
    local errfile = os.tmpname()
    local p = assert(io.popen("timeout 180 node " .. shquote(CONF .. "/conformance.js") .. " --url " ..
      shquote(emu.url) .. " --key k1 --other-key k2 --other-email bob@example.com 2>" .. shquote(errfile)))
    local out = p:read("*a")
    p:close()
    local stderr = readfile(errfile) or ""
    os.remove(errfile)
    local ok, decoded = pcall(cjson.decode, out)
    assert(ok and type(decoded) == "table", "conformance.js printed no JSON summary:\n" .. out .. "\n" .. stderr)
    run = decoded
    checks, errors = run.checks or {}, run.errors or {}
  end)
  teardown(function() if emu then emu:stop() end end)

  it("ran every step without an unexpected failure", function()
    assert.is_nil(run.fatal)
    assert.same({}, run.failures or {})
  end)

  it("was sent $alt=json;enum-encoding=int on every v1beta3 call, and answered JSON with Google's headers", function()
    assert.same({}, (function()
      local bad = {}
      for _, u in ipairs(run.withoutAlt) do
        if not u:find("/v1/tunedModels/", 1, true) then bad[#bad + 1] = u end  -- google-gax's LRO client sends none
      end
      return bad
    end)())
    -- (the HTML page is the control API's `html` fault, a proxy's page: no Vary)
    assert.same({ "application/json; charset=UTF-8", "text/html; charset=UTF-8" }, run.contentTypes)
    assert.same({ "Origin, Referer, X-Origin" }, (function()
      local v = {}
      for _, x in ipairs(run.varies) do if x ~= cjson.null then v[#v + 1] = x end end
      return v
    end)())
    assert.truthy(run.requests > 40)
  end)

  it("models: get decodes every field, list pages with nextPageToken (autoPaginate and async iterator)", function()
    assert.same({ name = "models/text-bison-001", version = "001", displayName = "Text Bison",
      inputTokenLimit = 8196, outputTokenLimit = 1024,
      supportedGenerationMethods = { "generateText", "countTextTokens", "createTunedTextModel" },
      temperature = 0.7, topP = 0.95, topK = 40 }, checks.getModel)
    local names = { "models/chat-bison-001", "models/text-bison-001", "models/embedding-gecko-001",
      "models/gemini-1.5-flash-001" }
    assert.same(names, checks.listModels.names)
    assert.equal(4, checks.listModels.autoPaginateRequests)  -- pageSize 1: one request per model
    assert.equal(2, checks.listModels.firstPageSize)
    assert.is_true(checks.listModels.nextRequest.hasToken)
    assert.is_true(checks.listModels.rawHasNextPageToken)
    assert.same(names, checks.listModelsAsync)
  end)

  it("generateText: integer enums in the request and on the wire, decoded to names by the client", function()
    local g = checks.generateText
    assert.equal("/v1beta3/models/text-bison-001:generateText?$alt=json%3Benum-encoding=int", g.url)
    assert.is_true(g.requestEnumsInt)
    assert.equal(2, g.candidates)
    assert.is_true(g.outputIsString)
    assert.same({ 1, 2, 3, 4, 5, 6 }, g.rawCategories)
    assert.same({ 1, 1, 1, 1, 1, 1 }, g.rawProbabilities)
    assert.same({ "HARM_CATEGORY_DEROGATORY", "HARM_CATEGORY_TOXICITY", "HARM_CATEGORY_VIOLENCE",
      "HARM_CATEGORY_SEXUAL", "HARM_CATEGORY_MEDICAL", "HARM_CATEGORY_DANGEROUS" }, g.decodedCategories)
    assert.same({ "candidates" }, g.rawKeys)
    local b = checks.generateTextBlocked
    assert.equal(0, b.candidates)
    assert.same({ "SAFETY" }, b.filters)
    assert.same({ 1 }, b.rawFilters)
    assert.same({ "filters", "safetyFeedback" }, b.rawKeys)
    assert.equal("HARM_CATEGORY_TOXICITY", b.feedbackCategory)
    assert.same({ { rating = { category = 2, probability = 4 }, setting = { category = 2, threshold = 2 } } },
      b.rawFeedback)
  end)

  it("countTextTokens, embedText, batchEmbedText, generateMessage, countMessageTokens", function()
    assert.equal(6, checks.countTextTokens.tokenCount)
    assert.same({ dims = 768, norm = 1 }, checks.embedText)
    assert.equal(3, checks.batchEmbedText.count)
    assert.equal(768, checks.batchEmbedText.dims)
    assert.is_true(checks.batchEmbedText.applesCloser)
    assert.same({ { author = "1", hasContent = true } }, checks.generateMessage.candidates)
    assert.same({ { author = "0", content = "hi" } }, checks.generateMessage.messages)
    assert.equal(0, checks.generateMessage.filters)
    assert.equal(23, checks.countMessageTokens.tokenCount)  -- Google's recorded answer
    assert.same({ candidates = 0, filters = { "OTHER" }, messages = 1, rawKeys = { "messages", "filters" },
      rawFilters = { { reason = 2 } } }, checks.generateMessageBlocked)
    assert.same({ 3, 400, { "BadRequest" } }, { errors.tooManyTexts.code, errors.tooManyTexts.httpStatusCode,
      errors.tooManyTexts.statusDetails })
  end)

  it("createTunedModel returns the operation Google returned (no done key, metadata Any)", function()
    local c = checks.createTunedModel
    assert.equal("/v1beta3/tunedModels?$alt=json%3Benum-encoding=int", c.url)
    assert.is_false(c.done)
    assert.equal(6, c.totalSteps)  -- ceil(8 examples x 3 epochs / batch 4)
    assert.matches("^tunedModels/number%-generator%-[a-z0-9]+/operations/[a-z0-9]+$", c.opName)
    assert.same({ name = c.opName, metadata = {
      ["@type"] = "type.googleapis.com/google.ai.generativelanguage.v1beta3.CreateTunedModelMetadata",
      totalSteps = 6, tunedModel = c.metadataTunedModel } }, c.rawBody)
    local early = checks.tunedModelEarly  -- 6 steps of 5 ms: usually still CREATING
    assert.equal(({ CREATING = 1, ACTIVE = 2 })[early.state], early.rawState)
  end)

  it("the client's LRO support polls GET /v1/tunedModels/*/operations/* to the TunedModel", function()
    -- the stock v1beta3 client has no Operations HTTP rule (Google's service config had none)
    assert.is_false(checks.stockLro.ok)
    assert.matches("Cannot build HTTP request", checks.stockLro.message, 1, true)
    local l = checks.lro
    assert.matches("^/v1/tunedModels/number%-generator%-[a-z0-9]+/operations/[a-z0-9]+%?$", l.pollPath)
    assert.is_true(l.done)
    assert.equal(checks.createTunedModel.metadataTunedModel, l.responseName)
    assert.equal(2, l.responseState)  -- ACTIVE
    assert.equal(6, l.metaCompletedSteps)
    assert.equal(100, l.metaCompletedPercent)
    assert.equal(6, l.metaSnapshots)
    assert.is_true(l.rawDone)
    assert.same({ "name", "metadata", "done", "response" }, l.rawKeys)
    assert.equal("type.googleapis.com/google.ai.generativelanguage.v1beta3.TunedModel", l.rawResponseType)
    assert.equal("ACTIVE", l.rawResponseState)  -- that request carried no $alt
  end)

  it("getTunedModel / listTunedModels / updateTunedModel with updateMask / generateText on the tuned model", function()
    local t = checks.getTunedModel
    assert.equal("ACTIVE", t.state)
    assert.equal(2, t.rawState)
    assert.equal("baseModel", t.sourceModel)
    assert.equal("models/text-bison-001", t.baseModel)
    assert.same({ 0.7, 0.95, 40 }, { t.temperature, t.topP, t.topK })
    assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d[.%d]*Z$", t.rawCreateTime)
    assert.equal(6, t.snapshots)
    assert.equal(3, t.hyperparameters.epochCount)
    assert.equal(4, t.hyperparameters.batchSize)
    assert.is_false(t.hasTrainingData)  -- INPUT_ONLY
    assert.same({ "name", "baseModel", "displayName", "state", "createTime", "updateTime", "tuningTask",
      "temperature", "topP", "topK" }, t.rawKeys)
    assert.same({ "startTime", "completeTime", "snapshots", "hyperparameters" }, t.rawTuningTaskKeys)
    assert.equal(2, #checks.listTunedModels.names)
    assert.equal(1, #checks.listTunedModels.firstPage)
    assert.is_true(checks.listTunedModels.hasNext)
    local u = checks.updateTunedModel
    assert.equal("counts up", u.description)
    assert.near(0.2, u.temperature, 1e-6)
    assert.equal("number generator", u.displayName)  -- not in the mask: unchanged
    assert.matches("?updateMask=description%2Ctemperature&", u.url, 1, true)
    assert.same({ "6", "6" }, checks.generateTextTuned.outputs)  -- the training example 5 -> 6
    local f = checks.tunedFromTuned
    assert.equal("tunedModelSource", f.sourceModel)  -- the oneof member that came back
    assert.same({ tunedModel = checks.createTunedModel.metadataTunedModel, baseModel = "models/text-bison-001" },
      f.tunedModelSource)
    assert.is_nil(f.baseModel)
    assert.same({ "tunedModels/from-tuned", 2 }, { f.lroName, f.lroState })
    assert.same({ 10, 16 }, { f.hyperparameters.epochCount, f.hyperparameters.batchSize })
    assert.same({ code = 9, httpStatusCode = 400, statusDetails = {},
      message = "Tuned model tunedModels/slow-tuning is not ready for use: its state is CREATING " ..
        "(it must be ACTIVE)." },
      errors.generateTextNotActive)
  end)

  it("permissions create/get/list/patch/delete with integer enums, roles enforced", function()
    local p = checks.permissions
    assert.same({ { granteeType = "USER", emailAddress = "alice@example.com", role = "OWNER" } }, p.ownerList)
    local c = p.created
    assert.same({ "USER", "bob@example.com", "READER" }, { c.granteeType, c.emailAddress, c.role })
    assert.same({ name = p.created.name, granteeType = 1, emailAddress = "bob@example.com", role = 3 }, p.rawCreated)
    assert.same({ name = p.created.name, role = "READER" }, p.got)
    assert.same({ granteeType = "EVERYONE", role = "READER", hasEmail = false }, p.everyone)
    assert.equal(2, p.firstPage)
    assert.is_true(p.hasNext)
    assert.same({ "OWNER:USER", "READER:USER", "READER:EVERYONE" }, p.all)
    assert.equal(checks.createTunedModel.metadataTunedModel, p.bobSees)
    assert.equal(1, p.bobGenerated)
    assert.equal(7, errors.readerCannotUpdate.code)
    assert.equal("WRITER", p.updatedRole)
    assert.equal("bob was here", p.bobPatched)
    assert.equal(3, errors.updatePermissionNoMask.code)
    assert.same({}, p.deleteReturned)
    assert.equal(5, errors.getDeletedPermission.code)
  end)

  it("transferOwnership and deleteTunedModel return {} and move the roles", function()
    local t = checks.transferOwnership
    assert.same({}, t.returned)
    assert.equal("{}", t.rawBody)
    assert.same({ "alice@example.com:WRITER", "bob@example.com:OWNER" }, t.roles)
    assert.equal(7, errors.oldOwnerCannotDelete.code)
    assert.same({ returned = {}, rawBody = "{}", status = 200 }, checks.deleteTunedModel)
    assert.same({ code = 5, httpStatusCode = 404, statusDetails = {},
      message = "Tuned model " .. checks.createTunedModel.metadataTunedModel .. " does not exist." },
      errors.getDeletedTunedModel)
  end)

  it("a failed tuning rejects operation.promise() with the operation's error (INTERNAL)", function()
    local f = checks.failedTuning
    assert.is_true(f.rejected)
    assert.equal(13, f.error.code)
    assert.equal("FAILED", f.state)
  end)

  it("errors map to the right gRPC codes, messages and details in the client", function()
    local function nf(model, method)
      return model .. " is not found for API version v1beta3, or is not supported for " .. method ..
        ". Call ListModels to see the list of available models and their supported methods."
    end
    assert.same({ code = 5, httpStatusCode = 404, statusDetails = {},
      message = nf("models/no-such-model", "generateText") }, errors.unknownModelGenerate)
    assert.same({ code = 5, httpStatusCode = 404, statusDetails = {},
      message = nf("models/text-bison-001", "embedText") }, errors.unsupportedMethod)
    assert.equal(5, errors.unknownModel.code)
    assert.same({ code = 3, httpStatusCode = 400, statusDetails = { "ErrorInfo" },
      message = "API key not valid. Please pass a valid API key.", reason = "API_KEY_INVALID",
      domain = "googleapis.com", metadata = { service = "generativelanguage.googleapis.com" } }, errors.badKey)
    assert.same({ 3, { "BadRequest" } }, { errors.candidateCountRange.code, errors.candidateCountRange.statusDetails })
    assert.same({ 3, { "BadRequest" } }, { errors.missingPrompt.code, errors.missingPrompt.statusDetails })
    assert.same({ 3, { "BadRequest" } }, { errors.badTunedModelId.code, errors.badTunedModelId.statusDetails })
    assert.same({ code = 5, httpStatusCode = 404, statusDetails = {},
      message = "Tuned model tunedModels/does-not-exist-123 does not exist." }, errors.unknownTunedModel)
    assert.same({ code = 7, httpStatusCode = 403, statusDetails = {},
      message = "You do not have permission to access tuned model tunedModels/alice-private" },
      errors.otherUsersModel)
    assert.equal(5, errors.permissionOnMissingModel.code)
    -- the control API's faults and rate limit, as the client maps them
    assert.same({ code = 14, httpStatusCode = 503, statusDetails = {},
      message = "The service is currently unavailable." }, errors.fault503)
    assert.same({ 13, 502 }, { errors.faultHtml.code, errors.faultHtml.httpStatusCode })
    assert.matches("could not be decoded: the response body is not JSON: <!DOCTYPE html>", errors.faultHtml.message, 1,
      true)
    assert.same({ code = 8, httpStatusCode = 429, statusDetails = { "RetryInfo" },
      message = "Resource has been exhausted (e.g. check quota)." }, errors.rateLimited)
    local u = errors.unknownField
    assert.equal(400, u.httpStatus)
    assert.equal(3, u.code)
    assert.same({ "BadRequest" }, u.statusDetails)
    local m1 = "Invalid JSON payload received. Unknown name \"foo\" at 'prompt': Cannot find field."
    local m2 = "Invalid JSON payload received. Unknown name \"bar\": Cannot find field."
    assert.same({ error = { code = 400, message = m1 .. "\n" .. m2, status = "INVALID_ARGUMENT", details = { {
      ["@type"] = "type.googleapis.com/google.rpc.BadRequest",
      fieldViolations = { { field = "prompt", description = m1 }, { description = m2 } } } } } }, u.raw)
  end)
end)

describe("emulator conformance with raw REST JSON via curl (no $alt), as Google's REST tutorials spoke", function()
  local emu = helper.with_emulator{ "--api-key", "k1=alice@example.com", "--tuning-step-ms", "5", reset = false }

  -- status, decoded body (nil when not JSON), raw body, headers
  local function call(method, path, body, headers) return emu:json(method, path, headers, body) end
  -- top-level keys of a JSON object text, in the order they appear
  local function keys_in_order(raw)
    local keys, depth, i = {}, 0, 1
    while i <= #raw do
      local c = raw:sub(i, i)
      if c == '"' then
        local j = i + 1
        while raw:sub(j, j) ~= '"' do
          if raw:sub(j, j) == "\\" then j = j + 1 end
          j = j + 1
        end
        if depth == 1 and raw:sub(j + 1, j + 1) == ":" then keys[#keys + 1] = raw:sub(i + 1, j - 1) end
        i = j
      elseif c == "{" or c == "[" then depth = depth + 1
      elseif c == "}" or c == "]" then depth = depth - 1 end
      i = i + 1
    end
    return keys
  end

  -- Google's v1beta3 REST tuning tutorial (tuning_quickstart_rest.ipynb), body as sent: snake_case names
  -- and trailing commas; Google answered 200 with the operation (totalSteps 23).
  local TUTORIAL_BODY = [[
{
  "display_name": "number generator model",
  "base_model": "models/text-bison-001",
  "tuning_task": {
    "hyperparameters": {
      "batch_size": 2,
      "learning_rate": 0.001,
      "epoch_count":3,
    },
    "training_data": {
      "examples": {
        "examples": [
          {"text_input": "1", "output": "2",},{"text_input": "3", "output": "4",},
          {"text_input": "-3", "output": "-2",},{"text_input": "twenty two", "output": "twenty three",},
          {"text_input": "two hundred", "output": "two hundred one",},
          {"text_input": "ninety nine", "output": "one hundred",},{"text_input": "8", "output": "9",},
          {"text_input": "-98", "output": "-97",},{"text_input": "1,000", "output": "1,001",},
          {"text_input": "10,100,000", "output": "10,100,001",},{"text_input": "thirteen", "output": "fourteen",},
          {"text_input": "eighty", "output": "eighty one",},{"text_input": "one", "output": "two",},
          {"text_input": "three", "output": "four",},{"text_input": "seven", "output": "eight",}
        ]
      }
    }
  }
}]]

  it("runs Google's tuning tutorial: create (snake_case, trailing commas), poll /v1/{operation}, generate", function()
    local status, op, raw, hdrs = call("POST", "/v1beta3/tunedModels?key=k1", TUTORIAL_BODY,
      { ["x-goog-user-project"] = "my-project" })
    assert.equal(200, status, raw)
    assert.equal("application/json; charset=UTF-8", hdrs["content-type"])
    assert.same({ "name", "metadata" }, keys_in_order(raw))  -- no done key on a fresh operation
    local id = op.metadata.tunedModel:match("^tunedModels/(number%-generator%-model%-[a-z0-9]+)$")
    assert.truthy(id, op.metadata.tunedModel)
    assert.matches("^tunedModels/" .. id:gsub("%-", "%%-") .. "/operations/[a-z0-9]+$", op.name)
    assert.same({ ["@type"] = "type.googleapis.com/google.ai.generativelanguage.v1beta3.CreateTunedModelMetadata",
      totalSteps = 23, tunedModel = "tunedModels/" .. id }, op.metadata)
    assert.truthy(raw:find('"totalSteps": 23,\n    "tunedModel"', 1, true))  -- field order as Google printed it

    -- the tutorial polls GET https://generativelanguage.googleapis.com/v1/{op.name} until response or error
    local polled, praw
    for _ = 1, 200 do
      local st
      st, polled, praw = call("GET", "/v1/" .. op.name .. "?key=k1")
      assert.equal(200, st, praw)
      assert.equal(op.name, polled.name)
      if polled.response or polled.error then break end
      local t0 = os.clock()
      while os.clock() - t0 < 0.01 do end  -- bounded busy wait
    end
    assert.truthy(polled.response, praw)
    assert.same({ "name", "metadata", "done", "response" }, keys_in_order(praw))
    assert.is_true(polled.done)
    local md = polled.metadata
    assert.same({ 23, 23, 100 }, { md.totalSteps, md.completedSteps, md.completedPercent })
    local last = md.snapshots[#md.snapshots]
    assert.same({ 23, 3 }, { last.step, last.epoch })
    assert.is_nil(md.snapshots[1].epoch)  -- epoch 0 omitted
    assert.equal("type.googleapis.com/google.ai.generativelanguage.v1beta3.TunedModel", polled.response["@type"])
    assert.equal("ACTIVE", polled.response.state)  -- enums as names without $alt
    assert.equal("tunedModels/" .. id, polled.response.name)

    -- the operations of the model, under /v1/ as Google's v1 config bound them
    local st, list = call("GET", "/v1/tunedModels/" .. id .. "/operations?key=k1")
    assert.equal(200, st)
    assert.equal(1, #list.operations)
    assert.equal(op.name, list.operations[1].name)

    -- GET the tuned model: the recorded shape (no trainingData: INPUT_ONLY; base model's sampling defaults)
    local st2, tm, tmraw = call("GET", "/v1beta3/tunedModels/" .. id, nil, { ["x-goog-api-key"] = "k1" })
    assert.equal(200, st2)
    assert.same({ "name", "baseModel", "displayName", "state", "createTime", "updateTime", "tuningTask",
      "temperature", "topP", "topK" }, keys_in_order(tmraw))
    assert.same({ epochCount = 3, batchSize = 2, learningRate = 0.001 }, tm.tuningTask.hyperparameters)
    assert.is_nil(tm.tuningTask.trainingData)
    assert.equal(tm.updateTime, tm.tuningTask.completeTime)
    assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.?%d*Z$", tm.createTime)

    -- the tutorial's generateText on the tuned model (snake_case candidate_count)
    local st3, gen = call("POST", "/v1beta3/tunedModels/" .. id .. ":generateText?key=k1",
      '{"prompt": {"text": "3"}, "temperature": 1.0, "candidate_count": 2}')
    assert.equal(200, st3)
    assert.same({ "4", "4" }, { gen.candidates[1].output, gen.candidates[2].output })
  end)

  it("answers the curl quickstart's requests with the recorded shapes", function()
    local st, m, raw = call("GET", "/v1beta3/models/text-bison-001?key=k1")
    assert.equal(200, st)
    assert.equal('{\n  "name": "models/text-bison-001",\n  "version": "001",\n  "displayName": "Text Bison",\n' ..
      '  "description": "Model targeted for text generation.",\n  "inputTokenLimit": 8196,\n' ..
      '  "outputTokenLimit": 1024,\n  "supportedGenerationMethods": [\n    "generateText",\n' ..
      '    "countTextTokens",\n    "createTunedTextModel"\n  ],\n  "temperature": 0.7,\n  "topP": 0.95,\n' ..
      '  "topK": 40\n}', (raw:gsub("\n$", "")))
    assert.equal("models/text-bison-001", m.name)
    local st2, msg = call("POST", "/v1beta3/models/chat-bison-001:generateMessage?key=k1",
      '{"prompt": {"messages": [{"content":"hi"}]}}')
    assert.equal(200, st2)
    assert.equal("1", msg.candidates[1].author)
    assert.same({ { author = "0", content = "hi" } }, msg.messages)
    local _, count = call("POST", "/v1beta3/models/chat-bison-001:countMessageTokens?key=k1",
      '{"prompt": {"messages": [{"content":"How many tokens?"}, {"content":"For this whole conversation?"}]}}')
    assert.same({ tokenCount = 23 }, count)
    local _, emb, eraw = call("POST", "/v1beta3/models/embedding-gecko-001:embedText?key=k1",
      '{"text": "say something nice!"}')
    assert.equal(768, #emb.embedding.value)
    assert.same({ "embedding" }, keys_in_order(eraw))
    local _, blocked, braw = call("POST", "/v1beta3/models/text-bison-001:generateText?key=k1",
      '{"prompt":{"text":"Tell me about the stock ESPR [[block:other]]"}}')
    assert.same({ filters = { { reason = "OTHER" } } }, blocked)
    assert.same({ "filters" }, keys_in_order(braw))
    local _, all = call("POST", "/v1beta3/models/text-bison-001:generateText?key=k1",
      '{"prompt":{"text":"Write a title"},"safetySettings":[{"category":"HARM_CATEGORY_TOXICITY",' ..
      '"threshold":"BLOCK_ONLY_HIGH"}],"stopSequences":["Title"],"temperature":1.0,"candidate_count":3,' ..
      '"maxOutputTokens":800,"topP":0.8,"topK":10}')
    assert.equal(3, #all.candidates)
    assert.equal(6, #all.candidates[1].safetyRatings)
  end)

  it("gives Google's error bodies and headers for the recorded failures", function()
    local st, body, _, hdrs = call("POST", "/v1beta3/models/textembedding-gecko-multilingual:embedText?key=k1",
      '{"text":"Hello","model":"textembedding-gecko-multilingual"}')
    assert.equal(404, st)
    assert.equal("application/json; charset=UTF-8", hdrs["content-type"])
    assert.equal("Origin, Referer, X-Origin", hdrs["vary"])
    assert.same({ error = { code = 404, status = "NOT_FOUND", message = "models/textembedding-gecko-multilingual is " ..
      "not found for API version v1beta3, or is not supported for embedText. Call ListModels to see the list of " ..
      "available models and their supported methods." } }, body)
    local st2, body2 = call("POST", "/v1beta3/models/embedding-gecko-001:embedText?key=k1", '{"text":{}}')
    assert.equal(400, st2)
    local d = "Invalid value (text), Starting an object on a scalar field"
    assert.same({ error = { code = 400, message = d, status = "INVALID_ARGUMENT", details = { {
      ["@type"] = "type.googleapis.com/google.rpc.BadRequest", fieldViolations = { { description = d } } } } } }, body2)
    local st3, body3 = call("GET", "/v1beta3/models?key=FAKE_TOKEN")
    assert.equal(400, st3)
    assert.equal("API_KEY_INVALID", body3.error.details[1].reason)
    local st4, body4 = call("GET", "/v1beta3/models?key=")
    assert.equal(403, st4)
    assert.equal("PERMISSION_DENIED", body4.error.status)
    assert.is_nil(body4.error.details)
  end)

  it("pages models with opaque tokens bound to the request (pageSize may change)", function()
    local names, token = {}, nil
    for _ = 1, 10 do
      local st, page = call("GET", "/v1beta3/models?key=k1&pageSize=1" .. (token and ("&pageToken=" .. token) or ""))
      assert.equal(200, st)
      assert.equal(1, #page.models)
      names[#names + 1] = page.models[1].name
      token = page.nextPageToken
      if not token then break end
    end
    assert.same({ "models/chat-bison-001", "models/text-bison-001", "models/embedding-gecko-001",
      "models/gemini-1.5-flash-001" }, names)
    local _, p1 = call("GET", "/v1beta3/models?key=k1&pageSize=1")
    local st, p2 = call("GET", "/v1beta3/models?key=k1&pageSize=3&pageToken=" .. p1.nextPageToken)
    assert.equal(200, st)
    assert.equal(3, #p2.models)
    assert.is_nil(p2.nextPageToken)
    local st3, e3 = call("GET", "/v1beta3/tunedModels?key=k1&pageToken=" .. p1.nextPageToken)
    assert.equal(400, st3)
    assert.equal("INVALID_ARGUMENT", e3.error.status)
  end)
end)
