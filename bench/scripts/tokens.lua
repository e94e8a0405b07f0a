-- Each request carries the next token of a file (one a line), so that no token is sent twice:
-- wrk -t1 -s tokens.lua URL -- TOKENS_FILE
-- When the file is used up the thread stops rather than send a token again (wrk still waits
-- for the end of its -d; the benchmark sizes its runs so that this rarely happens).
local tokens = {}
local next_token = 1
local checked = false

function init(args)
  for line in io.lines(args[1]) do
    if #line > 0 then
      tokens[#tokens + 1] = "Bearer " .. line
    end
  end
end

function request()
  if not checked then
    -- wrk builds one request to check the script and never sends it: do not use up a token.
    checked = true
    return wrk.format("GET", nil, { ["Authorization"] = tokens[1] })
  end
  local token = tokens[next_token]
  if token == nil then
    wrk.thread:stop()
    token = tokens[#tokens]
  end
  next_token = next_token + 1
  return wrk.format("GET", nil, { ["Authorization"] = token })
end
