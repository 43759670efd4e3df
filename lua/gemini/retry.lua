--- Retry policy: pure functions that decide whether and when a failed request is tried again.
--
-- Policy table (option `retry` of `gemini.new` or of one call; `retry = false` disables):
-- `{ max_attempts = 5, initial = 0.5, multiplier = 2, max_delay = 30 }`.
-- Delays use exponential backoff with full jitter, and never undercut the server's own
-- `RetryInfo.retryDelay` / `Retry-After` (`err.retry_after`).
-- @module gemini.retry

local M = {}

--- The default policy.
M.DEFAULT = { max_attempts = 5, initial = 0.5, multiplier = 2, max_delay = 30 }

--- HTTP codes worth retrying.
M.RETRY_CODES = { [429] = true, [500] = true, [502] = true, [503] = true, [504] = true }

--- Transport failure kinds where the request surely did not reach the server.
M.NOT_SENT = { connect = true, resolve = true, connect_timeout = true, proxy = true, tls = true }

--- Transport failure kinds worth retrying for requests without side effects.
M.TRANSIENT = { connect = true, resolve = true, connect_timeout = true, proxy = true, tls = true,
                send = true, recv = true, timeout = true, stall = true, other = true }

--- libcurl codes of TLS failures that another attempt cannot fix: the certificate does not verify
-- (60), a client certificate or CA file/CRL problem (58, 77, 82), issuer check, pinned key or
-- certificate status (83, 90, 91).
M.TLS_PERMANENT = { [58] = true, [60] = true, [77] = true, [82] = true, [83] = true, [90] = true, [91] = true }

--- Is this error worth retrying?
-- @param err error object (`code`, `kind`)
-- @param side_effect true for POSTs with side effects (create_tuned_model, create_permission, transfer_ownership)
-- @return boolean
function M.retryable(err, side_effect)
  if err.kind == "cancelled" or err.kind == "too_large" or err.kind == "deadline" then return false end
  if err.kind == "tls" and M.TLS_PERMANENT[err.curl_code] then return false end
  if err.kind ~= nil then
    -- a transport failure (a reply cut short keeps its HTTP code, but is still one)
    if side_effect then return M.NOT_SENT[err.kind] == true end
    return M.TRANSIENT[err.kind] == true
  end
  if side_effect then return err.code == 429 end
  return err.code ~= nil and M.RETRY_CODES[err.code] == true
end

--- The delay before attempt `attempts + 1`.
-- @param policy retry policy table
-- @param attempts attempts made so far (>= 1)
-- @param retry_after server-requested delay in seconds, or nil
-- @param random function returning a number in [0, 1) (default math.random)
-- @return seconds
function M.delay(policy, attempts, retry_after, random)
  local initial = policy.initial or M.DEFAULT.initial
  local mult = policy.multiplier or M.DEFAULT.multiplier
  local maxd = policy.max_delay or M.DEFAULT.max_delay
  local cap = initial * mult ^ (attempts - 1)
  if cap > maxd then cap = maxd end
  local d = (random or math.random)() * cap
  if retry_after and retry_after > d then d = retry_after end
  return d
end

--- Decides about one failure.
-- @param policy retry policy table (or false)
-- @param req request record: `attempts`, `first_started_at`, `row.side_effect`
-- @param err error object
-- @param deadline total seconds for all attempts, or nil
-- @param now current clock value
-- @param random optional random function
-- @return delay in seconds, or nil to give up
function M.decide(policy, req, err, deadline, now, random)
  if not policy then return nil end
  local max = policy.max_attempts or M.DEFAULT.max_attempts
  if (req.attempts or 1) >= max then return nil end
  if not M.retryable(err, req.row and req.row.side_effect) then return nil end
  local d = M.delay(policy, req.attempts or 1, err.retry_after, random)
  if deadline and req.first_started_at and (now + d - req.first_started_at) > deadline then return nil end
  return d
end

return M
