--- The base-model catalogue of the v1beta3 era (values from the reference recordings).
-- @module gemini.emulator.models

local M = {}

--- Models in list order (as Google listed them).
M.list = {
  { name = "models/chat-bison-001", version = "001", displayName = "Chat Bison",
    description = "Chat-optimized generative language model.",
    inputTokenLimit = 4096, outputTokenLimit = 1024,
    supportedGenerationMethods = { "generateMessage", "countMessageTokens" },
    temperature = 0.25, topP = 0.95, topK = 40 },
  { name = "models/text-bison-001", version = "001", displayName = "Text Bison",
    description = "Model targeted for text generation.",
    inputTokenLimit = 8196, outputTokenLimit = 1024,
    supportedGenerationMethods = { "generateText", "countTextTokens", "createTunedTextModel" },
    temperature = 0.7, topP = 0.95, topK = 40 },
  { name = "models/embedding-gecko-001", version = "001", displayName = "Embedding Gecko",
    description = "Obtain a distributed representation of a text.",
    inputTokenLimit = 1024, outputTokenLimit = 1,
    supportedGenerationMethods = { "embedText", "countTextTokens" } },
  -- called by the seed documentation's curl examples (get, generateMessage, countMessageTokens,
  -- and as the base model of tunedModels.create)
  { name = "models/gemini-1.5-flash-001", version = "001", displayName = "Gemini 1.5 Flash 001",
    description = "Fast and versatile multimodal model for scaling across diverse tasks.",
    inputTokenLimit = 1048576, outputTokenLimit = 8192,
    supportedGenerationMethods = { "generateText", "countTextTokens", "generateMessage",
                                   "countMessageTokens", "createTunedTextModel" },
    temperature = 1, topP = 0.95, topK = 64 },
}

M.by_name = {}
for _, m in ipairs(M.list) do
  M.by_name[m.name] = m
  local set = {}
  for _, g in ipairs(m.supportedGenerationMethods) do set[g] = true end
  m.supports = set
end

--- The model named `name` (e.g. "models/text-bison-001"), or nil.
function M.get(name) return M.by_name[name] end

--- Google's NOT_FOUND message for an unknown model or an unsupported method.
-- @param name model resource name
-- @param method REST method name, e.g. "embedText"
function M.not_found_message(name, method)
  return name .. " is not found for API version v1beta3, or is not supported for " .. method ..
    ". Call ListModels to see the list of available models and their supported methods."
end

--- The public fields of a model (for rendering as a Model message).
function M.public(m)
  return { name = m.name, baseModelId = m.baseModelId, version = m.version, displayName = m.displayName,
           description = m.description, inputTokenLimit = m.inputTokenLimit,
           outputTokenLimit = m.outputTokenLimit, supportedGenerationMethods = m.supportedGenerationMethods,
           temperature = m.temperature, topP = m.topP, topK = m.topK }
end

return M
