--- Test helper: an adapter of the specs' own, added the way a script adds
--- one (po.llm.adapters.spec = require "tests.tools.spec_adapter"). It
--- speaks OpenAI's wire format to the test server with a twist the specs
--- control through the reply text, to exercise what the provider and the
--- router do around any adapter:
---   refuses request.seed (EUNSUPPORTED), records cfg in A.seen.cfg;
---   error codes: 402 EQUOTA, 429 ERATELIMIT, 529 EOVERLOADED, 400 EINVALID,
---     401 EAUTH, others none (EHTTP); version_hint "/v1";
---   a reply "tool:NAME:ARGS" is a tool call NAME with arguments_json ARGS;
---   streamed words beginning "think:" are reasoning (to emit_reasoning);
---   counts reasoning tokens apart from output (output_includes_reasoning = false).
local po = require "poengine"

local openai = po.llm.adapters.openai

local spec = setmetatable({ output_includes_reasoning = false, version_hint = "/v1", seen = {} },
  { __index = openai })
local seen = spec.seen

function spec.request(cfg, req, model)
  seen.cfg = cfg
  if req.seed then
    return nil, "spec: seed is not supported", "EUNSUPPORTED"
  end
  return openai.request(cfg, req, model)
end

local function shape(parts)
  local name, args = (parts.text or ""):match("^tool:([%w_]+):(.*)$")
  if name then
    parts.tool_calls = { { id = "call_" .. name, name = name, arguments_json = args } }
    parts.text, parts.finish_reason = "", "tool_calls"
  end
  return parts
end

function spec.parse(body)
  local parts, err, code = openai.parse(body)
  return parts and shape(parts), err, code
end

function spec.stream_event(st, ev, emit, emit_reasoning)
  st.thinking = st.thinking or {}
  return openai.stream_event(st, ev, function(text)
    if text:sub(1, 6) == "think:" then
      st.thinking[#st.thinking + 1] = text:sub(7)
      if emit_reasoning then
        emit_reasoning(text:sub(7))
      end
    else
      emit(text)
    end
  end)
end

function spec.stream_finish(st)
  local parts, err, code = openai.stream_finish(st)
  if parts then
    local answer = {}
    for _, p in ipairs(st.parts) do
      if p:sub(1, 6) ~= "think:" then
        answer[#answer + 1] = p
      end
    end
    parts.text = table.concat(answer)
    parts.reasoning = #st.thinking > 0 and table.concat(st.thinking) or nil
  end
  return parts, err, code
end

local CODES = { [402] = "EQUOTA", [429] = "ERATELIMIT", [529] = "EOVERLOADED", [400] = "EINVALID", [401] = "EAUTH" }

function spec.error_code(status)
  return CODES[status]
end

return spec
