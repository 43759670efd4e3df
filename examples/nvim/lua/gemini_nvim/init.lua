-- luacheck: read globals vim
--- lua-gemini example plugin: send a prompt or the visual selection, insert the reply below it, and
-- never block the editor. The client is driven by Neovim's own libuv loop through `gemini.luv`.
--
--    require("gemini_nvim").setup { model = "models/text-bison-001" }   -- key: $GEMINI_API_KEY
--    :'<,'>GeminiSend Summarize:
local M = {}

M.config = {
  api_key = nil,                    -- default: $GEMINI_API_KEY, then $GOOGLE_API_KEY (done by gemini.new)
  base_url = nil,                   -- default: $GEMINI_BASE_URL, else Google
  model = "models/text-bison-001",
  temperature = nil,
  timeout = 60,
  json = nil,                       -- optional codec { encode, decode, null }; default cjson, else vim.json
}

local uv = vim.uv or vim.loop
local ns = vim.api.nvim_create_namespace("gemini_nvim")
local client, detach
local pending = {}                  -- request handle -> true

local function notify(msg, level)
  vim.notify("gemini: " .. msg, level or vim.log.levels.INFO)
end

local function shutdown()
  for req in pairs(pending) do pcall(function() req:cancel() end) end
  pending = {}
  if detach then detach() end
  if client then client:close() end
  client, detach = nil, nil
end

local function get_client()
  if client then return client end
  local gemini = require("gemini")
  local cfg = M.config
  client = gemini.new { api_key = cfg.api_key, base_url = cfg.base_url, timeout = cfg.timeout, json = cfg.json }
  -- callbacks run through vim.schedule, where the Neovim API may be called
  detach = require("gemini.luv").attach(client, uv, { schedule = vim.schedule })
  return client
end

--- Configures the plugin (merged into M.config); a later call replaces the client.
function M.setup(opts)
  M.config = vim.tbl_extend("force", M.config, opts or {})
  shutdown()
end

local function reply_text(res)
  local ok, text_mod = pcall(require, "gemini.text")
  if ok and type(text_mod) == "table" and text_mod.text then return text_mod.text(res) end
  local c = res and res.candidates and res.candidates[1]
  if c and type(c.output) == "string" then return c.output end
  return nil, "no candidates (blocked?)"
end

--- Sends `prompt`; the reply is inserted below line `row` (1-based) of `buf`, wherever that line has
-- moved to by then (an extmark follows edits). Returns at once.
function M.send(prompt, buf, row)
  buf = buf or vim.api.nvim_get_current_buf()
  row = row or vim.api.nvim_win_get_cursor(0)[1]
  local mark = vim.api.nvim_buf_set_extmark(buf, ns, row - 1, 0, {
    virt_text = { { "gemini: thinking...", "Comment" } }, virt_text_pos = "eol",
  })
  local body = { prompt = { text = prompt }, temperature = M.config.temperature }
  local req
  req = get_client():generate_text(M.config.model, body, function(res, err)
    (vim.in_fast_event() and vim.schedule or function(f) f() end)(function()
      if req then pending[req] = nil end
      if not vim.api.nvim_buf_is_valid(buf) then return end
      local pos = vim.api.nvim_buf_get_extmark_by_id(buf, ns, mark, {})
      vim.api.nvim_buf_del_extmark(buf, ns, mark)
      if not res then return notify(tostring(err), vim.log.levels.ERROR) end
      local text, why = reply_text(res)
      if not text then return notify(tostring(why), vim.log.levels.WARN) end
      local at = (pos and pos[1] or row - 1) + 1
      vim.api.nvim_buf_set_lines(buf, at, at, false, vim.split(text, "\n", { plain = true }))
    end)
  end)
  if type(req) == "table" or type(req) == "userdata" then pending[req] = true end
  return req
end

--- The :GeminiSend command: the range's lines (after the arguments), or the arguments, or asks.
function M.command(opts)
  local buf = vim.api.nvim_get_current_buf()
  local prompt, row = opts.args or "", nil
  if opts.range and opts.range > 0 then
    local lines = vim.api.nvim_buf_get_lines(buf, opts.line1 - 1, opts.line2, false)
    prompt = (prompt ~= "" and (prompt .. "\n") or "") .. table.concat(lines, "\n")
    row = opts.line2
  end
  if prompt == "" then prompt = vim.fn.input("Gemini: ") end
  if prompt == "" then return end
  return M.send(prompt, buf, row)
end

--- Cancels every request in flight (their replies are dropped).
function M.cancel_all()
  for req in pairs(pending) do pcall(function() req:cancel() end) end
  pending = {}
end

vim.api.nvim_create_autocmd("VimLeavePre", { callback = shutdown })

return M
