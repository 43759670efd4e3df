-- Embedding at scale: batch_embed_text split into chunks (over 100 texts, and with gemini.batch over the
-- request size limit too), sent concurrently within max_in_flight, a failing chunk retried alone, the
-- embeddings in input order, on_progress(done, total), blocking and callback forms.
local emulator = require("spec.helpers.emulator")
local batch = require("gemini.batch")
local cjson = require("cjson").new()

local KEY = "batch-key-1"
local MODEL = "embedding-gecko-001"

local function texts_of(n, prefix)
  local t = {}
  for i = 1, n do t[i] = (prefix or "text number ") .. i end
  return t
end

describe("batch embedding", function()
  local emu = emulator.with_emulator { "--api-key", KEY, latency = 100 }
  local ref = emulator.with_emulator { "--api-key", KEY, reset = false }
  local refclient
  setup(function() refclient = ref:client { retry = false } end)

  -- The reference: the same texts embedded 100 at a time (no splitting involved) by a second emulator.
  local function reference(texts)
    local out = {}
    for first = 1, #texts, 100 do
      local slice = {}
      for i = first, math.min(first + 99, #texts) do slice[#slice + 1] = texts[i] end
      for _, e in ipairs(assert(refclient:batch_embed_text(MODEL, { texts = slice })).embeddings) do
        out[#out + 1] = e
      end
    end
    return out
  end

  -- A client that counts its own requests on the wire at once (through the on_request/on_response
  -- hooks): the emulator computes embeddings on one CPU, so its own count shows less overlap than
  -- the client really has.
  local function counting_client(opts)
    local wire = { now = 0, peak = 0 }
    if opts.retry == nil then opts.retry = false end
    opts.on_request = function() wire.now = wire.now + 1; if wire.now > wire.peak then wire.peak = wire.now end end
    opts.on_response = function() wire.now = wire.now - 1 end
    return emu:client(opts), wire
  end

  describe("client:batch_embed_text", function()
    it("sends 250 texts as 3 concurrent chunks within max_in_flight, embeddings in input order", function()
      local texts = texts_of(250)
      local client, wire = counting_client { max_in_flight = 2 }
      local res = assert(client:batch_embed_text(MODEL, { texts = texts }))
      assert.equal(250, #res.embeddings)
      assert.same(reference(texts), res.embeddings)
      local j = emu:requests()
      assert.equal(3, #j)
      local sizes = {}
      for i, r in ipairs(j) do sizes[i] = #cjson.decode(r.body).texts end
      table.sort(sizes)
      assert.same({ 50, 100, 100 }, sizes)
      assert.equal(2, wire.peak)                -- two chunks at once, never three
      assert.is_true(emu:stats().maxInFlight <= 2)
      client:close()
    end)

    it("retries a failing chunk alone and still returns everything in order", function()
      local texts = texts_of(250, "retry text ")
      local want = reference(texts)
      local client = emu:client { retry = { initial = 0.01, max_attempts = 3 } }
      emu:control("POST", "/emulator/v1/faults", { rules = { { match = { method = "batchEmbedText" },
        action = "error", status = 503, errorStatus = "UNAVAILABLE", times = 1 } } })
      local res = assert(client:batch_embed_text(MODEL, { texts = texts }))
      assert.same(want, res.embeddings)
      local j = emu:requests()
      assert.equal(4, #j)                    -- 3 chunks + 1 retry
      local failed, seen = nil, {}
      for _, r in ipairs(j) do
        if r.status == 503 then assert.is_nil(failed); failed = r.body end
        seen[r.body] = (seen[r.body] or 0) + 1
      end
      assert.is_string(failed)
      assert.equal(2, seen[failed])          -- the failed chunk went again, alone
      local n = 0
      for _, c in pairs(seen) do n = n + c end
      assert.equal(4, n)
      client:close()
    end)

    it("calls on_progress(done, total) and gives the same in callback form", function()
      local texts = texts_of(201)
      local client = emu:client { retry = false }
      local p1, p2 = {}, {}
      local blocking = assert(client:batch_embed_text(MODEL, { texts = texts },
        { on_progress = function(d, t) p1[#p1 + 1] = d .. "/" .. t end }))
      local got, calls = nil, 0
      local req = client:batch_embed_text(MODEL, { texts = texts },
        { on_progress = function(d, t) p2[#p2 + 1] = d .. "/" .. t end },
        function(r, e) calls = calls + 1; got = r; assert.is_nil(e) end)
      assert.is_false(req:done())
      client:run()
      assert.equal(1, calls)
      assert.same(blocking, got)
      assert.same({ "1/3", "2/3", "3/3" }, p1)
      assert.same({ "1/3", "2/3", "3/3" }, p2)
      client:close()
    end)

    it("in callback form, a chunk that fails for good gives one callback with its error", function()
      local client = emu:client { retry = false }
      emu:control("POST", "/emulator/v1/faults", { rules = { { match = { method = "batchEmbedText" },
        action = "error", status = 400, errorStatus = "INVALID_ARGUMENT", message = "bad chunk", times = 1 } } })
      local calls, err = 0, nil
      client:batch_embed_text(MODEL, texts_of(201), function(r, e) calls = calls + 1; err = e; assert.is_nil(r) end)
      client:run()
      assert.equal(1, calls)
      assert.equal("INVALID_ARGUMENT", err.status)
      assert.equal("bad chunk", err.message)
      assert.equal("models/embedding-gecko-001", client:get_model(MODEL).name)   -- still usable
      client:close()
    end)
  end)

  -- 70 texts of 160 KB each (whitespace is free for the emulator's tokenizer): 11 MB in all, over the
  -- API's 10 MiB request limit, so they must go as several requests.
  local function big_texts()
    local pad = string.rep(" ", 160 * 1024)
    local t = {}
    for i = 1, 70 do t[i] = "big" .. i .. pad .. "end" end
    return t
  end

  describe("one splitting rule", function()
    it("client:batch_embed_text splits by request size too, in both forms, like gemini.batch", function()
      local texts = big_texts()
      local client = emu:client { retry = false }
      local p1 = {}
      local res = assert(client:batch_embed_text(MODEL, { texts = texts },
        { on_progress = function(d, t) p1[#p1 + 1] = d .. "/" .. t end }))
      assert.equal(70, #res.embeddings)
      local j = emu:requests()
      assert.is_true(#j >= 2)
      local count = 0
      for _, r in ipairs(j) do
        assert.equal(200, r.status)
        assert.is_true(#r.body <= 10 * 1024 * 1024, "body of " .. #r.body .. " bytes")
        count = count + #cjson.decode(r.body).texts
      end
      assert.equal(70, count)
      assert.equal(#j .. "/" .. #j, p1[#p1])
      for _, i in ipairs({ 1, 35, 70 }) do
        assert.same(assert(refclient:embed_text(MODEL, { text = texts[i] })).embedding, res.embeddings[i])
      end
      -- the same cut as the module's, and the same result in callback form
      assert.equal(#j, #batch.chunks(texts, batch.MAX_TEXTS, batch.MAX_BYTES))
      local got
      client:batch_embed_text(MODEL, texts, function(r, e) assert.is_nil(e); got = r end)
      client:run()
      assert.same(res, got)
      client:close()
    end)

    it("max_texts and max_bytes: call options of batch_embed_text only, checked before any request", function()
      local client = emu:client { retry = false }
      local res = assert(client:batch_embed_text(MODEL, texts_of(7), { max_texts = 3 }))
      assert.equal(7, #res.embeddings)
      assert.equal(3, #emu:requests())
      assert.same({ 3, 3, 1 }, (function()
        local n = {}
        for i, r in ipairs(emu:requests()) do n[i] = #cjson.decode(r.body).texts end
        table.sort(n, function(a, b) return a > b end)
        return n
      end)())
      assert.has_error(function() client:get_model(MODEL, { max_texts = 3 }) end)
      assert.has_error(function() client:batch_embed_text(MODEL, texts_of(3), { max_texts = 0 }) end)
      assert.has_error(function() client:batch_embed_text(MODEL, texts_of(3), { max_bytes = "x" }) end)
      assert.equal(3, #emu:requests())
      client:close()
    end)

    it("a single request still reports on_progress(1, 1), in both forms", function()
      local client = emu:client { retry = false }
      local p = {}
      assert(client:batch_embed_text(MODEL, texts_of(3),
        { on_progress = function(d, t) p[#p + 1] = d .. "/" .. t end }))
      local order = {}
      client:batch_embed_text(MODEL, texts_of(3),
        { on_progress = function(d, t) order[#order + 1] = d .. "/" .. t end },
        function() order[#order + 1] = "done" end)
      client:run()
      assert.same({ "1/1" }, p)
      assert.same({ "1/1", "done" }, order)
      client:close()
    end)

    it("an error raised by on_progress propagates; the client stays consistent", function()
      local client = emu:client { retry = false, max_in_flight = 1 }
      local ok, e = pcall(client.batch_embed_text, client, MODEL, texts_of(250),
        { on_progress = function(d) if d == 1 then error("progress fails") end end })
      assert.is_false(ok)
      assert.matches("progress fails", e, 1, true)
      client:run()                               -- the other chunks finish (or were already done)
      assert.equal("models/embedding-gecko-001", client:get_model(MODEL).name)
      client:close()
    end)
  end)

  describe("gemini.batch.embed_text", function()

    it("splits by request size: every request under the limit, embeddings in input order", function()
      local texts = big_texts()
      local client = emu:client { retry = false }
      -- as one request it would be refused by the server
      local _, too_big = client:batch_embed_text(MODEL, { texts = texts }, { max_bytes = 64 * 1024 * 1024 })
      assert.equal(413, too_big.code)
      emu:reset()
      local progress = {}
      local res = assert(batch.embed_text(client, MODEL, texts,
        { on_progress = function(d, t) progress[#progress + 1] = d .. "/" .. t end }))
      assert.equal(70, #res.embeddings)
      local j = emu:requests()
      assert.is_true(#j >= 2)
      local count = 0
      for _, r in ipairs(j) do
        assert.is_true(#r.body <= 10 * 1024 * 1024, "body of " .. #r.body .. " bytes")
        count = count + #cjson.decode(r.body).texts
      end
      assert.equal(70, count)
      assert.equal(#j .. "/" .. #j, progress[#progress])
      for _, i in ipairs({ 1, 42, 70 }) do
        assert.same(assert(refclient:embed_text(MODEL, { text = texts[i] })).embedding, res.embeddings[i])
      end
      client:close()
    end)

    it("splits by count within max_in_flight, and matches one client:batch_embed_text", function()
      local texts = texts_of(30, "module text ")
      local client, wire = counting_client { max_in_flight = 3 }
      local res = assert(batch.embed_text(client, MODEL, { texts = texts }, { max_texts = 5 }))
      assert.equal(6, #emu:requests())
      assert.equal(3, wire.peak)
      assert.is_true(emu:stats().maxInFlight <= 3)
      assert.same(assert(client:batch_embed_text(MODEL, texts)), res)
      assert.same({ embeddings = {} }, batch.embed_text(client, MODEL, {}))
      client:close()
    end)

    it("callback form: returns at once; a failing chunk is retried alone; progress; one callback", function()
      local texts = texts_of(15, "cb text ")
      local client = emu:client { retry = { initial = 0.01 } }
      emu:control("POST", "/emulator/v1/faults", { rules = { { match = { method = "batchEmbedText" },
        action = "error", status = 503, errorStatus = "UNAVAILABLE", times = 1 } } })
      local progress, calls, got = {}, 0, nil
      local h = batch.embed_text(client, MODEL, texts,
        { max_texts = 5, on_progress = function(d, t) progress[#progress + 1] = d .. "/" .. t end },
        function(r, e) calls = calls + 1; got = r; assert.is_nil(e) end)
      assert.is_false(h.done())
      assert.equal(0, calls)
      client:run()
      assert.equal(1, calls)
      assert.is_true(h.done())
      assert.same(reference(texts), got.embeddings)
      assert.same({ "1/3", "2/3", "3/3" }, progress)
      assert.equal(4, #emu:requests())
      client:close()
    end)

    it("callback form: a chunk failing for good ends the batch once; cancel gives CANCELLED", function()
      local client = emu:client { retry = false }
      emu:control("POST", "/emulator/v1/faults", { rules = { { match = { method = "batchEmbedText" },
        action = "error", status = 400, errorStatus = "INVALID_ARGUMENT", message = "bad chunk", times = 1 } } })
      local calls, err = 0, nil
      batch.embed_text(client, MODEL, texts_of(12), { max_texts = 4 }, function(_, e) calls = calls + 1; err = e end)
      client:run()
      assert.equal(1, calls)
      assert.equal("bad chunk", err.message)
      -- blocking form: nil, err
      emu:control("POST", "/emulator/v1/faults", { rules = { { match = { method = "batchEmbedText" },
        action = "error", status = 400, errorStatus = "INVALID_ARGUMENT", message = "bad again", times = 1 } } })
      local res, berr = batch.embed_text(client, MODEL, texts_of(12), { max_texts = 4 })
      assert.is_nil(res)
      assert.equal("bad again", berr.message)
      -- cancel
      local ccalls, cerr = 0, nil
      local h = batch.embed_text(client, MODEL, texts_of(12), { max_texts = 4 },
        function(_, e) ccalls = ccalls + 1; cerr = e end)
      assert.is_true(h.cancel())
      client:run()
      assert.equal(1, ccalls)
      assert.equal("CANCELLED", cerr.status)
      client:close()
    end)

    it("checks its arguments before any request", function()
      local client = emu:client { retry = false }
      assert.has_error(function() batch.embed_text(client, MODEL, { 1, 2 }) end,
        "bad argument #3 to 'embed_text' (text 1 is a number, not a string)")
      assert.has_error(function() batch.embed_text(client, MODEL, {}, { max_txts = 3 }) end)
      assert.has_error(function() batch.embed_text(client, MODEL, {}, nil, 42) end)
      assert.equal(0, #emu:requests())
      client:close()
    end)
  end)
end)
