--- The Lua side of the embed example (examples/embed/host.c): the host calls `start` once, then
-- `client:poll(0)` every frame (callbacks run inside poll), then `finish`.
local gemini = require("gemini")

local game = {}
local replies, failures, wanted = {}, {}, 0

--- Creates the client and starts `n` requests, each with a callback; returns the client to the host.
function game.start(base_url, n)
  wanted = n
  local client = gemini.new { api_key = os.getenv("GEMINI_API_KEY") or "embed-key", base_url = base_url }
  for i = 1, n do
    client:generate_text("models/text-bison-001", { prompt = { text = "NPC line " .. i } }, function(res, err)
      if res and res.candidates and res.candidates[1] then
        replies[#replies + 1] = i
      else
        failures[#failures + 1] = tostring(err or "reply without candidates")
      end
    end)
  end
  return client
end

--- Returns whether every request got a reply, and a one-line summary.
function game.finish()
  local ok = #replies == wanted and #failures == 0
  local summary = string.format("%d of %d replies, %d errors", #replies, wanted, #failures)
  if failures[1] then summary = summary .. " (first: " .. failures[1] .. ")" end
  return ok, summary
end

return game
