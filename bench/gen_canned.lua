-- bench/gen_canned.lua: write the canned v1beta3 bodies nginx serves, and the request bodies the
-- contenders send.
--
--   lua5.4 bench/gen_canned.lua OUTDIR [REPO_ROOT]
--
-- It starts the bundled emulator (bin/gemini-emulator --port 0), records its real replies with the curl
-- command, then stops it. When the emulator is missing or a reply is not a 200, it writes bodies shaped
-- like the recorded Google replies of shared/reference/examples.md instead, and says so.
-- Files written under OUTDIR:
--   www/v1beta3/models/text-bison-001:generateText        small generateText reply
--   www/v1beta3/models/embedding-gecko-001:batchEmbedText  100 x 768 embeddings reply
--   www/v1beta3/models.json                               models list (served for GET /v1beta3/models)
--   req/generate.json  req/embed.json                     request bodies
--   canned.txt                                            one line per body: name, source, bytes
-- Loopback only; every wait is bounded.

local cjson = require("cjson").new()

local out = assert(arg[1], "usage: gen_canned.lua OUTDIR [REPO_ROOT]")
local root = arg[2] or "."

local function shquote(s) return "'" .. (tostring(s):gsub("'", "'\\''")) .. "'" end
local function readfile(p)
  local f = io.open(p, "rb"); if not f then return nil end
  local s = f:read("*a"); f:close(); return s
end
local function writefile(p, s)
  local f = assert(io.open(p, "wb")); f:write(s); f:close()
end
local function sh(cmd)
  local ok = os.execute(cmd)
  return ok == true or ok == 0
end
local function sleep(s) os.execute("sleep " .. s) end

assert(sh("mkdir -p " .. shquote(out .. "/www/v1beta3/models") .. " " .. shquote(out .. "/req")))

-- request bodies: identical bytes for every contender
local N_TEXTS, DIM = 100, 768
local gen_req = '{"prompt":{"text":"hi"}}'
local texts = {}
for i = 1, N_TEXTS do texts[i] = "benchmark text number " .. i .. ": the quick brown fox jumps over the lazy dog" end
local embed_req = cjson.encode({ texts = texts })
writefile(out .. "/req/generate.json", gen_req)
writefile(out .. "/req/embed.json", embed_req)

-- fallbacks shaped like the recorded Google replies (pretty-printed, 2-space indent, as Google sends)
local function synth_generate()
  local cats = { "DEROGATORY", "TOXICITY", "VIOLENCE", "SEXUAL", "MEDICAL", "DANGEROUS" }
  local r = {}
  for i, c in ipairs(cats) do
    r[i] = '        {\n          "category": "HARM_CATEGORY_' .. c
      .. '",\n          "probability": "NEGLIGIBLE"\n        }'
  end
  return '{\n  "candidates": [\n    {\n      "output": "Hi there! How can I help you today?",\n'
    .. '      "safetyRatings": [\n' .. table.concat(r, ",\n") .. '\n      ]\n    }\n  ]\n}\n'
end

