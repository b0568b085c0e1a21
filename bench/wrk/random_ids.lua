-- wrk script: GET /api/books/<id> with an id picked at random per request.
-- The ids come from a file, one per line, named by $RANDOM_IDS_FILE:
--   RANDOM_IDS_FILE=ids.txt wrk -t2 -c64 -d10s --latency -s bench/wrk/random_ids.lua http://127.0.0.1:8000
-- $RANDOM_IDS_PREFIX changes the path before the id (default /api/books/).

local path = os.getenv("RANDOM_IDS_FILE")
assert(path, "set RANDOM_IDS_FILE to a file of ids, one per line")
local prefix = os.getenv("RANDOM_IDS_PREFIX") or "/api/books/"

local ids = {}
for line in io.lines(path) do
  if line ~= "" then ids[#ids + 1] = line end
end
assert(#ids > 0, "no ids in " .. path)

local threads = 0
function setup(thread)          -- runs in the main state, once per thread
  threads = threads + 1
  thread:set("thread_number", threads)
end

function init(args)             -- runs in each thread's own state: a different sequence per thread
  math.randomseed(os.time() * 1000 + (thread_number or 0))
end

function request()
  return wrk.format("GET", prefix .. ids[math.random(#ids)])
end
