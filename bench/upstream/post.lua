-- wrk script: POST a chat completion; the body comes from the BENCH_BODY environment variable.
-- wrk itself reports "Non-2xx or 3xx responses: N" when any request failed.
wrk.method = "POST"
wrk.body = os.getenv("BENCH_BODY")
wrk.headers["Content-Type"] = "application/json"
local key = os.getenv("BENCH_KEY")
if key and key ~= "" then wrk.headers["Authorization"] = "Bearer " .. key end
