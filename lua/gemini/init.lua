--- lua-gemini: a Lua client for Google's Generative Language API v1beta3.
--
--    local gemini = require "gemini"
--    local client = gemini.new { api_key = os.getenv("GEMINI_API_KEY") }
--    local res = assert(client:generate_text("text-bison-001", { prompt = { text = "Hello" } }))
--
-- Conveniences load on first use: `gemini.text`, `gemini.safety`, `gemini.dataset`, `gemini.progress`,
-- `gemini.chat`, `gemini.index`, `gemini.errors`, `gemini.json`, `gemini.names`, `gemini.methods`,
-- `gemini.retry`.
-- @module gemini

local client = require("gemini.client")

local M = {}

--- The version of lua-gemini.
M.VERSION = client.VERSION

--- Creates a client (see `gemini.client`).
-- @param opts options table
-- @return client
function M.new(opts)
  local c = client.new(opts)
  return c
end

--- Is `v` an error object returned by this library?
-- @param v any value
-- @return boolean
function M.is_error(v)
  return require("gemini.errors").is(v)
end

local LAZY = { text = true, safety = true, dataset = true, progress = true, chat = true, index = true, cli = true,
               errors = true, json = true, names = true, methods = true, retry = true, luv = true,
               operation = true, handles = true, pager = true, client = true }

return setmetatable(M, {
  __index = function(t, k)
    if LAZY[k] then
      local mod = require("gemini." .. k)
      rawset(t, k, mod)
      return mod
    end
    return nil
  end,
})
