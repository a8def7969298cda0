--- Azure OpenAI: OpenAI's Chat Completions and embeddings formats, sent to a
--- deployment of an Azure resource:
---   POST {base_url}/openai/deployments/{deployment}/chat/completions?api-version={api_version}
--- with the key in an `api-key` header. base_url is the resource's endpoint
--- ("https://RESOURCE.openai.azure.com", or AZURE_OPENAI_ENDPOINT), the key
--- AZURE_OPENAI_API_KEY; the provider's options give `deployment` (required)
--- and `api_version` (default A.API_VERSION). Bodies and replies are
--- OpenAI's, read by openai.lua's functions.
---
---   po.llm.provider("azure", { base_url = "https://my-res.openai.azure.com", deployment = "gpt-4o-prod" })
local openai = require "poengine.llm.openai"

local A = {
  name = "azure",
  key_env = "AZURE_OPENAI_API_KEY",
  base_url_env = "AZURE_OPENAI_ENDPOINT",
  stream_format = openai.stream_format,
  stream_type = openai.stream_type,
  input_includes_cached = openai.input_includes_cached,
  --- The latest generally available data-plane inference version in
  --- Microsoft's Azure OpenAI REST reference.
  API_VERSION = "2024-10-21",
}

-- The same reading of replies, errors and streams as OpenAI's.
for _, f in ipairs { "parse", "error_message", "error_code", "is_context_error", "stream_start", "stream_event",
  "stream_finish", "embed_parse" } do
  A[f] = openai[f]
end

--- No default: every Azure resource has its own endpoint.
function A.default_base_url()
  return nil
end

-- A path segment, percent-encoded (a deployment name is the user's own).
local function segment(s)
  return (s:gsub("[^%w%-%._~]", function(c)
    return string.format("%%%02X", c:byte())
  end))
end

-- The deployment's URL for an operation ("chat/completions", "embeddings"),
-- or nil, message, "EINVAL" when the options lack what it needs. Without a
-- deployment option the model name is taken for it, as tools that address
-- Azure by "deployment as model" do (`poengine optimize --provider azure
-- --model my-deployment`).
local function url_of(cfg, operation, model)
  local options = cfg.options or {}
  local deployment = options.deployment or model
  if type(deployment) ~= "string" or deployment == "" then
    return nil, "azure: the provider needs options.deployment (the name of the Azure deployment to call)", "EINVAL"
  end
  if not cfg.base_url then
    return nil, "azure: the provider needs base_url (https://RESOURCE.openai.azure.com) or AZURE_OPENAI_ENDPOINT", "EINVAL"
  end
  return cfg.base_url .. "/openai/deployments/" .. segment(deployment) .. "/" .. operation .. "?api-version="
    .. segment(options.api_version or A.API_VERSION)
end

local function headers(cfg)
  local h = { ["Content-Type"] = "application/json" }
  if cfg.api_key then
    h["api-key"] = cfg.api_key
  end
  return h
end

function A.request(cfg, req, model)
  local url, msg, code = url_of(cfg, "chat/completions", model)
  if not url then
    return nil, msg, code
  end
  local body
  body, msg, code = openai.body(req, model, A.name)
  if not body then
    return nil, msg, code
  end
  body.model = nil -- the deployment names the model; Azure's reference sends none
  return url, headers(cfg), body
end

function A.embed_request(cfg, texts, model, opts)
  local url, msg, code = url_of(cfg, "embeddings", model)
  if not url then
    return nil, msg, code
  end
  local body = openai.embed_body(texts, model, opts)
  body.model = nil
  return url, headers(cfg), body
end

return A
