--- po.http: HTTP requests on the event loop (libcurl's multi socket API,
--- loaded on first use), and an HTTP server on the same loop
--- (libmicrohttpd). See docs/scripting.md, "HTTP".
local core = require "poengine_core"

local M = {}

--- Starts a request and returns a future of
--- `{ status, headers, body, duration, http_version }`, or
--- `nil, message, "EUNAVAIL"` when libcurl cannot be loaded. The future
--- fails with "ETIMEDOUT", "ECONNREFUSED", "ECONN", "ETLS", "EINVAL",
--- "ECANCELED" or, when on_chunk raised, "ERUNTIME". Any status is a
--- response: a 500 is not an error here.
---@param opts { method?: string, url: string, headers?: table<string, string|number>, body?: string, timeout?: number, connect_timeout?: number, ttfb_timeout?: number, idle_timeout?: number, on_chunk?: fun(chunk: string, status: integer) }
---@return poengine.Future|nil, string?, string?
M.request = core.http_request

--- Counts of this Lua state's transfers: `active` (started, not yet
--- settled; a canceled one until its future has failed, on the next loop
--- turn) and `running` (in libcurl's hands; a canceled transfer leaves it
--- at once).
---@return { active: integer, running: integer }
M.stats = core.http_stats

M.serve = require("poengine.http_serve").serve

return M
