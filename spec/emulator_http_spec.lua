-- The emulator's HTTP layer as a raw client sees it: keep-alive, pipelining, 100-continue, 413,
-- malformed requests, chunked bodies, HTTP/1.0, concurrency, signals, the listening line and the CLI.
local helper = require "spec.helpers.emulator"
local socket = require "socket"

local KEY = "k1"
local MODEL_PATH = "/v1beta3/models/text-bison-001"

-- Read one response from a LuaSocket connection: status, headers (lowercased), body, status line.
local function read_response(c)
  local status, headers, line = helper.read_head(c)
  if not line then return nil, headers end
  local n = tonumber(headers["content-length"] or "0")
  local body = ""
  if n > 0 then body = assert(c:receive(n)) end
  return status, headers, body, line
end

local function get_model(extra)
  return "GET " .. MODEL_PATH .. " HTTP/1.1\r\nHost: localhost\r\nx-goog-api-key: " .. KEY .. "\r\n"
    .. (extra or "") .. "\r\n"
end

-- Is the connection closed by the server? (a read returns "closed" rather than data or a timeout)
local function closed_by_server(c)
  c:settimeout(3)
  local data, err, partial = c:receive(1)
  return data == nil and err == "closed" and partial == ""
end

describe("emulator HTTP", function()
  local emu = helper.with_emulator{ "--api-key", KEY .. "=alice@example.com" }

  it("prints exactly one listening line with the real port", function()
    assert.truthy(emu.listening_line:match("^gemini%-emulator listening on http://127%.0%.0%.1:%d+$"))
    assert.truthy(emu.port > 0)
    assert.equal(emu.listening_line .. "\n", emu:stdout())
  end)

  it("serves an API request with the app's reply", function()
    local status, headers, body = emu:request{ path = MODEL_PATH, headers = { ["x-goog-api-key"] = KEY } }
    assert.equal(200, status)
    assert.equal("application/json; charset=UTF-8", headers["content-type"])
    assert.equal("models/text-bison-001", helper.decode(body).name)
    assert.equal(tostring(#body), headers["content-length"])
  end)

  it("keeps an HTTP/1.1 connection alive across requests", function()
    local c = emu:connect()
    for _ = 1, 3 do
      assert(c:send(get_model()))
      local status, headers, body = read_response(c)
      assert.equal(200, status)
      assert.is_nil(headers["connection"])
      assert.equal("models/text-bison-001", helper.decode(body).name)
    end
    c:close()
    local _, stats = emu:control("GET", "/emulator/v1/stats")
    assert.equal(3, stats.requests)
  end)

  it("answers pipelined requests in order on one connection", function()
    local c = emu:connect()
    assert(c:send(get_model() .. "GET /v1beta3/models/chat-bison-001 HTTP/1.1\r\nHost: x\r\nx-goog-api-key: " .. KEY
      .. "\r\n\r\n" .. get_model()))
    local names = {}
    for i = 1, 3 do
      local status, _, body = read_response(c)
      assert.equal(200, status)
      names[i] = helper.decode(body).name
    end
    assert.same({ "models/text-bison-001", "models/chat-bison-001", "models/text-bison-001" }, names)
    c:close()
  end)

  it("honours Connection: close", function()
    local c = emu:connect()
    assert(c:send(get_model("Connection: close\r\n")))
    local status, headers = read_response(c)
    assert.equal(200, status)
    assert.equal("close", headers["connection"])
    assert.is_true(closed_by_server(c))
    c:close()
  end)

  it("closes HTTP/1.0 connections unless keep-alive is asked", function()
    local c = emu:connect()
    assert(c:send("GET " .. MODEL_PATH .. " HTTP/1.0\r\nx-goog-api-key: " .. KEY .. "\r\n\r\n"))
    local status, headers, body, line = read_response(c)
    assert.equal(200, status)
    assert.equal("HTTP/1.1 200 OK", line)
    assert.equal("close", headers["connection"])
    assert.equal("models/text-bison-001", helper.decode(body).name)
    assert.is_true(closed_by_server(c))
    c:close()

    c = emu:connect()
    local req = "GET " .. MODEL_PATH .. " HTTP/1.0\r\nConnection: keep-alive\r\nx-goog-api-key: " .. KEY .. "\r\n\r\n"
    assert(c:send(req))
    status, headers = read_response(c)
    assert.equal(200, status)
    assert.equal("keep-alive", headers["connection"])
    assert(c:send(req))
    assert.equal(200, (read_response(c)))
    c:close()
  end)

  it("sends 100 Continue before reading the body when asked", function()
    local body = '{"prompt":{"text":"hello"}}'
    local c = emu:connect()
    assert(c:send("POST " .. MODEL_PATH .. ":generateText HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
      .. "x-goog-api-key: " .. KEY .. "\r\nExpect: 100-continue\r\nContent-Length: " .. #body .. "\r\n\r\n"))
    assert.equal("HTTP/1.1 100 Continue", c:receive("*l"))
    assert.equal("", c:receive("*l"))
    assert(c:send(body))
    local status, _, resp = read_response(c)
    assert.equal(200, status)
    assert.is_table(helper.decode(resp).candidates)
    c:close()
    local _, journal = emu:control("GET", "/emulator/v1/requests")
    assert.equal(body, journal[#journal].body)
  end)

  it("answers 413 straight away to a too large Content-Length with Expect, without 100 Continue", function()
    local c = emu:connect()
    assert(c:send("POST " .. MODEL_PATH .. ":generateText HTTP/1.1\r\nHost: x\r\nx-goog-api-key: " .. KEY
      .. "\r\nExpect: 100-continue\r\nContent-Length: " .. (10 * 1024 * 1024 + 1) .. "\r\n\r\n"))
    local status, headers, body = read_response(c)
    assert.equal(413, status)
    assert.equal("close", headers["connection"])
    assert.equal("application/json; charset=UTF-8", headers["content-type"])
    assert.same({ error = { code = 413, status = "INVALID_ARGUMENT",
                            message = "Request payload size exceeds the limit: 10485760 bytes." } },
      helper.decode(body))
    assert.is_true(closed_by_server(c))
    c:close()
  end)

  it("rejects a body over 10 MiB with 413 and accepts one of exactly 10 MiB", function()
    local big = string.rep("a", 10 * 1024 * 1024 + 1)
    local status, _, body = emu:request{ method = "POST", path = MODEL_PATH .. ":generateText",
                                         headers = { ["x-goog-api-key"] = KEY }, body = big }
    assert.equal(413, status)
    assert.equal(413, helper.decode(body).error.code)
    -- chunked: the limit applies to the decoded size
    status = emu:request{ method = "POST", path = MODEL_PATH .. ":generateText",
                          headers = { ["x-goog-api-key"] = KEY, ["Transfer-Encoding"] = "chunked" }, body = big }
    assert.equal(413, status)
    local _, stats = emu:control("GET", "/emulator/v1/stats")
    assert.equal(0, stats.requests)
    -- exactly 10 MiB reaches the API (which then judges the JSON)
    status = emu:request{ method = "POST", path = MODEL_PATH .. ":generateText",
                          headers = { ["x-goog-api-key"] = KEY }, body = big:sub(2) }
    assert.is_number(status)
    assert.are_not.equal(413, status)
    _, stats = emu:control("GET", "/emulator/v1/stats")
    assert.equal(1, stats.requests)
  end)

  it("decodes chunked request bodies", function()
    local body = '{"prompt":{"text":"a chunked hello"}}'
    local c = emu:connect()
    assert(c:send("POST " .. MODEL_PATH .. ":generateText HTTP/1.1\r\nHost: x\r\nx-goog-api-key: " .. KEY
      .. "\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"))
    assert(c:send(string.format("%x\r\n%s\r\n", 10, body:sub(1, 10))))
    assert(c:send(string.format("%X;ext=1\r\n%s\r\n", #body - 10, body:sub(11))))
    assert(c:send("0\r\nX-Trailer: yes\r\n\r\n"))
    local status, _, resp = read_response(c)
    assert.equal(200, status)
    assert.is_table(helper.decode(resp).candidates)
    -- the connection stays usable after a chunked request
    assert(c:send(get_model()))
    assert.equal(200, (read_response(c)))
    c:close()
    local _, journal = emu:control("GET", "/emulator/v1/requests")
    assert.equal(2, #journal)
    assert.equal(body, journal[1].body)
    assert.equal("POST", journal[1].method)
    assert.equal(MODEL_PATH .. ":generateText", journal[1].path)
  end)

  local malformed = {
    ["a bad request line"] = "GARBAGE\r\n\r\n",
    ["a missing HTTP version"] = "GET /v1beta3/models\r\n\r\n",
    ["a header without a colon"] = "GET / HTTP/1.1\r\nHost x\r\n\r\n",
    ["a space before the colon"] = "GET / HTTP/1.1\r\nHost : x\r\n\r\n",
    ["a folded header line"] = "GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",
    ["a bad chunk size"] = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    ["a chunk without its CRLF"] = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
      .. "5\r\nhelloXX0\r\n\r\n",
    ["conflicting Content-Length headers"] = "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
      .. "Content-Length: 4\r\n\r\nabcd",
    ["Content-Length with Transfer-Encoding"] = "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
      .. "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ["a non-numeric Content-Length"] = "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3x\r\n\r\nabc",
  }
  for name, bytes in pairs(malformed) do
    it("answers 400 and closes the connection on " .. name .. ", then keeps serving", function()
      local out, how = emu:raw(bytes, { timeout = 3 })
      assert.truthy(out:match("^HTTP/1%.1 400 Bad Request\r\n"), out)
      assert.truthy(out:find("\r\nConnection: close\r\n", 1, true))
      assert.equal("closed", how)
      local status, _, body = emu:request{ path = MODEL_PATH, headers = { ["x-goog-api-key"] = KEY } }
      assert.equal(200, status)
      assert.equal("models/text-bison-001", helper.decode(body).name)
    end)
  end

  it("answers 404 with Google's HTML page outside the API and control paths", function()
    local status, headers, body = emu:request{ path = "/nowhere" }
    assert.equal(404, status)
    assert.equal("text/html; charset=UTF-8", headers["content-type"])
    assert.truthy(body:find("/nowhere", 1, true))
  end)
end)

describe("emulator concurrency", function()
  it("answers 50 simultaneous requests with --latency 200 in parallel", function()
    local emu = helper.start{ "--api-key", KEY .. "=alice@example.com", latency = 200 }
    local args = { "curl", "-sS", "--parallel", "--parallel-immediate", "--parallel-max", "50",
                   "-H", "'x-goog-api-key: " .. KEY .. "'", "-w", "'%{http_code}\\n'", "-o", "/dev/null" }
    for _ = 1, 50 do args[#args + 1] = "'" .. emu.url .. MODEL_PATH .. "'" end
    local t0 = socket.gettime()
    local p = assert(io.popen(table.concat(args, " ") .. " 2>&1"))
    local out = p:read("*a")
    p:close()
    local elapsed = socket.gettime() - t0
    local codes = {}
    for code in out:gmatch("(%d%d%d)\n") do codes[#codes + 1] = code end
    assert.equal(50, #codes, out)
    for _, c in ipairs(codes) do assert.equal("200", c) end
    assert.is_true(elapsed < 5, "50 requests at 200 ms latency took " .. elapsed .. " s")
    local _, stats = emu:control("GET", "/emulator/v1/stats")
    assert.equal(50, stats.requests)
    assert.is_true(stats.maxInFlight >= 10, "maxInFlight " .. tostring(stats.maxInFlight))
    assert.equal(0, stats.inFlight)
    emu:stop()
  end)
end)

describe("emulator process", function()
  it("stops cleanly with exit status 0 on SIGTERM", function()
    local emu = helper.start{}
    emu:signal("TERM")
    assert.is_true(emu:wait_exit(10))
    assert.equal(0, emu:exit_code())
    emu:stop()
  end)

  it("stops cleanly with exit status 0 on SIGINT", function()
    local emu = helper.start{}
    emu:signal("INT")
    assert.is_true(emu:wait_exit(10))
    assert.equal(0, emu:exit_code())
    emu:stop()
  end)

  it("finishes a reply in flight before stopping on SIGTERM", function()
    local emu = helper.start{ "--api-key", KEY, latency = 1000 }
    local c = emu:connect(10)
    assert(c:send(get_model()))
    -- wait until the request is in flight
    local stats
    for _ = 1, 200 do
      stats = select(2, emu:control("GET", "/emulator/v1/stats"))
      if stats.inFlight == 1 then break end
      socket.sleep(0.01)
    end
    assert.equal(1, stats.inFlight)
    emu:signal("TERM")
    local status, headers, body = read_response(c)
    assert.equal(200, status)
    assert.equal("close", headers["connection"])
    assert.equal("models/text-bison-001", helper.decode(body).name)
    c:close()
    assert.is_true(emu:wait_exit(10))
    assert.equal(0, emu:exit_code())
    emu:stop()
  end)

  it("stops on POST /emulator/v1/shutdown after replying", function()
    local emu = helper.start{}
    local status = emu:control("POST", "/emulator/v1/shutdown")
    assert.equal(200, status)
    assert.is_true(emu:wait_exit(10))
    assert.equal(0, emu:exit_code())
    emu:stop()
  end)

  it("logs one line per request with --verbose and never a key", function()
    local emu = helper.start{ "--api-key", "sekrit-key=alice@example.com", verbose = true }
    emu:request{ path = MODEL_PATH .. "?key=sekrit-key&alt=json" }
    emu:request{ path = MODEL_PATH, headers = { ["x-goog-api-key"] = "sekrit-key" } }
    emu:stop()
    local log = emu:stderr()
    local lines = {}
    for l in log:gmatch("[^\n]+") do lines[#lines + 1] = l end
    assert.equal(2, #lines, log)
    assert.is_nil(log:find("sekrit", 1, true))
    assert.truthy(lines[1]:find("GET " .. MODEL_PATH .. "?key=REDACTED&alt=json 200 ", 1, true), lines[1])
    assert.truthy(lines[1]:match(" 200 %d+ms$"), lines[1])
    assert.truthy(lines[2]:find("GET " .. MODEL_PATH .. " 200 ", 1, true), lines[2])
    assert.truthy(lines[2]:match(" 200 %d+ms$"), lines[2])
  end)

  it("prints its usage with --help and rejects unknown options", function()
    local p = io.popen("lua5.4 bin/gemini-emulator --help; echo rc=$?")
    local out = p:read("*a")
    p:close()
    assert.truthy(out:find("Usage: gemini-emulator", 1, true))
    assert.truthy(out:find("--api-key KEY[=EMAIL]", 1, true))
    assert.truthy(out:find("rc=0\n", 1, true))
    p = io.popen("lua5.4 bin/gemini-emulator --bogus 2>&1; echo rc=$?")
    out = p:read("*a")
    p:close()
    assert.truthy(out:find("unknown option --bogus", 1, true))
    assert.truthy(out:find("rc=2\n", 1, true))
  end)

  it("listens on the port it is given", function()
    local probe = assert(socket.bind("127.0.0.1", 0))
    local _, port = probe:getsockname()
    probe:close()
    local emu = helper.start{ port = port }
    assert.equal(tonumber(port), emu.port)
    assert.equal("gemini-emulator listening on http://127.0.0.1:" .. port, emu.listening_line)
    emu:stop()
  end)
end)

describe("emulator HTTP parser", function()
  local http = require "gemini.emulator.http"

  local function events(p)
    local out = {}
    local ev = p:next()
    while ev do
      out[#out + 1] = ev
      ev = p:next()
    end
    return out
  end

  local two = "POST /v1beta3/models/a%3AgenerateText?key=x&alt=json HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n"
    .. "X-Multi: a\r\nX-Multi: b\r\n\r\nhello"
    .. "POST /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n"

  it("gives the same requests whether fed at once or a byte at a time", function()
    for _, step in ipairs({ #two, 1, 2, 7 }) do
      local p = http.new_parser()
      for i = 1, #two, step do p:feed(two:sub(i, i + step - 1)) end
      local evs = events(p)
      assert.equal(2, #evs)
      assert.equal("POST", evs[1].method)
      assert.equal("/v1beta3/models/a:generateText", evs[1].path)
      assert.equal("/v1beta3/models/a%3AgenerateText", evs[1].raw_path)
      assert.equal("key=x&alt=json", evs[1].query)
      assert.equal("a, b", evs[1].headers["x-multi"])
      assert.equal("hello", evs[1].body)
      assert.is_true(evs[1].keep_alive)
      assert.equal("/b", evs[2].path)
      assert.equal("abcde", evs[2].body)
      assert.is_false(p:partial())
    end
  end)

  it("keeps %2F encoded in the path", function()
    local p = http.new_parser()
    p:feed("GET /v1beta3/models%2Fx HTTP/1.1\r\n\r\n")
    assert.equal("/v1beta3/models%2Fx", events(p)[1].path)
  end)

  it("queues a continue event before the body of an Expect: 100-continue request", function()
    local p = http.new_parser()
    p:feed("POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n")
    assert.same({ { type = "continue" } }, events(p))
    assert.is_true(p:partial())
    p:feed("ok")
    local evs = events(p)
    assert.equal(1, #evs)
    assert.equal("ok", evs[1].body)
  end)

  it("accepts a body of exactly the limit and refuses one byte more", function()
    local p = http.new_parser({ max_body = 100 })
    p:feed("POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\n")
    for _ = 1, 10 do p:feed(string.rep("x", 10)) end
    assert.equal(string.rep("x", 100), events(p)[1].body)
    p = http.new_parser({ max_body = 100 })
    p:feed("POST / HTTP/1.1\r\nContent-Length: 101\r\n\r\n")
    assert.same({ { type = "error", status = 413, message = "request body too large" } }, events(p))
    p = http.new_parser({ max_body = 100 })
    p:feed("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n32\r\n" .. string.rep("x", 50) .. "\r\n33\r\n")
    assert.same({ { type = "error", status = 413, message = "request body too large" } }, events(p))
  end)

  it("serialises a response with Content-Length, Date and Connection", function()
    local s = http.serialize({ status = 429, headers = { ["Retry-After"] = "2" }, body = "{}" }, { close = true })
    assert.truthy(s:match("^HTTP/1%.1 429 Too Many Requests\r\n"))
    assert.truthy(s:find("\r\nRetry-After: 2\r\n", 1, true))
    assert.truthy(s:find("\r\nContent-Length: 2\r\n", 1, true))
    assert.truthy(s:find("\r\nConnection: close\r\n", 1, true))
    assert.truthy(s:match("\r\nDate: %a%a%a, %d%d %a%a%a %d%d%d%d %d%d:%d%d:%d%d GMT\r\n"))
    assert.equal("\r\n\r\n{}", s:sub(-6))
  end)
end)
