-- gemini.dataset: tuning data from pairs, CSV (RFC 4180) and JSON Lines, with checks.
local dataset = require("gemini.dataset")

local function tmpfile(content)
  local name = os.tmpname()
  local f = assert(io.open(name, "wb"))
  f:write(content)
  f:close()
  return name
end

describe("gemini.dataset", function()
  local files = {}
  local function file(content)
    local n = tmpfile(content)
    files[#files + 1] = n
    return n
  end
  teardown(function()
    for _, n in ipairs(files) do os.remove(n) end
  end)

  describe("from_pairs", function()
    it("builds the wire shape of tuningTask.trainingData from pairs and tables", function()
      local ds = assert(dataset.from_pairs{ { "1", "2" }, { input = "3", output = "4" },
        { textInput = "5", output = "6" },
        { text_input = "7", output = "8" } })
      assert.are.same({ examples = { examples = {
        { textInput = "1", output = "2" }, { textInput = "3", output = "4" },
        { textInput = "5", output = "6" }, { textInput = "7", output = "8" },
      } } }, ds)
      assert.are.equal(4, ds:count())
      assert.are.same({ textInput = "3", output = "4" }, ds:example(2))
      local seen = {}
      for i, input, output in ds:each() do seen[#seen + 1] = i .. ":" .. input .. ">" .. output end
      assert.are.same({ "1:1>2", "2:3>4", "3:5>6", "4:7>8" }, seen)
      assert.is_true(dataset.is_dataset(ds))
    end)

    it("has no methods visible to pairs(), so it encodes as the wire shape", function()
      local ds = assert(dataset.from_pairs{ { "a", "b" } })
      local keys = {}
      for k in pairs(ds) do keys[#keys + 1] = k end
      assert.are.same({ "examples" }, keys)
      local cjson = require("cjson").new()
      assert.are.same({ examples = { examples = { { textInput = "a", output = "b" } } } },
        cjson.decode(cjson.encode(ds)))
    end)

    it("accepts a map of input to output, sorted by input", function()
      local ds = assert(dataset.from_pairs{ two = "2", one = "1" })
      assert.are.same({ { textInput = "one", output = "1" }, { textInput = "two", output = "2" } },
        ds.examples.examples)
    end)

    it("reports empty and oversized examples with their number", function()
      local ds, err = dataset.from_pairs{ { "1", "2" }, { "3", "  " } }
      assert.is_nil(ds)
      assert.are.equal("example 2: empty output", err)
      ds, err = dataset.from_pairs{ { "", "2" } }
      assert.is_nil(ds)
      assert.are.equal("example 1: empty input", err)
      ds, err = dataset.from_pairs({ { "ok", "fine" }, { ("x"):rep(11), "y" } }, { max_input_chars = 10 })
      assert.is_nil(ds)
      assert.are.equal("example 2: input too long (11 characters, limit 10)", err)
      ds, err = dataset.from_pairs({ { "a", ("é"):rep(6) } }, { max_output_chars = 5 })
      assert.is_nil(ds)
      assert.are.equal("example 1: output too long (6 characters, limit 5)", err)
      assert.is_truthy(dataset.from_pairs({ { "a", ("é"):rep(5) } }, { max_output_chars = 5 }))
      ds, err = dataset.from_pairs{ { "1", 2 } }
      assert.is_nil(ds)
      assert.are.equal("example 1: output is number, expected a string", err)
      ds, err = dataset.from_pairs{}
      assert.is_nil(ds)
      assert.are.equal("pairs: no examples", err)
    end)

    it("raises on a non-table argument", function()
      assert.has_error(function() dataset.from_pairs("x") end,
        "bad argument #1 to 'from_pairs' (table expected, got string)")
    end)
  end)

  describe("parse_csv", function()
    it("handles quoted fields with commas, doubled quotes and newlines, CRLF and a BOM", function()
      local recs = assert(dataset.parse_csv('\239\187\191a,b\r\n"x, y","say ""hi""\r\nthere"\r\nlast,""\n'))
      assert.are.equal(3, #recs)
      assert.are.same({ "a", "b" }, { recs[1][1], recs[1][2] })
      assert.are.same({ "x, y", 'say "hi"\r\nthere' }, { recs[2][1], recs[2][2] })
      assert.are.same({ "last", "" }, { recs[3][1], recs[3][2] })
      assert.are.same({ 1, 2, 4 }, { recs[1].line, recs[2].line, recs[3].line })
    end)

    it("keeps empty trailing fields and skips blank lines", function()
      local recs = assert(dataset.parse_csv("a,\n\n,b\nc"))
      assert.are.equal(3, #recs)
      assert.are.same({ "a", "" }, { recs[1][1], recs[1][2] })
      assert.are.same({ "", "b" }, { recs[2][1], recs[2][2] })
      assert.are.same({ "c" }, { recs[3][1] })
      assert.are.equal(4, recs[3].line)
    end)

    it("reports malformed quoting with the line", function()
      local r, err = dataset.parse_csv('a,b\n"open,\nmore', { name = "f.csv" })
      assert.is_nil(r)
      assert.are.equal("f.csv:2: unterminated quoted field", err)
      r, err = dataset.parse_csv('a,b\n"x"y,z', { name = "f.csv" })
      assert.is_nil(r)
      assert.are.equal('f.csv:2: unexpected "y" after a closing quote', err)
      r, err = dataset.parse_csv('a,b\nx"y,z', { name = "f.csv" })
      assert.is_nil(r)
      assert.are.equal("f.csv:2: quote inside an unquoted field", err)
    end)

    it("supports another separator", function()
      local recs = assert(dataset.parse_csv("a;b,c\n", { sep = ";" }))
      assert.are.same({ "a", "b,c" }, { recs[1][1], recs[1][2] })
    end)
  end)

  describe("from_csv", function()
    it("selects columns by header name", function()
      local path = file('id,question,answer\n1,"What is 1+1?","2"\n2,"Say ""hello"", politely","Hello,\nfriend"\n')
      local ds = assert(dataset.from_csv(path, { input = "question", output = "answer" }))
      assert.are.same({
        { textInput = "What is 1+1?", output = "2" },
        { textInput = 'Say "hello", politely', output = "Hello,\nfriend" },
      }, ds.examples.examples)
    end)

    it("selects columns by index, with or without a header", function()
      local path = file("x,y,z\n1,2,3\n4,5,6\n")
      local ds = assert(dataset.from_csv(path, { input = 3, output = 1, header = true }))
      assert.are.same({ { textInput = "3", output = "1" }, { textInput = "6", output = "4" } }, ds.examples.examples)
      ds = assert(dataset.from_csv(path, { input = 1, output = 2 }))
      assert.are.equal(3, ds:count())
      assert.are.same({ textInput = "x", output = "y" }, ds:example(1))
    end)

    it("finds input/output columns by their usual names, else uses the first two", function()
      local ds = assert(dataset.from_csv(file("Output,Input\nb,a\n")))
      assert.are.same({ { textInput = "a", output = "b" } }, ds.examples.examples)
      ds = assert(dataset.from_csv(file("q,a\nc,d\n")))
      assert.are.same({ { textInput = "c", output = "d" } }, ds.examples.examples)
    end)

    it("reports an unknown column, listing the columns", function()
      local path = file("question,answer\n1,2\n")
      local ds, err = dataset.from_csv(path, { input = "prompt", output = "answer" })
      assert.is_nil(ds)
      assert.are.equal(path .. ':1: no column named "prompt" for input (columns: question, answer)', err)
    end)

    it("reports empty examples with the line where the record starts", function()
      local path = file('input,output\n"multi\nline",ok\n"a",""\n')
      local ds, err = dataset.from_csv(path)
      assert.is_nil(ds)
      assert.are.equal(path .. ":4: empty output", err)
    end)

    it("reports a short row and an oversized example", function()
      local path = file("input,output\na,b\nc\n")
      local ds, err = dataset.from_csv(path)
      assert.is_nil(ds)
      assert.are.equal(path .. ":3: the row has 1 field(s), no column 2 (output)", err)
      path = file("input,output\na,b\nc,dddddd\n")
      ds, err = dataset.from_csv(path, { max_output_chars = 5 })
      assert.is_nil(ds)
      assert.are.equal(path .. ":3: output too long (6 characters, limit 5)", err)
    end)

    it("reports a file with no examples and a missing file", function()
      local path = file("input,output\n")
      local ds, err = dataset.from_csv(path)
      assert.is_nil(ds)
      assert.are.equal(path .. ": no examples", err)
      ds, err = dataset.from_csv("/nonexistent/data.csv")
      assert.is_nil(ds)
      assert.matches("/nonexistent/data.csv", err, 1, true)
    end)
  end)

  describe("from_jsonl", function()
    it("reads one object per line, skipping blank lines", function()
      local path = file('{"text_input": "1", "output": "2"}\n\n{"input": "3", "output": "4"}\r\n'
        .. '{"prompt":"5","output":"6"}')
      local ds = assert(dataset.from_jsonl(path))
      assert.are.same({ { textInput = "1", output = "2" }, { textInput = "3", output = "4" },
        { textInput = "5", output = "6" } }, ds.examples.examples)
    end)

    it("uses the given keys", function()
      local path = file('{"q": "a", "r": "b"}\n')
      local ds = assert(dataset.from_jsonl(path, { input = "q", output = "r" }))
      assert.are.same({ { textInput = "a", output = "b" } }, ds.examples.examples)
    end)

    it("reports bad JSON, missing keys and empty examples with line numbers", function()
      local path = file('{"input": "1", "output": "2"}\n{"input": "3", "output": \n')
      local ds, err = dataset.from_jsonl(path)
      assert.is_nil(ds)
      assert.matches("^" .. path:gsub("%p", "%%%0") .. ":2: invalid JSON", err)
      path = file('\n{"input": "3"}\n')
      ds, err = dataset.from_jsonl(path)
      assert.is_nil(ds)
      assert.are.equal(path .. ":2: no output key (output)", err)
      path = file('{"input": "3", "output": ""}\n')
      ds, err = dataset.from_jsonl(path)
      assert.is_nil(ds)
      assert.are.equal(path .. ":1: empty output", err)
      path = file('[1,2]\n')
      ds, err = dataset.from_jsonl(path)
      assert.is_nil(ds)
      assert.are.equal(path .. ":1: no input key (text_input, textInput, input or prompt)", err)
      path = file('"just a string"\n')
      ds, err = dataset.from_jsonl(path)
      assert.is_nil(ds)
      assert.are.equal(path .. ":1: expected a JSON object", err)
    end)
  end)
end)
