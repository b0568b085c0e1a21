-- wrk script for the peer benchmark (bench/workload.py sets everything through the environment):
--   WL_KIND     item | list | create | mix   (mix: 90 % item GETs, 10 % creates)
--   WL_ITEM     item path template, "{id}" is replaced by a random book id
--   WL_LIST     list path template, "{tag}" is replaced by a random tag
--   WL_CREATE   create path; WL_BODY: JSON body template with "{isbn}" and "{author}"
--   WL_IDS, WL_AUTHORS: files of ids, one per line; WL_TAGS: comma-separated tags
--   WL_NONCE    0-999, makes ISBNs unique across runs
--   WL_AUTH     Authorization header value of every POST (RestEngine lets only the admin role write)

local function lines(path)
  local out = {}
  if path then for line in io.lines(path) do if line ~= "" then out[#out + 1] = line end end end
  return out
end

local kind = os.getenv("WL_KIND") or "item"
local item = os.getenv("WL_ITEM") or "/api/books/{id}"
local list = os.getenv("WL_LIST") or "/api/books?tags={tag}&limit=20"
local create = os.getenv("WL_CREATE") or "/api/books"
local body = os.getenv("WL_BODY") or '{"title":"Bench","isbn":"{isbn}","author":"{author}","price":"9.99","tags":["bench"]}'
local nonce = tonumber(os.getenv("WL_NONCE") or "0")
local auth = os.getenv("WL_AUTH")
local ids, authors = lines(os.getenv("WL_IDS")), lines(os.getenv("WL_AUTHORS"))
local tags = {}
for tag in string.gmatch(os.getenv("WL_TAGS") or "", "[^,]+") do tags[#tags + 1] = tag end

local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("thread_number", threads)
end

local counter = 0
function init(args)
  math.randomseed(os.time() * 1000 + (thread_number or 0))
end

local function get_item()
  return wrk.format("GET", (item:gsub("{id}", ids[math.random(#ids)])))
end

local function post()
  counter = counter + 1
  local isbn = string.format("9%03d%02d%07d", nonce % 1000, (thread_number or 0) % 100, counter % 10000000)
  local payload = body:gsub("{isbn}", isbn):gsub("{author}", authors[math.random(#authors)])
  local headers = {["Content-Type"] = "application/json"}
  if auth and auth ~= "" then headers["Authorization"] = auth end
  return wrk.format("POST", create, headers, payload)
end

function request()
  if kind == "item" then return get_item() end
  if kind == "list" then return wrk.format("GET", (list:gsub("{tag}", tags[math.random(#tags)]))) end
  if kind == "create" then return post() end
  if math.random() < 0.1 then return post() end
  return get_item()
end
