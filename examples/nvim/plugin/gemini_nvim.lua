-- luacheck: globals vim
-- lua-gemini example plugin: commands only; everything else loads on first use.
--   :GeminiSend [prompt]        send the prompt (or ask for one); the reply goes below the cursor line
--   :'<,'>GeminiSend [prompt]   send the selected lines (after the optional prompt); reply below them
--   :GeminiCancel               cancel every request in flight
if vim.g.loaded_gemini_nvim then return end
vim.g.loaded_gemini_nvim = true

vim.api.nvim_create_user_command("GeminiSend", function(opts)
  require("gemini_nvim").command(opts)
end, { nargs = "*", range = true, desc = "Send a prompt or the selected lines to Gemini" })

vim.api.nvim_create_user_command("GeminiCancel", function()
  require("gemini_nvim").cancel_all()
end, { nargs = 0, desc = "Cancel Gemini requests in flight" })
