-- The request mix for wrk: one request per line of the mix file (BENCH_MIX), cycled.
-- Lines are "HOST TOKEN" or "HOST -" (anonymous), written by `bench-tools mix`.
-- Requests are built once in init(), so the per-request cost in wrk is an index bump: the
-- load client shares the machine with what it measures and must stay cheap.
-- The bytes match bench/tools/src/http1.rs, which the fixed-rate client sends.
local reqs = {}
local n = 0
local i = 0

function init(args)
  local path = os.getenv("BENCH_MIX")
  if path == nil then error("BENCH_MIX is not set") end
  for line in io.lines(path) do
    local host, tok = line:match("^(%S+)%s+(%S+)$")
    if host then
      local r = "GET / HTTP/1.1\r\nHost: " .. host .. "\r\n"
      if tok ~= "-" then r = r .. "Authorization: Bearer " .. tok .. "\r\n" end
      n = n + 1
      reqs[n] = r .. "\r\n"
    end
  end
  if n == 0 then error("empty mix: " .. path) end
  -- Each wrk thread starts at a different place in the mix.
  i = math.random(n) - 1
end

function request()
  i = i + 1
  if i > n then i = 1 end
  return reqs[i]
end
