-- bin/gemini run as a process against the emulator: output, --json, exit codes, one-line errors.
local helper = require("spec.helpers.emulator")
local cjson = require("cjson").new()

local ROOT = helper.root() .. "/"
local shquote = helper.shquote
local function readfile(path) return helper.readfile(path) or "" end

describe("bin/gemini", function()
  local emu = helper.with_emulator{ "--api-key", "k1=alice@example.com", "--api-key", "k2=bob@example.com",
    tuning_step_ms = 10, reset = false }

  -- runs bin/gemini; returns exit code, stdout, stderr
  local function run(args, opts)
    opts = opts or {}
    local out, err, input = os.tmpname(), os.tmpname(), os.tmpname()
    local f = assert(io.open(input, "wb"))
    f:write(opts.stdin or "")
    f:close()
    local env = ("GEMINI_BASE_URL=%s GEMINI_API_KEY=%s "):format(shquote(opts.base_url or emu.url),
      shquote(opts.key or "k1"))
    if opts.no_env then env = "env -u GEMINI_BASE_URL -u GEMINI_API_KEY -u GOOGLE_API_KEY " end
    local parts = {}
    for i, a in ipairs(args) do parts[i] = shquote(a) end
    local cmd = ("%s%sbin/gemini %s <%s >%s 2>%s; echo $?"):format(env, ROOT, table.concat(parts, " "),
      input, out, err)
    local p = assert(io.popen(cmd))
    local code = tonumber(p:read("*a"):match("(%d+)%s*$"))
    p:close()
    local so, se = readfile(out), readfile(err)
    os.remove(out); os.remove(err); os.remove(input)
    return code, so, se
  end

  local function one_line_error(se)
    assert.matches("^gemini: [^\n]+\n$", se)
  end

  describe("models", function()
    it("lists the models", function()
      local code, out, err = run{ "models" }
      assert.are.equal(0, code)
      assert.are.equal("", err)
      assert.matches("models/text%-bison%-001%s+Text Bison%s+generateText", out)
      assert.matches("models/embedding%-gecko%-001", out)
    end)

    it("prints JSON with --json", function()
      local code, out = run{ "models", "--json" }
      assert.are.equal(0, code)
      local list = cjson.decode(out)
      local names = {}
      for _, m in ipairs(list) do names[m.name] = m end
      assert.are.equal(8196, names["models/text-bison-001"].inputTokenLimit)
      assert.is_table(names["models/chat-bison-001"])
    end)

    it("prints an empty list as [] with --json", function()
      local code, out = run({ "tuned", "list", "--json" }, { key = "k2" })
      assert.are.equal(0, code)
      assert.are.equal("[]\n", out)
    end)

    it("shows one model by short or full name", function()
      local code, out = run{ "model", "text-bison-001" }
      assert.are.equal(0, code)
      assert.matches("inputTokenLimit%s+8196", out)
      local _, out2 = run{ "--json", "model", "models/chat-bison-001" }
      assert.are.equal("models/chat-bison-001", cjson.decode(out2).name)
    end)
  end)

  describe("errors and exit codes", function()
    it("exits 4 with one line on stderr for an unknown model", function()
      local code, out, err = run{ "model", "no-such-model" }
      assert.are.equal(4, code)
      assert.are.equal("", out)
      one_line_error(err)
      assert.matches("NOT_FOUND", err, 1, true)
    end)

    it("exits 5 for a bad key", function()
      local code, _, err = run({ "models" }, { key = "wrong-key" })
      assert.are.equal(5, code)
      one_line_error(err)
      assert.matches("API_KEY_INVALID", err, 1, true)
      assert.not_matches("wrong%-key", err)
    end)

    it("takes --base-url and --api-key over the environment", function()
      local code = run({ "--base-url", emu.url, "--api-key", "k2", "models" }, { base_url = "http://127.0.0.1:9",
        key = "bad" })
      assert.are.equal(0, code)
    end)

    it("exits 3 when the server cannot be reached", function()
      local code, _, err = run({ "--timeout", "5", "model", "text-bison-001" }, { base_url = "http://127.0.0.1:9" })
      assert.are.equal(3, code)
      one_line_error(err)
      assert.matches("UNAVAILABLE", err, 1, true)
    end)

    it("exits 2 on usage errors", function()
      for _, args in ipairs({ {}, { "bogus" }, { "generate-text", "hello" }, { "models", "--nope" },
          { "tuned" }, { "generate-text", "-m", "text-bison-001", "--temperature", "hot", "x" },
          { "model", "models/a?b" } }) do
        local code, _, err = run(args)
        assert.are.equal(2, code, table.concat(args, " "))
        one_line_error(err)
      end
    end)

    it("prints the usage with --help and exits 0", function()
      local code, out = run{ "--help" }
      assert.are.equal(0, code)
      assert.matches("Exit codes:", out, 1, true)
    end)

    it("prints the library version with --version", function()
      local code, out = run{ "--version" }
      assert.are.equal(0, code)
      assert.are.equal("gemini (lua-gemini) " .. require("gemini").VERSION .. "\n", out)
    end)
  end)

  describe("generate-text", function()
    it("prints the reply, the same as the library gives", function()
      local code, out = run{ "generate-text", "-m", "text-bison-001", "--temperature", "0",
        "Tell", "me", "about", "Lua" }
      assert.are.equal(0, code)
      local gemini = require("gemini")
      local client = emu:client{}
      local res = assert(client:generate_text("models/text-bison-001",
        { prompt = { text = "Tell me about Lua" }, temperature = 0 }))
      client:close()
      assert.are.equal(gemini.text(res) .. "\n", out)
    end)

    it("reads the prompt from stdin with -", function()
      local code, out = run({ "generate-text", "-m", "text-bison-001", "--temperature", "0", "-" },
        { stdin = "Tell me about Lua\n" })
      local code2, out2 = run{ "generate-text", "-m", "text-bison-001", "--temperature", "0", "Tell me about Lua" }
      assert.are.equal(0, code)
      assert.are.equal(0, code2)
      assert.are.equal(out2, out)
    end)

    it("prints every candidate", function()
      local code, out = run{ "generate-text", "-m", "text-bison-001", "--candidates", "2", "--temperature", "1",
        "hi" }
      assert.are.equal(0, code)
      assert.matches("^%-%-%- candidate 1\n.+\n%-%-%- candidate 2\n.+\n$", out)
    end)

    it("exits 6 for a blocked reply, naming the filter", function()
      local code, out, err = run{ "generate-text", "-m", "text-bison-001", "[[block:safety]] hi" }
      assert.are.equal(6, code)
      assert.are.equal("", out)
      one_line_error(err)
      assert.matches("blocked by filter SAFETY", err, 1, true)
    end)

    it("applies --safety shorthand", function()
      local code, out = run{ "generate-text", "-m", "text-bison-001", "--safety", "toxicity=none,violence=low",
        "[[block:safety]] hi" }
      assert.are.equal(0, code)
      assert.is_true(#out > 1)
      local code2, _, err = run{ "generate-text", "-m", "text-bison-001", "--safety", "rudeness=none", "x" }
      assert.are.equal(2, code2)
      assert.matches("unknown harm category", err, 1, true)
    end)
  end)

  describe("count-tokens and embed", function()
    it("counts text and message tokens", function()
      local code, out = run{ "count-tokens", "-m", "text-bison-001", "How many tokens?" }
      assert.are.equal(0, code)
      local client = emu:client{}
      local t = assert(client:count_text_tokens("models/text-bison-001", { prompt = { text = "How many tokens?" } }))
      local m = assert(client:count_message_tokens("models/chat-bison-001",
        { prompt = { messages = { { content = "How many tokens?" } } } }))
      client:close()
      assert.are.equal(t.tokenCount .. "\n", out)
      local _, out2 = run{ "count-tokens", "-m", "chat-bison-001", "How many tokens?" }
      assert.are.equal(m.tokenCount .. "\n", out2)
    end)

    it("prints one JSON vector per text", function()
      local code, out = run{ "embed", "hello world" }
      assert.are.equal(0, code)
      local v = cjson.decode(out)
      assert.are.equal(768, #v)
      local code2, out2 = run({ "embed", "-" }, { stdin = "one\ntwo\n\nthree\n" })
      assert.are.equal(0, code2)
      local lines = {}
      for l in out2:gmatch("[^\n]+") do lines[#lines + 1] = cjson.decode(l) end
      assert.are.equal(3, #lines)
      assert.are.equal(768, #lines[3])
    end)
  end)

  describe("chat", function()
    it("runs a REPL over stdin with history commands", function()
      local code, out, err = run({ "chat", "-m", "chat-bison-001" },
        { stdin = "Hello\nWhat is Lua?\n/undo\n/history\n[[block:other]] x\n/tokens\n/quit\nnot sent\n" })
      assert.are.equal(0, code)
      local lines = {}
      for l in out:gmatch("[^\n]+") do lines[#lines + 1] = l end
      -- reply 1, reply 2, undo notice, history (2 lines), token count
      assert.are.equal(6, #lines)
      assert.are.equal("(forgot: What is Lua?)", lines[3])
      assert.are.equal("0: Hello", lines[4])
      assert.are.equal("1: " .. lines[1], lines[5])
      assert.matches("^%d+$", lines[6])
      one_line_error(err)
      assert.matches("blocked by filter OTHER", err, 1, true)
    end)
  end)

  describe("tuned models, permissions and operations", function()
    local csv = ROOT .. "examples/data/numbers.csv"

    it("creates with --wait, showing progress, then lists, gets, updates and deletes", function()
      local code, out, err = run{ "tuned", "create", "--data", csv, "--id", "cli-model", "--epochs", "2",
        "--batch-size", "4", "--wait", "--interval", "0.05" }
      assert.are.equal(0, code, err)
      assert.matches("name%s+tunedModels/cli%-model\n", out)
      assert.matches("state%s+ACTIVE\n", out)
      assert.matches("tuning tunedModels/cli%-model: 100%.0%% step 5/5 loss [%d%.e%-]+ elapsed %d+:%d%d\n$", err)

      code, out = run{ "tuned", "list" }
      assert.are.equal(0, code)
      assert.matches("tunedModels/cli%-model%s+ACTIVE", out)

      code, out = run{ "tuned", "update", "cli-model", "--display-name", "From the CLI", "--json" }
      assert.are.equal(0, code)
      assert.are.equal("From the CLI", cjson.decode(out).displayName)
      code, out = run{ "--json", "tuned", "get", "tunedModels/cli-model" }
      assert.are.equal(0, code)
      assert.are.equal("From the CLI", cjson.decode(out).displayName)

      code, out = run{ "tuned", "delete", "cli-model" }
      assert.are.equal(0, code)
      assert.are.equal("deleted tunedModels/cli-model\n", out)
      local _
      code, _, err = run{ "tuned", "get", "cli-model" }
      assert.are.equal(4, code)
      one_line_error(err)
    end)

    it("creates without --wait, printing the operation, then operation get and wait", function()
      local code, out = run{ "tuned", "create", "--data", csv, "--epochs", "3", "--batch-size", "2" }
      assert.are.equal(0, code)
      local op = out:match("^(tunedModels/[%w%-]+/operations/[%w%-]+)\n$")
      assert.is_string(op)
      code, out = run{ "operation", "get", op }
      assert.are.equal(0, code)
      assert.matches("^" .. op:gsub("%p", "%%%0") .. "  [A-Z]+", out)
      code, out = run{ "operation", "wait", op, "--interval", "0.05" }
      assert.are.equal(0, code)
      assert.matches("state%s+ACTIVE", out)
      code, out = run{ "--json", "operation", "get", op }
      assert.are.equal(0, code)
      local view = cjson.decode(out)
      assert.is_true(view.done)
      assert.are.equal("ACTIVE", view.response.state)
      assert.are.equal(100, view.metadata.completedPercent)
    end)

    it("exits 7 when tuning fails, after showing the progress", function()
      local path = os.tmpname()
      local f = assert(io.open(path, "w"))
      f:write('input,output\n1,2\n3,[[fail]] 4\n5,6\n7,8\n')
      f:close()
      local code, out, err = run{ "tuned", "create", "--data", path, "--epochs", "2", "--batch-size", "1", "--wait",
        "--interval", "0.05" }
      os.remove(path)
      assert.are.equal(7, code)
      assert.are.equal("", out)
      local last = err:match("([^\n]+)\n$")
      assert.matches("^gemini: tuning failed: .*Tuning failed at step 4", last)
      assert.matches("tuning tunedModels/[%w%-]+: 50%.0%% step 4/8", err)
    end)

    it("exits 8 with the line number for bad training data", function()
      local path = os.tmpname()
      local f = assert(io.open(path, "w"))
      f:write('input,output\n1,2\n"3",""\n')
      f:close()
      local code, _, err = run{ "tuned", "create", "--data", path }
      os.remove(path)
      assert.are.equal(8, code)
      assert.are.equal("gemini: " .. path .. ":3: empty output\n", err)
    end)

    it("manages permissions on a corpus, including EVERYONE and GROUP grantees", function()
      local code, out = run{ "permissions", "grant", "corpora/cli-corpus", "--email", "team@example.com",
        "--type", "group", "--role", "writer" }
      assert.are.equal(0, code)
      assert.matches("granteeType%s+GROUP", out)
      code = run{ "permissions", "grant", "corpora/cli-corpus", "--role", "reader" }
      assert.are.equal(0, code)
      code, out = run{ "--json", "permissions", "list", "corpora/cli-corpus" }
      assert.are.equal(0, code)
      local roles = {}
      for _, p in ipairs(cjson.decode(out)) do roles[p.granteeType .. ":" .. p.role] = p.emailAddress or "-" end
      assert.are.same({ ["USER:OWNER"] = "alice@example.com", ["GROUP:WRITER"] = "team@example.com",
        ["EVERYONE:READER"] = "-" }, roles)
      local _, err
      code, _, err = run({ "permissions", "grant", "corpora/cli-corpus", "--role", "reader" }, { key = "k2" })
      assert.are.equal(5, code)
      one_line_error(err)
    end)

    it("grants, lists, revokes and transfers permissions", function()
      assert.are.equal(0, (run{ "tuned", "create", "--data", csv, "--id", "shared-model", "--epochs", "1",
        "--batch-size", "5", "--wait", "--interval", "0.05" }))
      -- bob cannot see it yet
      local code = run({ "tuned", "get", "shared-model" }, { key = "k2" })
      assert.are.equal(5, code)
      local out
      code, out = run{ "permissions", "grant", "tunedModels/shared-model", "--email", "bob@example.com",
        "--role", "reader", "--json" }
      assert.are.equal(0, code)
      local perm = cjson.decode(out)
      assert.are.equal("READER", perm.role)
      assert.are.equal(0, (run({ "tuned", "get", "shared-model" }, { key = "k2" })))

      code, out = run{ "permissions", "list", "shared-model" }
      assert.are.equal(0, code)
      assert.matches("OWNER%s+USER%s+alice@example.com", out)
      assert.matches("READER%s+USER%s+bob@example.com", out)

      code, out = run{ "permissions", "revoke", perm.name }
      assert.are.equal(0, code)
      assert.are.equal("revoked " .. perm.name .. "\n", out)
      assert.are.equal(5, (run({ "tuned", "get", "shared-model" }, { key = "k2" })))

      code, out = run{ "permissions", "transfer", "shared-model", "--email", "bob@example.com" }
      assert.are.equal(0, code)
      assert.are.equal("transferred tunedModels/shared-model to bob@example.com\n", out)
      -- alice is now a writer: she cannot delete, bob can
      assert.are.equal(5, (run{ "tuned", "delete", "shared-model" }))
      assert.are.equal(0, (run({ "tuned", "delete", "shared-model" }, { key = "k2" })))
    end)
  end)
end)
