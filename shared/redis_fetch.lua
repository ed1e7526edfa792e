-- Fetch up to ARGV[4] messages of a dramatiq Redis queue, returning each hash field id with its data.
--
-- The same moves as dramatiq's own "fetch" (dispatch.lua): heartbeat, LPOP ids, SADD them to this
-- worker's acks set, read their data from the queue's hash. dramatiq returns the data only, so a
-- consumer that cannot decode the data cannot tell which id to acknowledge; with the ids it can,
-- and it acknowledges by the id the message really has, not the one its bytes claim.
--
-- A fetch that empties the queue also drops the queue's wake tokens (shared.broker.wake_key): they
-- stood for messages now taken, and would wake idle consumers for nothing. An enqueue after this
-- pushes a new one.
--
-- The heartbeat only ever moves forward (ZADD GT, Redis 6.2): a fetch pipelined after a wait
-- (shared.broker.wait_and_fetch) runs later than its timestamp was taken, and must not date back
-- the one the worker's idle watch wrote meanwhile.
--
-- KEYS[1] = namespace; ARGV = [queue_name, worker_id, timestamp_ms, prefetch]
local namespace = KEYS[1]
local queue_name = ARGV[1]
local worker_id = ARGV[2]
local prefetch = tonumber(ARGV[4])

redis.call("zadd", namespace .. ":__heartbeats__", "GT", ARGV[3], worker_id)
local queue_full_name = namespace .. ":" .. queue_name
local queue_messages = queue_full_name .. ".msgs"
local queue_acks = namespace .. ":__acks__." .. worker_id .. "." .. queue_name

local fetched = {}
for _ = 1, prefetch do
    local message_id = redis.call("lpop", queue_full_name)
    if not message_id then
        break
    end
    redis.call("sadd", queue_acks, message_id)
    fetched[#fetched + 1] = message_id
    fetched[#fetched + 1] = redis.call("hget", queue_messages, message_id) or ""
end
if #fetched < 2 * prefetch then
    redis.call("del", queue_full_name .. ".wake")
end
return fetched
