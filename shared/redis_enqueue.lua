-- Enqueue a message on a dramatiq Redis queue and wake an idle consumer of it, in one round trip.
--
-- The same moves as dramatiq's own "enqueue" (dispatch.lua): the data in the queue's hash, its id
-- pushed on the queue's list. Then, unless ARGV[4] is 0 (a delay queue: its consumers are nudged
-- otherwise), a token pushed on the queue's wake list (shared.broker.wake_key), which keeps at
-- most ARGV[4] tokens. dramatiq's enqueue also refreshes the enqueuing process's heartbeat: only
-- a process holding fetched messages needs one, and its fetches and idle watch refresh it.
--
-- KEYS[1] = namespace; ARGV = [queue_name, redis_message_id, message_data, wake_depth]
local queue_full_name = KEYS[1] .. ":" .. ARGV[1]
redis.call("hset", queue_full_name .. ".msgs", ARGV[2], ARGV[3])
redis.call("rpush", queue_full_name, ARGV[2])

local wake_depth = tonumber(ARGV[4])
if wake_depth > 0 then
    local wake = queue_full_name .. ".wake"  -- shared.broker.wake_key
    redis.call("lpush", wake, 1)
    redis.call("ltrim", wake, 0, wake_depth - 1)
end
