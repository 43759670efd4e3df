-- Issue 5, names and keys, and TLS: hostile names and ids raise argument errors before any request,
-- query values are percent-encoded on the wire, the API key and the bearer token never appear in
-- URLs, errors, tostring of any object or the debug hooks, and TLS verification is always on.
local emulator = require("spec.helpers.emulator")
local rogue = require("spec.helpers.rogue_server")
local gemini = require("gemini")
local socket = require("socket")

local KEY = "AIzaSy-sec-KEY-5e2b90"
local TOKEN = "ya29.sec-TOKEN-c0ffee"

-- Every string reachable from v (keys, values, tostring of tables with metatables), as one text.
local function dump(v)
  local out, seen = {}, {}
  local function walk(x, depth)
    if depth > 30 then return end
    if type(x) == "table" then
      if seen[x] then return end
      seen[x] = true
      if getmetatable(x) and getmetatable(x).__tostring then out[#out + 1] = tostring(x) end
      for k, y in pairs(x) do walk(k, depth + 1); walk(y, depth + 1) end
    elseif x ~= nil then
      out[#out + 1] = tostring(x)
    end
  end
  walk(v, 0)
  return table.concat(out, "\n")
end

local function no_secret(text, what)
  assert.is_nil(text:find(KEY, 1, true), (what or "text") .. " shows the API key")
  assert.is_nil(text:find(TOKEN, 1, true), (what or "text") .. " shows the access token")
end

describe("reliability: names and keys", function()
  local emu = emulator.with_emulator { "--api-key", KEY .. "=alice@example.com", "--tuning-step-ms", "5" }
  local client
  setup(function() client = emu:client { retry = false } end)

  describe("resource names", function()
    local HOSTILE_IDS = {
      "x/y", "x?y", "x#y", "..", ".", "x..y", "", " x", "x ", "x\ty", "x\ny", "x\r\nHost: evil", "x\0y", "x\127",
      "%2F", "x%2Fy", "%2e%2e", "%2E%2E", "x%3Fkey=1", "x%23f", "x%00", "x%20y", "%252F", "x:generateText",
      "x;y", "x&y", "x=y", "x@evil", "x\\y", "\194\160x", "x\226\128\139y", "-x", "_x",
    }

    it("every hostile id raises an argument error, in every kind of name, before any request", function()
      local checks = {
        { "get_model", function(id) return client:get_model("models/" .. id) end },
        { "get_model (short)", function(id) return client:get_model(id) end },
        { "generate_text", function(id)
            return client:generate_text("tunedModels/" .. id, { prompt = { text = "x" } })
          end },
        { "get_tuned_model", function(id) return client:get_tuned_model(id) end },
        { "delete_tuned_model", function(id) return client:delete_tuned_model("tunedModels/" .. id) end },
        { "create_permission", function(id)
            return client:create_permission("corpora/" .. id, { role = "READER" })
          end },
        { "get_permission", function(id) return client:get_permission("corpora/c/permissions/" .. id) end },
        { "delete_permission", function(id)
            return client:delete_permission("tunedModels/" .. id .. "/permissions/p")
          end },
        { "get_operation", function(id) return client:get_operation("tunedModels/t/operations/" .. id) end },
        { "transfer_ownership", function(id)
            return client:transfer_ownership(id, { emailAddress = "b@example.com" })
          end },
        { "model handle", function(id) return client:model(id) end },
        { "corpus handle", function(id) return client:corpus(id) end },
        { "permission under a handle", function(id) return client:tuned_model("t"):permission(id) end },
        { "corpus permission under a handle", function(id) return client:corpus("c"):permission(id) end },
        { "tunedModelId", function(id)
            return client:create_tuned_model({ baseModel = "models/text-bison-001" }, { tunedModelId = id })
          end },
        { "permissions iterator", function(id) return client:permissions("tunedModels/" .. id) end },
      }
      for _, id in ipairs(HOSTILE_IDS) do
        for _, check in ipairs(checks) do
          local ok, err = pcall(check[2], id)
          assert.is_false(ok, string.format("%s accepted %q", check[1], id))
          assert.is_string(err)
          assert.matches("bad argument #%d+ to '", err)
          assert.is_nil(err:find("\n"), "a multi-line message for " .. string.format("%q", id))
        end
      end
      assert.equal(0, #emu:requests())
    end)

    it("whole names that would change the URL are refused", function()
      for _, name in ipairs({ "models/x/../../tunedModels/y", "/models/x", "models//x", "models/x/",
                              "https://evil.example/models/x", "models/x?key=" .. KEY,
                              "tunedModels/t/permissions", "tunedModels/t/operations/o/x" }) do
        local ok, err = pcall(client.get_model, client, name)
        assert.is_false(ok, name)
        assert.matches("bad argument #1 to 'get_model'", err, 1, true)
        local ok2 = pcall(client.get_operation, client, name)
        assert.is_false(ok2, name)
      end
      assert.equal(0, #emu:requests())
    end)

    it("valid ids pass through unchanged", function()
      for _, id in ipairs({ "a", "A-b_c.d~e", "0x", "text-bison-001" }) do
        local _, err = client:get_tuned_model(id)
        assert.equal("NOT_FOUND", err.status)
      end
      local j = emu:requests()
      assert.equal("/v1beta3/tunedModels/A-b_c.d~e", j[2].path)
      assert.equal(4, #j)
    end)
  end)

  describe("query values", function()
    it("are percent-encoded, and a value cannot add a parameter", function()
      local token = "a&key=" .. KEY .. "#frag ?x=/+%20é"
      client:list_tuned_models { pageSize = 3, pageToken = token, filter = "owner:me" }
      local q = emu:requests()[1].query
      assert.equal("pageSize=3&pageToken=a%26key%3D" .. KEY:gsub("%-", "-") ..
        "%23frag%20%3Fx%3D%2F%2B%2520%C3%A9&filter=owner%3Ame", q)
      -- exactly three parameters arrived
      local n = 0
      for _ in q:gmatch("[^&]+") do n = n + 1 end
      assert.equal(3, n)
    end)

    it("tunedModelId and updateMask are encoded too", function()
      client:create_tuned_model({ baseModel = "models/text-bison-001", tuningTask = { trainingData = {
        examples = { examples = { { textInput = "a", output = "b" } } } } } }, { tunedModelId = "my.model~1" })
      client:update_tuned_model("tunedModels/my.model~1", { description = "d", displayName = "n" },
        { updateMask = { "description", "displayName" } })
      local j = emu:requests()
      assert.equal("tunedModelId=my.model~1", j[1].query)
      assert.equal("updateMask=description%2CdisplayName", j[2].query)
    end)
  end)

  describe("the API key and the bearer token", function()
    it("travel only in their headers, never in a URL", function()
      local c = gemini.new { api_key = KEY, access_token = TOKEN, base_url = emu.url, retry = false }
      c:list_models { pageSize = 1 }
      c:get_model("text-bison-001")
      c:generate_text("text-bison-001", { prompt = { text = "hello" } })
      c:list_tuned_models { filter = "owner:me" }
      c:get_tuned_model("none")
      local j = emu:requests()
      assert.equal(5, #j)
      for _, r in ipairs(j) do
        no_secret(r.path .. "?" .. (r.query or ""), "a URL")
        no_secret(r.body or "", "a request body")
        assert.equal(KEY, r.headers["x-goog-api-key"])
        assert.equal("Bearer " .. TOKEN, r.headers["authorization"])
        for name, value in pairs(r.headers) do
          if name ~= "x-goog-api-key" and name ~= "authorization" then no_secret(value, "header " .. name) end
        end
      end
      c:close()
    end)

    it("never appear in tostring of the client, handles, requests, operations and errors", function()
      local c = gemini.new { api_key = KEY, access_token = TOKEN, base_url = emu.url, retry = false }
      local texts = { tostring(c), tostring(c:model("text-bison-001")), tostring(c:tuned_model("t")),
                      tostring(c:corpus("c")), tostring(c:tuned_model("t"):permission("p")) }
      local req = c:get_model("text-bison-001", function() end)
      texts[#texts + 1] = tostring(req)
      c:run()
      texts[#texts + 1] = tostring(req)
      local k = gemini.new { api_key = KEY, base_url = emu.url, retry = false }
      local op = assert(k:create_tuned_model({ baseModel = "models/text-bison-001", tuningTask = { trainingData = {
        examples = { examples = { { textInput = "a", output = "b" } } } } } }, { tunedModelId = "opname" }))
      texts[#texts + 1] = tostring(op)
      texts[#texts + 1] = dump(op.metadata)
      local _, err = c:get_model("nope")
      texts[#texts + 1] = tostring(err)
      texts[#texts + 1] = dump(err)
      c:close()
      k:close()
      texts[#texts + 1] = tostring(c)
      for i, s in ipairs(texts) do no_secret(s, "tostring #" .. i) end
    end)

    it("are not in any field of the client, its handles or requests (what vim.inspect would print)", function()
      local c = gemini.new { api_key = KEY, access_token = TOKEN, base_url = "http://u:" .. TOKEN .. "@127.0.0.1:1",
                             retry = false }
      local req = c:get_model("text-bison-001", function() end)
      no_secret(dump(c), "the client's fields")
      no_secret(dump(req), "a request's fields")
      no_secret(dump(c:model("text-bison-001")), "a handle")
      assert.equal("http://127.0.0.1:1", c.base_url)
      c:run()
      no_secret(dump(req), "a finished request's fields")
      c:close()
    end)

    it("are redacted when the server echoes them in a message, details or a non-JSON body", function()
      emu:fault { match = { method = "getModel" }, action = "error", status = 400, message = "bad key " .. KEY,
                  details = { { ["@type"] = "type.googleapis.com/google.rpc.DebugInfo",
                                detail = "Authorization: Bearer " .. TOKEN .. " key=" .. KEY } } }
      local c = gemini.new { api_key = KEY, access_token = TOKEN, base_url = emu.url, retry = false }
      local _, err = c:get_model("text-bison-001")
      assert.equal(400, err.code)
      assert.matches("[REDACTED]", err.message, 1, true)
      no_secret(tostring(err), "tostring(err)")
      no_secret(dump(err), "the error's fields")
      c:close()

      local srv = rogue.start { status = 500, headers = { "Content-Type: text/plain" },
                                body = "upstream said: key " .. KEY .. " token " .. TOKEN }
      local r = gemini.new { api_key = KEY, access_token = TOKEN, base_url = srv.url, retry = false }
      local _, e2 = r:get_model("text-bison-001")
      assert.equal(500, e2.code)
      assert.matches("upstream said", e2.message, 1, true)
      no_secret(tostring(e2), "a plain-text excerpt")
      no_secret(dump(e2), "a plain-text excerpt's fields")
      r:close()
      srv:stop()
    end)

    it("never appear in transport error messages, even in a base_url with userinfo", function()
      local c = gemini.new { api_key = KEY, base_url = "http://user:" .. TOKEN .. "@127.0.0.1:1", retry = false }
      no_secret(tostring(c), "tostring(client)")
      local _, err = c:list_models()
      assert.equal("UNAVAILABLE", err.status)
      no_secret(tostring(err), "a connect error")
      no_secret(dump(err), "a connect error's fields")
      c:close()
    end)

    it("a proxy's credentials are secrets too", function()
      local proxy = rogue.start { status = 502, headers = { "Content-Type: text/plain" },
                                  body = "proxy says: bad credentials pu:" .. TOKEN }
      local c = gemini.new { api_key = KEY, base_url = "http://127.0.0.1:9",
                             proxy = "http://pu:" .. TOKEN .. "@127.0.0.1:" .. proxy.port, retry = false }
      local _, err = c:list_models()
      assert.equal(502, err.code)
      assert.matches("proxy says", err.message, 1, true)
      no_secret(tostring(err), "an error through a proxy")
      no_secret(dump(err), "an error through a proxy")
      no_secret(dump(c), "a client with a proxy")
      local log = proxy:wait_log(1)
      assert.matches("GET http://127.0.0.1:9/v1beta3/models", log[1].head, 1, true)   -- it did go through the proxy
      c:close()
      proxy:stop()
    end)

    it("are redacted in on_request, on_response and on_retry, even when the server echoes them", function()
      local seen = {}
      local function hook(name) return function(info) seen[#seen + 1] = { name, info } end end
      local c = gemini.new { api_key = KEY, access_token = TOKEN, user_project = "proj-7", base_url = emu.url,
                             retry = { initial = 0.001, max_attempts = 2 },
                             on_request = hook("request"), on_response = hook("response"), on_retry = hook("retry") }
      emu:fault { match = { method = "generateText" }, action = "error", status = 503,
                  message = "overloaded; your key was " .. KEY .. " and token " .. TOKEN }
      assert(c:generate_text("text-bison-001", { prompt = { text = "hello" } }))
      local _, err = c:get_model("nope")
      assert.equal(404, err.code)
      local kinds = {}
      for _, s in ipairs(seen) do kinds[s[1]] = (kinds[s[1]] or 0) + 1 end
      assert.same({ request = 3, response = 3, retry = 1 }, kinds)
      for _, s in ipairs(seen) do
        no_secret(dump(s[2]), "on_" .. s[1])
      end
      -- what the hooks show is still useful: header names, redaction marks, the echoed message
      local req = seen[1][2]
      assert.equal("request", seen[1][1])
      local joined = table.concat(req.headers, "\n")
      assert.matches("x-goog-api-key: [REDACTED]", joined, 1, true)
      assert.matches("Authorization: [REDACTED]", joined, 1, true)
      assert.matches("x-goog-user-project: proj-7", joined, 1, true)
      assert.matches("/v1beta3/models/text-bison-001:generateText", req.url, 1, true)
      local resp = seen[2][2]
      assert.equal(503, resp.status)
      assert.matches("overloaded; your key was [REDACTED]", resp.body, 1, true)
      c:close()
    end)

    it("never reach a redirect target", function()
      local target = rogue.start { body = "{}", headers = { "Content-Type: application/json" } }
      local redirector = rogue.start { status = 302, body = "", headers = { "Location: " .. target.url .. "/steal" } }
      local c = gemini.new { api_key = KEY, access_token = TOKEN, base_url = redirector.url }
      local _, err = c:list_models()
      assert.equal(302, err.code)
      local log = redirector:wait_log(1)
      assert.matches("x-goog-api-key: " .. KEY, log[1].head, 1, true)   -- the configured host gets it
      assert.equal(0, #target:wait_log(1, 0.3))                         -- the other never does
      c:close()
      target:stop()
      redirector:stop()
    end)
  end)
end)

describe("reliability: TLS", function()
  local dir, servers = nil, {}

  local function sh(cmd) assert(os.execute(cmd), cmd) end

  local function free_port()
    local s = assert(socket.bind("127.0.0.1", 0))
    local _, port = s:getsockname()
    s:close()
    return port
  end

  -- `openssl s_server -WWW` serving files of dir/www over TLS with the given certificate.
  local function tls_server(cert, key)
    local port = free_port()
    local p = assert(io.popen("cd '" .. dir .. "/www' && exec openssl s_server -quiet -accept 127.0.0.1:" .. port ..
      " -cert '" .. cert .. "' -key '" .. key .. "' -WWW >/dev/null 2>&1 & echo $!"))
    local pid = p:read("*l")
    p:close()
    servers[#servers + 1] = pid
    for _ = 1, 200 do
      local c = socket.tcp4()
      c:settimeout(0.1)
      local ok = c:connect("127.0.0.1", port)
      c:close()
      if ok then return port end
      socket.sleep(0.025)
    end
    error("openssl s_server did not start")
  end

  local good_port, other_port

  setup(function()
    dir = os.tmpname()
    os.remove(dir)
    sh("mkdir -p '" .. dir .. "/www/v1beta3/models' '" .. dir .. "/capath'")
    sh("cd '" .. dir .. "' && openssl req -x509 -newkey rsa:2048 -nodes -keyout key.pem -out cert.pem -days 2 " ..
       "-subj /CN=localhost -addext subjectAltName=IP:127.0.0.1,DNS:localhost >/dev/null 2>&1")
    sh("cd '" .. dir .. "' && openssl req -x509 -newkey rsa:2048 -nodes -keyout other-key.pem -out other.pem " ..
       "-days 2 -subj /CN=other.example -addext subjectAltName=DNS:other.example >/dev/null 2>&1")
    sh("cp '" .. dir .. "/cert.pem' '" .. dir .. "/capath/' && openssl rehash '" .. dir .. "/capath'")
    local f = assert(io.open(dir .. "/www/v1beta3/models/text-bison-001", "wb"))
    f:write('{"name":"models/text-bison-001","version":"001","inputTokenLimit":8196}')
    f:close()
    good_port = tls_server(dir .. "/cert.pem", dir .. "/key.pem")
    other_port = tls_server(dir .. "/other.pem", dir .. "/other-key.pem")
  end)
  teardown(function()
    for _, pid in ipairs(servers) do os.execute("kill " .. pid .. " 2>/dev/null") end
    if dir then os.execute("rm -rf '" .. dir .. "'") end
  end)

  local function get(opts, port)
    opts.api_key = KEY
    opts.base_url = opts.base_url or ("https://127.0.0.1:" .. port)
    opts.retry = false
    local c = gemini.new(opts)
    local res, err = c:get_model("text-bison-001")
    c:close()
    return res, err
  end

  it("verifies by default: a self-signed server fails with a TLS error", function()
    local res, err = get({}, good_port)
    assert.is_nil(res)
    assert.is_nil(err.code)
    assert.equal("UNAVAILABLE", err.status)
    assert.equal("tls", err.kind)
    assert.matches("TLS", err.message, 1, true)
    no_secret(tostring(err))
  end)

  it("a certificate that does not verify is not retried (another attempt cannot fix it)", function()
    local attempts = 0
    local c = gemini.new { api_key = KEY, base_url = "https://127.0.0.1:" .. good_port,
                           retry = { initial = 0.001, max_attempts = 4 },
                           on_request = function() attempts = attempts + 1 end }
    local res, err = c:get_model("text-bison-001")
    c:close()
    assert.is_nil(res)
    assert.equal("tls", err.kind)
    assert.equal(1, attempts)
    assert.is_nil(err.attempts)
  end)

  it("ca_file makes the same server trusted", function()
    local res, err = get({ ca_file = dir .. "/cert.pem" }, good_port)
    assert.is_nil(err)
    assert.equal("models/text-bison-001", res.name)
    assert.equal(8196, res.inputTokenLimit)
  end)

  it("ca_path (a hashed directory) makes it trusted too", function()
    local res, err = get({ ca_path = dir .. "/capath" }, good_port)
    assert.is_nil(err)
    assert.equal("models/text-bison-001", res.name)
  end)

  it("checks the host name: a trusted certificate for another name fails", function()
    local res, err = get({ ca_file = dir .. "/other.pem" }, other_port)
    assert.is_nil(res)
    assert.equal("tls", err.kind)
  end)

  it("a CA for another server does not help", function()
    local res, err = get({ ca_file = dir .. "/other.pem" }, good_port)
    assert.is_nil(res)
    assert.equal("tls", err.kind)
  end)

  it("insecure = true (dangerous, explicit) turns verification off", function()
    local res, err = get({ insecure = true }, good_port)
    assert.is_nil(err)
    assert.equal("models/text-bison-001", res.name)
    local r2, e2 = get({ insecure = true }, other_port)
    assert.is_nil(e2)
    assert.equal("models/text-bison-001", r2.name)
  end)

  it("insecure must be a boolean: no truthy string turns verification off", function()
    assert.is_false((pcall(gemini.new, { insecure = "yes" })))
    assert.is_false((pcall(gemini.new, { insecure = 1 })))
  end)
end)
