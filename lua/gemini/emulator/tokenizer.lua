--- The emulator's deterministic tokenizer, shared by the count methods and generation.
--
-- A text is split into tokens left to right:
--  * a run of ASCII letters and digits is one token per started 6 characters
--    ("hello" = 1, "internationalization" = 4);
--  * every other non-space character (punctuation, symbols, each non-ASCII UTF-8 character)
--    is one token;
--  * whitespace is free.
-- countMessageTokens adds 3 for the prompt, 5 per message (context, each example input and
-- output, each message) on top of their content tokens.
-- @module gemini.emulator.tokenizer

local M = {}

local ceil = math.ceil

--- Split a text into tokens: returns an array of { text =, first =, last = } (byte offsets),
-- one per token (a long word yields several pieces).
function M.tokenize(s)
  local out = {}
  local i, n = 1, #s
  while i <= n do
    local a, b = s:find("^[%w]+", i)
    if a then
      local p = a
      while p <= b do
        local e = p + 5
        if e > b then e = b end
        out[#out + 1] = { text = s:sub(p, e), first = p, last = e }
        p = e + 1
      end
      i = b + 1
    else
      local c = s:byte(i)
      if c == 32 or (c >= 9 and c <= 13) then
        i = i + 1
      else
        local len = 1
        if c >= 0xF0 then len = 4 elseif c >= 0xE0 then len = 3 elseif c >= 0xC0 then len = 2 end
        out[#out + 1] = { text = s:sub(i, i + len - 1), first = i, last = i + len - 1 }
        i = i + len
      end
    end
  end
  return out
end

--- Number of tokens in a text.
function M.count(s)
  local n = 0
  local i, len = 1, #s
  while i <= len do
    local a, b = s:find("^[%w]+", i)
    if a then
      n = n + ceil((b - a + 1) / 6)
      i = b + 1
    else
      local c = s:byte(i)
      if c == 32 or (c >= 9 and c <= 13) then
        i = i + 1
      else
        n = n + 1
        local l = 1
        if c >= 0xF0 then l = 4 elseif c >= 0xE0 then l = 3 elseif c >= 0xC0 then l = 2 end
        i = i + l
      end
    end
  end
  return n
end

--- Tokens of a MessagePrompt (plain table with context, examples, messages).
function M.count_prompt(p)
  local n = 3
  if p.context and p.context ~= "" then n = n + 5 + M.count(p.context) end
  for _, ex in ipairs(p.examples or {}) do
    n = n + 10 + M.count(ex.input and ex.input.content or "") + M.count(ex.output and ex.output.content or "")
  end
  for _, m in ipairs(p.messages or {}) do n = n + 5 + M.count(m.content or "") end
  return n
end

--- Truncate a text to at most `max` tokens (the prefix ending with the max-th token).
function M.truncate(s, max)
  local toks = M.tokenize(s)
  if #toks <= max then return s end
  if max <= 0 then return "" end
  return s:sub(1, toks[max].last)
end

return M
