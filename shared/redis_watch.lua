-- The idle watch of one worker process (shared.broker._IdleWatch), run every IDLE_WAIT_MS: what
-- its idle consumers would otherwise each poll Redis for.
--
-- 1. The worker's heartbeat, which a fetch refreshes too (a busy worker's consumers fetch often;
--    an idle one's may wait for a wake-up longer than the heartbeat timeout).
-- 2. A wake token for each work queue holding messages but no token: a publisher that does not
--    wake (another language's client), or messages put back on the queue (a dead worker's, a
--    stopping consumer's prefetched ones). The token wakes an idle consumer of any process.
-- 3. The delay queues holding messages, returned: the worker nudges their consumers itself.
--
-- Every shared.broker.MAINTENANCE_PERIOD_MS the watch runs dramatiq's maintenance pass (dispatch.lua)
-- just before this script: a dead worker's messages, put back on a queue, get their wake token here.
--
-- KEYS[1] = namespace
-- ARGV = [worker_id, timestamp_ms, number of work queues, work queues..., delay queues...]
local namespace = KEYS[1]
redis.call("zadd", namespace .. ":__heartbeats__", ARGV[2], ARGV[1])

local last_work_queue = 3 + tonumber(ARGV[3])
for i = 4, last_work_queue do
    local queue_full_name = namespace .. ":" .. ARGV[i]
    local wake = queue_full_name .. ".wake"  -- shared.broker.wake_key
    if redis.call("llen", queue_full_name) > 0 and redis.call("llen", wake) == 0 then
        redis.call("lpush", wake, 1)
    end
end

local ready = {}
for i = last_work_queue + 1, #ARGV do
    if redis.call("llen", namespace .. ":" .. ARGV[i]) > 0 then
        ready[#ready + 1] = ARGV[i]
    end
end
return ready