local function synth_embed()
  local seed = 12345
  local function rnd() -- deterministic LCG, values in (-0.1, 0.1)
    seed = (seed * 1103515245 + 12345) % 2147483648
    return (seed / 2147483648 - 0.5) * 0.2
  end
  local parts = { '{\n  "embeddings": [\n' }
  for e = 1, N_TEXTS do
    local vals = {}
    for d = 1, DIM do vals[d] = string.format("        %.8g", rnd()) end
    parts[#parts + 1] = '    {\n      "value": [\n' .. table.concat(vals, ",\n") .. '\n      ]\n    }'
      .. (e < N_TEXTS and ",\n" or "\n")
  end
  parts[#parts + 1] = '  ]\n}\n'
  return table.concat(parts)
end

local function synth_models()
  local function model(name, display, desc, inl, outl, methods, extra)
    local m = { '    {\n      "name": "models/' .. name .. '",\n      "version": "' .. name:match("%d+$") .. '",\n'
      .. '      "displayName": "' .. display .. '",\n      "description": "' .. desc .. '",\n'
      .. '      "inputTokenLimit": ' .. inl .. ',\n      "outputTokenLimit": ' .. outl .. ',\n'
      .. '      "supportedGenerationMethods": [\n        "' .. table.concat(methods, '",\n        "') .. '"\n      ]' }
    m[#m + 1] = extra and (",\n" .. extra .. "\n    }") or "\n    }"
    return table.concat(m)
  end
  local t = '      "temperature": %s,\n      "topP": 0.95,\n      "topK": 40'
  return '{\n  "models": [\n' .. table.concat({
    model("chat-bison-001", "Chat Bison", "Chat-optimized generative language model.", 4096, 1024,
      { "generateMessage", "countMessageTokens" }, t:format("0.25")),
    model("text-bison-001", "Text Bison", "Model targeted for text generation.", 8196, 1024,
      { "generateText", "countTextTokens", "createTunedTextModel" }, t:format("0.7")),
    model("embedding-gecko-001", "Embedding Gecko", "Obtain a distributed representation of a text.", 1024, 1,
      { "embedText", "countTextTokens" }),
  }, ",\n") .. '\n  ]\n}\n'
end

-- the emulator
local emu = { ok = false, why = "bin/gemini-emulator not found" }
local tmp = os.tmpname()
if readfile(root .. "/bin/gemini-emulator") then
  local cmd = "cd " .. shquote(root) .. " && lua5.4 bin/gemini-emulator --port 0 </dev/null >" .. shquote(tmp .. ".out")
    .. " 2>" .. shquote(tmp .. ".err") .. " & echo $! >" .. shquote(tmp .. ".pid")
  sh(cmd)
  emu.pid = tonumber((readfile(tmp .. ".pid") or ""):match("%d+"))
  emu.why = "the emulator printed no listening line within 10 s"
  for _ = 1, 200 do
    local line = (readfile(tmp .. ".out") or ""):match("^([^\n]*)\n")
    if line then
      emu.url = line:match("^gemini%-emulator listening on (http://%S+)$")
      if emu.url then emu.ok = true else emu.why = "unexpected line from the emulator: " .. line end
      break
    end
    sleep(0.05)
  end
end

local function record(method, path, body_file)
  if not emu.ok then return nil, emu.why end
  local cmd = "curl -sS --max-time 30 -o " .. shquote(tmp .. ".resp") .. " -w '%{http_code}' -X " .. method
    .. " -H 'x-goog-api-key: bench-key' -H 'Content-Type: application/json'"
    .. (body_file and (" --data-binary @" .. shquote(body_file)) or "") .. " " .. shquote(emu.url .. path)
  local p = io.popen(cmd .. " 2>&1")
  local code = p:read("*a"); p:close()
  local resp = readfile(tmp .. ".resp") or ""
  os.remove(tmp .. ".resp")
  if code ~= "200" then
    return nil, "emulator answered " .. code .. ": " .. resp:sub(1, 160):gsub("%s+", " ")
  end
  local ok = pcall(cjson.decode, resp)
  if not ok then return nil, "emulator reply is not JSON" end
  return resp
end

local items = {
  { "generateText", "POST", "/v1beta3/models/text-bison-001:generateText", out .. "/req/generate.json",
    "/www/v1beta3/models/text-bison-001:generateText", synth_generate,
    function(d) return type(d.candidates) == "table" and d.candidates[1] ~= nil end },
  { "batchEmbedText", "POST", "/v1beta3/models/embedding-gecko-001:batchEmbedText", out .. "/req/embed.json",
    "/www/v1beta3/models/embedding-gecko-001:batchEmbedText", synth_embed,
    function(d)
      return type(d.embeddings) == "table" and #d.embeddings == N_TEXTS
        and type(d.embeddings[1].value) == "table" and #d.embeddings[1].value == DIM
    end },
  { "models.list", "GET", "/v1beta3/models", nil, "/www/v1beta3/models.json", synth_models,
    function(d) return type(d.models) == "table" end },
}
local report = {}
for _, it in ipairs(items) do
  local name, method, path, req, file, synth, check = table.unpack(it)
  local body, why = record(method, path, req)
  local source = "emulator"
  if body and not check(cjson.decode(body)) then body, why = nil, "emulator reply has an unexpected shape" end
  if not body then
    body, source = synth(), "synthesized (" .. why .. ")"
  end
  writefile(out .. file, body)
  report[#report + 1] = string.format("%s\t%s\t%d", name, source, #body)
end
if emu.pid then
  sh("kill " .. emu.pid .. " 2>/dev/null")
end
for _, s in ipairs({ ".out", ".err", ".pid" }) do os.remove(tmp .. s) end
os.remove(tmp)
writefile(out .. "/canned.txt", table.concat(report, "\n") .. "\n")
io.write(table.concat(report, "\n"), "\n")
