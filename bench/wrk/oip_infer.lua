-- wrk script: POST one Open Inference Protocol JSON request, the same bytes every time.
-- Usage: wrk -t2 -c8 -d5s --latency -s bench/wrk/oip_infer.lua http://127.0.0.1:8000/v2/models/mlp/infer -- body.json
-- The request body (an OIP JSON request) is read from the file named by the first script argument.
local request_bytes

function init(args)
  local path = args[1]
  if path == nil then
    error("oip_infer.lua: pass the JSON body file after --")
  end
  local f = assert(io.open(path, "rb"))
  local body = f:read("*a")
  f:close()
  request_bytes = wrk.format("POST", nil, { ["Content-Type"] = "application/json" }, body)
end

function request()
  return request_bytes
end
