-- POST /api/v1/auth/login with the benchmark user's credentials, again and again:
-- wrk -s login.lua URL -- USERNAME PASSWORD
local body

function init(args)
  body = string.format('{"username": "%s", "password": "%s"}', args[1], args[2])
end

function request()
  return wrk.format("POST", "/api/v1/auth/login", { ["Content-Type"] = "application/json" }, body)
end
