-- bench/report.lua: turn the raw results of bench/run into bench/RESULTS.md (written to stdout).
--   lua5.4 bench/report.lua RESULTS.tsv ENV.tsv [FINDINGS.md]
-- RESULTS.tsv lines: case <TAB> contender <TAB> run <TAB> payload, where payload is "k=v k=v ..." from a
-- RESULT line, or "SKIP reason", or "FAILED reason".

local res_file, env_file, findings_file = arg[1], arg[2], arg[3]

local function lines(path)
  local t = {}
  local f = path and io.open(path, "r")
  if not f then return t end
  for l in f:lines() do t[#t + 1] = l end
  f:close()
  return t
end

local env, env_order = {}, {}
for _, l in ipairs(lines(env_file)) do
  local k, v = l:match("^([^\t]*)\t(.*)$")
  if k then
    if env[k] == nil then env_order[#env_order + 1] = k end
    env[k] = v
  end
end

-- data[case][contender] = { runs = { {k=v...}, ... }, skip = reason, failed = reason }
local data = {}
local function slot(c, w)
  data[c] = data[c] or {}
  data[c][w] = data[c][w] or { runs = {} }
  return data[c][w]
end
for _, l in ipairs(lines(res_file)) do
  local c, w, run, payload = l:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
  if c then
    local s = slot(c, w)
    local why = payload:match("^SKIP (.*)$")
    local fail = payload:match("^FAILED (.*)$")
    if why then s.skip = why
    elseif fail then s.failed = fail
    else
      local r = {}
      for k, v in payload:gmatch("(%S+)=(%S+)") do r[k] = tonumber(v) or v end
      r.run = tonumber(run)
      s.runs[#s.runs + 1] = r
    end
  end
end

local function median(t)
  if #t == 0 then return nil end
  table.sort(t)
  local m = math.floor((#t + 1) / 2)
  if #t % 2 == 1 then return t[m] end
  return (t[m] + t[m + 1]) / 2
end

-- per-run metric of a contender, then median, min and max
local function stat(c, w, fn)
  local s = data[c] and data[c][w]
  if not s or #s.runs == 0 then return nil end
  local v = {}
  for i, r in ipairs(s.runs) do v[i] = fn(r) end
  local sorted = { table.unpack(v) }
  table.sort(sorted)
  return median(v), sorted[1], sorted[#sorted], #v
end
local function rps(r) return r.secs > 0 and r.n / r.secs or 0 end
local function ms_per(r) return r.n > 0 and r.secs * 1000 / r.n or 0 end
local function field(name) return function(r) return tonumber(r[name]) or 0 end end

local function why_not(c, w)
  local s = data[c] and data[c][w]
  if not s then return "not run (case not selected)" end
  if s.skip then return "not run (" .. s.skip .. ")" end
  if s.failed then return "failed (" .. s.failed .. ")" end
  return "no data"
end

local function fmt(x, digits)
  if x == nil then return "–" end
  if x >= 1000 then return string.format("%.0f", x) end
  if x >= 100 then return string.format("%.1f", x) end
  return string.format("%." .. (digits or 2) .. "f", x)
end

local out = {}
local function p(s) out[#out + 1] = s or "" end

-- A markdown table row of the given cells, then `blank` empty cells (a contender without data).
local function row(cells, blank)
  p("| " .. table.concat(cells, " | ") .. " |" .. string.rep(" |", blank or 0))
end

-- A table's header row and its separator.
local function head(...)
  row({ ... })
  p("|" .. string.rep("---|", select("#", ...)))
end

-- Median over the rounds of (run r of `a`) / (run r of `b`): contenders that ran interleaved (round r of
-- every contender, then round r+1) meet the same moment of the machine. Returns the median (nil without
-- a pair) and the number of pairs.
local function paired(a_runs, fa, b_runs, fb)
  local by_run = {}
  for _, x in ipairs(b_runs) do by_run[x.run] = fb(x) end
  local ratios = {}
  for _, x in ipairs(a_runs) do
    local y = by_run[x.run]
    if y and y > 0 then ratios[#ratios + 1] = fa(x) / y end
  end
  return median(ratios), #ratios
end

local CONTENDER_NAMES = {
  limit = "the limit (bench/limit.c, libcurl from C)",
  gemini = "lua-gemini, blocking",
  ["core-cjson"] = "gemini.core + cjson.decode, bare loop (no Lua layer)",
  ["gemini-nb"] = "lua-gemini, non-blocking (max_in_flight = N)",
  ["gemini-nb-maxconn"] = "lua-gemini, non-blocking, max_connections = N too",
  ["curl-process"] = "a `curl` process per request (io.popen)",
  luasocket = "LuaSocket socket.http (+LuaSec) + cjson",
  node = "Google's Node client (REST fallback)",
  ["cjson-decode"] = "cjson.decode of the body alone",
  ["compact-decode"] = "C decoder to compact vectors alone",
  ["gemini-compact"] = "lua-gemini, compact vectors opt-in",
  ["memory-tables"] = "heap of the decoded tables",
  ["memory-compact"] = "heap of the compact vectors",
  ["gemini-tls"] = "lua-gemini, blocking, HTTPS (HTTP/2)",
  ["limit-tls"] = "the limit, HTTPS (HTTP/2; valgrind heap summary)",
  cjson = "require \"cjson\" (reference)",
  ["socket.http"] = "require \"socket.http\" (reference)",
}
local function cname(w) return CONTENDER_NAMES[w] or w end

local function contenders_of(c, order)
  local list, seen = {}, {}
  for _, w in ipairs(order) do
    if data[c] and data[c][w] then list[#list + 1] = w; seen[w] = true end
  end
  local rest = {}
  for w in pairs(data[c] or {}) do if not seen[w] then rest[#rest + 1] = w end end
  table.sort(rest)
  for _, w in ipairs(rest) do list[#list + 1] = w end
  return list
end

-- ------------------------------------------------------------------ header
p("# lua-gemini benchmark results")
p()
p("Written by `bash bench/run` (`make bench`); see bench/README.md for how to run and read it. Every figure is the")
local seq_rounds = data["seq-h1"] and data["seq-h1"].limit and #data["seq-h1"].limit.runs or 0
p("median of " .. (env.runs or "?") .. " runs (" .. (env.run_time or "?")
  .. " s each for throughput cases" .. (seq_rounds > 0 and (", " .. seq_rounds .. " for the sequential cases") or "")
  .. ") unless said otherwise;")
p("the range is min–max over the runs. Servers: nginx on 127.0.0.1 with canned v1beta3 replies (HTTP/1.1")
p("keep-alive, and HTTPS offering HTTP/2 with a certificate made at bench time), and the bundled emulator")
p("with `--latency 50` for the latency-bound case.")
p()
p("## Machine and versions")
p()
p("| | |")
p("|---|---|")
for _, k in ipairs(env_order) do p("| " .. k .. " | " .. env[k]:gsub("|", "\\|") .. " |") end
p()

-- ------------------------------------------------------------------ targets
local targets = {}
local function target(name, value_text, met, explanation)
  targets[#targets + 1] = { name, value_text, met, explanation }
end
local function ratio_target(name, num, den, want, cmp_le)
  -- num/den are {case, contender, fn}
  local a = stat(num[1], num[2], num[3])
  local b = stat(den[1], den[2], den[3])
  if not a or not b or b == 0 then
    local missing = not a and why_not(num[1], num[2]) or why_not(den[1], den[2])
    target(name, "–", nil, missing)
    return
  end
  local r = a / b
  local how = "ratio of the medians"
  -- contenders of one case ran interleaved: pair run i of each (same moment of the machine) and take the
  -- median of the per-round ratios, which cancels most of the load from elsewhere
  if num[1] == den[1] or (num[1]:match("^latency") and den[1]:match("^latency")) then
    local pr, k = paired(data[num[1]][num[2]].runs, num[3], data[den[1]][den[2]].runs, den[3])
    if k > 0 then r = pr; how = "median of " .. k .. " paired rounds" end
  end
  local met
  if cmp_le then met = r <= want else met = r >= want end
  target(name, string.format("%.2f×", r), met,
    string.format("%s: %s %s vs %s %s", how, fmt(a), num[4] or "", fmt(b), den[4] or ""))
end

-- median over the rounds of (run r of w1) / (run r of w2), for contenders that ran interleaved in case c
local function paired_ratio_of(c, w1, w2, fn)
  local a, b = data[c] and data[c][w1], data[c] and data[c][w2]
  if not a or not b then return nil end
  return (paired(a.runs, fn, b.runs, fn))
end

-- blocking lua-gemini against another contender of a sequential case, in requests per second
for _, t in ipairs({
  { "Blocking sequential ≥ 0.85× the limit, HTTP/1.1", "seq-h1", "limit", 0.85 },
  { "Blocking sequential ≥ 0.85× the limit, HTTPS", "seq-tls", "limit", 0.85 },
  { "≥ 50× a curl process per request (HTTP/1.1)", "seq-h1", "curl-process", 50 },
  { "≥ 50× a curl process per request (HTTPS)", "seq-tls", "curl-process", 50 },
  { "≥ 1.2× LuaSocket over HTTP", "seq-h1", "luasocket", 1.2 },
  { "≥ 5× LuaSocket+LuaSec over HTTPS", "seq-tls", "luasocket", 5 },
  { "≥ 5× Google's Node client (HTTP/1.1)", "seq-h1", "node", 5 },
  { "≥ 5× Google's Node client (HTTPS)", "seq-tls", "node", 5 },
}) do
  ratio_target(t[1], { t[2], "gemini", rps, "req/s" }, { t[2], t[3], rps, "req/s" }, t[4])
  -- context for the limit targets: how close the core alone (no Lua layer) comes, in the same rounds
  local floor = t[3] == "limit" and paired_ratio_of(t[2], "core-cjson", "limit", rps)
  if floor then
    local tt = targets[#targets]
    tt[4] = tt[4] .. string.format("; gemini.core + cjson.decode with no Lua layer: %.2f×", floor)
  end
end
ratio_target("Non-blocking, 32 in flight over HTTP/2 ≥ 1.5× blocking (HTTPS)",
  { "conc-h2-32", "gemini-nb", rps, "req/s" },
  { (data["conc-h2-32"] or {}).gemini and "conc-h2-32" or "seq-tls", "gemini", rps, "req/s blocking" }, 1.5)
do -- context for the HTTP/2 target: what concurrency buys the C limit itself on this machine
  local lc = stat("conc-h2-32", "limit", rps)
  local ls = stat("seq-tls", "limit", rps)
  local t = targets[#targets]
  if t and lc and ls then
    t[4] = t[4] .. string.format("; the C limit itself: %s req/s at 32 in flight vs %s sequential (%.2f×)",
      fmt(lc), fmt(ls), lc / ls)
  end
end
ratio_target("Latency-bound (--latency 50), 32 in flight ≥ 20× sequential",
  { "latency-32", "gemini-nb", rps, "req/s" }, { "latency-seq", "gemini", rps, "req/s" }, 20)
do
  local m = stat("latency-32", "gemini-nb-maxconn", rps)
  local sq = stat("latency-seq", "gemini", rps)
  local t = targets[#targets]
  if t and m and sq then
    t[4] = t[4] .. string.format("; with max_connections = 32: %s req/s (%.2f×)", fmt(m), m / sq)
  end
end
do -- batchEmbedText vs transfer + cjson.decode
  local g = stat("embed", "gemini", ms_per)
  local t = stat("embed", "limit", ms_per)
  local d = stat("embed", "cjson-decode", ms_per)
  if g and t and d then
    local r = g / (t + d)
    local how = "ratio of the medians"
    local tr, dr = {}, {}
    for _, x in ipairs(data.embed.limit.runs) do tr[x.run] = ms_per(x) end
    for _, x in ipairs(data.embed["cjson-decode"].runs) do dr[x.run] = ms_per(x) end
    local ratios = {}
    for _, x in ipairs(data.embed.gemini.runs) do
      if tr[x.run] and dr[x.run] then ratios[#ratios + 1] = ms_per(x) / (tr[x.run] + dr[x.run]) end
    end
    if #ratios > 0 then r = median(ratios); how = "median of " .. #ratios .. " paired rounds" end
    target("batchEmbedText 100×768 ≤ 1.2× (transfer + cjson.decode)", string.format("%.2f×", r), r <= 1.2,
      string.format("%s: %s ms vs %s ms transfer + %s ms decode", how, fmt(g), fmt(t), fmt(d)))
  else
    target("batchEmbedText 100×768 ≤ 1.2× (transfer + cjson.decode)", "–", nil,
      not g and why_not("embed", "gemini") or not t and why_not("embed", "limit") or why_not("embed", "cjson-decode"))
  end
end
ratio_target("Compact embedding decode ≥ 3× faster than cjson.decode",
  { "embed", "cjson-decode", ms_per, "ms" }, { "embed", "compact-decode", ms_per, "ms" }, 3)
ratio_target("Compact vectors use ≥ 3× less memory than tables",
  { "embed", "memory-tables", field("kib"), "KiB" }, { "embed", "memory-compact", field("kib"), "KiB" }, 3)
do
  local g = stat("rss", "gemini", field("growth_kib"))
  if g then
    target("RSS growth < 1 MiB from 100 to 20,000 requests", string.format("%.0f KiB", g), g < 1024,
      "median of the runs' growth after a full GC")
  else
    target("RSS growth < 1 MiB from 100 to 20,000 requests", "–", nil, why_not("rss", "gemini"))
  end
  local rq = stat("require", "gemini", function(r) return r.secs * 1000 end)
  if rq then
    target("`require \"gemini\"` < 5 ms", string.format("%.2f ms", rq), rq < 5, "fresh lua5.4 process, warm page cache")
  else
    target("`require \"gemini\"` < 5 ms", "–", nil, why_not("require", "gemini"))
  end
end

p("## Targets")
p()
head("target", "measured", "met?", "from")
local n_met, n_missed, n_unknown = 0, 0, 0
for _, t in ipairs(targets) do
  local met = t[3] == true and "**met**" or t[3] == false and "**not met**" or "not measured"
  if t[3] == true then n_met = n_met + 1
  elseif t[3] == false then n_missed = n_missed + 1
  else n_unknown = n_unknown + 1 end
  row({ t[1], t[2], met, ((t[4] or ""):gsub("|", "\\|")) })
end
p()
p(string.format("%d met, %d not met, %d not measured. Where a target is not met, the explanation is under", n_met,
  n_missed, n_unknown))
p("Findings below.")
p()

-- ------------------------------------------------------------------ throughput tables
local ORDER = { "limit", "gemini", "core-cjson", "gemini-nb", "gemini-nb-maxconn", "curl-process", "luasocket", "node" }
local paired_ratio = paired_ratio_of

local function throughput_table(c, title, limit_w)
  p("### " .. title)
  p()
  local lim = stat(c, limit_w or "limit", rps)
  head("contender", "req/s", "ms/request", "× limit (paired)", "range (req/s)", "requests/run")
  for _, w in ipairs(contenders_of(c, ORDER)) do
    local m, lo, hi = stat(c, w, rps)
    if m then
      local nmed = stat(c, w, function(r) return r.n end)
      row({ cname(w), fmt(m), fmt(1000 / m, 3),
        lim and string.format("%.2f", paired_ratio(c, w, limit_w or "limit", rps) or m / lim) or "–",
        fmt(lo) .. "–" .. fmt(hi), string.format("%.0f", nmed) })
    else
      row({ cname(w), why_not(c, w) }, 4)
    end
  end
  p()
end

p("## Cases")
p()
p("In the in-flight cases the limit is bench/limit.c with N reused easy handles on one multi handle. Contenders of")
p("a case run interleaved (round r of every contender, then round r+1), so a busy moment hits them all.")
p()
throughput_table("seq-h1", "Sequential generateText, HTTP/1.1 keep-alive")
throughput_table("seq-tls",
  "Sequential generateText, HTTPS (libcurl negotiates HTTP/2; LuaSec and Node speak HTTP/1.1)")
for _, proto in ipairs({ "h1", "h2" }) do
  for _, k in ipairs({ 8, 32, 64 }) do
    local c = "conc-" .. proto .. "-" .. k
    if data[c] then
      local how = proto == "h1" and "HTTP/1.1 (one connection per request in flight)"
        or "HTTP/2 over TLS (multiplexed)"
      throughput_table(c, string.format("%d in flight, %s", k, how), "limit")
    end
  end
end

if data.embed then
  p("### batchEmbedText, 100 × 768 floats: time to a usable Lua result")
  p()
  local t = stat("embed", "limit", ms_per)
  local d = stat("embed", "cjson-decode", ms_per)
  local base = t and d and (t + d)
  p("The baseline is the transfer alone (bench/limit.c, same request body, HTTP/1.1) plus `cjson.decode` of the same")
  p("reply body in Lua" .. (base and string.format(": %s + %s = **%s ms**.", fmt(t), fmt(d), fmt(base)) or "."))
  p()
  head("contender", "ms per result", "× baseline", "range (ms)")
  for _, w in ipairs(contenders_of("embed", { "limit", "cjson-decode", "gemini", "compact-decode", "gemini-compact",
      "luasocket", "curl-process", "node" })) do
    if not w:match("^memory") then
      local m, lo, hi = stat("embed", w, ms_per)
      if m then
        row({ cname(w), fmt(m), base and string.format("%.2f", m / base) or "–", fmt(lo) .. "–" .. fmt(hi) })
      else
        row({ cname(w), why_not("embed", w) }, 2)
      end
    end
  end
  p()
  local mt = stat("embed", "memory-tables", field("kib"))
  local mc = stat("embed", "memory-compact", field("kib"))
  p("Memory held by one decoded reply (Lua heap after a full GC, `collectgarbage(\"count\")` delta): tables of numbers "
    .. (mt and (fmt(mt) .. " KiB") or why_not("embed", "memory-tables")) .. "; compact vectors "
    .. (mc and (fmt(mc) .. " KiB") or why_not("embed", "memory-compact")) .. ".")
  p()
end

if data["latency-seq"] or data["latency-32"] then
  p("### Latency-bound: 200 generateText against the emulator with `--latency 50`")
  p()
  head("contender", "mode", "seconds for the run", "req/s", "range (s)")
  for _, r in ipairs({ { "latency-seq", "limit", "sequential" }, { "latency-seq", "gemini", "sequential" },
      { "latency-32", "limit", "32 in flight" }, { "latency-32", "gemini-nb", "32 in flight" },
      { "latency-32", "gemini-nb-maxconn", "32 in flight" } }) do
    local m, lo, hi = stat(r[1], r[2], function(x) return x.secs end)
    if m then
      local n = stat(r[1], r[2], function(x) return x.n end)
      row({ cname(r[2]), r[3], string.format("%.2f (%.0f requests)", m, n), fmt((stat(r[1], r[2], rps))),
        string.format("%.2f–%.2f", lo, hi) })
    else
      row({ cname(r[2]), r[3], why_not(r[1], r[2]) }, 2)
    end
  end
  p()
end

if data.require then
  p("### `require` time (fresh `lua5.4` process each run, wall clock around the `require` call)")
  p()
  head("module", "ms", "range (ms)", "runs")
  for _, w in ipairs(contenders_of("require", { "gemini", "cjson", "socket.http" })) do
    local m, lo, hi, k = stat("require", w, function(r) return r.secs * 1000 end)
    local label = w == "gemini" and "require \"gemini\"" or cname(w)
    if m then row({ label, string.format("%.2f", m), string.format("%.2f–%.2f", lo, hi), string.format("%d", k) })
    else row({ label, why_not("require", w) }, 2) end
  end
  p()
end

if data.rss then
  p("### RSS after 100 and after 20,000 sequential requests (HTTP/1.1, full GC before each reading)")
  p()
  head("contender", "RSS at 100 (KiB)", "RSS at the end (KiB)", "growth (KiB)", "requests")
  local g = stat("rss", "gemini", field("growth_kib"))
  if g then
    p(string.format("| %s | %.0f | %.0f | %.0f | %.0f |", cname("gemini"), stat("rss", "gemini", field("rss100_kib")),
      stat("rss", "gemini", field("rss_end_kib")), g, stat("rss", "gemini", function(r) return r.n end)))
  else
    row({ cname("gemini"), why_not("rss", "gemini") }, 3)
  end
  local lr = stat("rss", "limit", rps)
  if lr then p(string.format("\n(the limit ran the same 20,000 requests at %s req/s)", fmt(lr))) end
  p()
end

if data.alloc then
  p("### Allocations per small request (bench/alloc_count: counting lua_Alloc + interposed malloc)")
  p()
  p("Counted over the timed requests after a warm-up. \"Lua\" is every block the Lua state allocates (new blocks;")
  p("resizes separately); \"C\" is every malloc/calloc/realloc outside the Lua allocator (libcurl, OpenSSL,")
  p("the C core).")
  p("The limit's rows come from valgrind's heap summary (two run lengths, the difference per request).")
  p()
  head("contender", "Lua allocs", "Lua resizes", "Lua bytes", "C allocs", "C bytes")
  for _, w in ipairs(contenders_of("alloc", { "limit", "gemini", "limit-tls", "gemini-tls", "luasocket" })) do
    local la = stat("alloc", w, field("lua_allocs"))
    if la then
      p(string.format("| %s | %.1f | %.1f | %.0f | %.1f | %.0f |", cname(w), la, stat("alloc", w, field("lua_resizes")),
        stat("alloc", w, field("lua_bytes")), stat("alloc", w, field("c_allocs")), stat("alloc", w, field("c_bytes"))))
    else
      row({ cname(w), why_not("alloc", w) }, 4)
    end
  end
  p()
end

-- ------------------------------------------------------------------ not run
local notrun = {}
for c, ws in pairs(data) do
  for w, s in pairs(ws) do
    if s.skip or s.failed then notrun[#notrun + 1] = string.format("- %s / %s: %s", c, w, why_not(c, w)) end
  end
end
table.sort(notrun)
if #notrun > 0 then
  p("## Not run or failed")
  p()
  for _, l in ipairs(notrun) do p(l) end
  p()
end

local findings = findings_file and io.open(findings_file, "r")
if findings then
  p(findings:read("*a"))
  findings:close()
end

io.write(table.concat(out, "\n"), "\n")
