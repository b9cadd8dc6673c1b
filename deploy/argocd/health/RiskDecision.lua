-- Argo CD health of a RiskDecision (identityrisk.dev/v1alpha1): one immutable link of the chain.
-- Being carried out or waiting for a person: Progressing. An action that failed: Degraded.
-- Done (enforced, audited, denied, expired, released): Healthy.
local hs = {}
local status = obj.status
local phase = "Recorded"
if status ~= nil and status.phase ~= nil then
  phase = status.phase
end
local progressing = { Recorded = true, Executing = true, AwaitingApproval = true }
local done = { Enforced = true, Audited = true, Denied = true, Expired = true, Released = true }
if progressing[phase] then
  hs.status = "Progressing"
elseif phase == "Failed" then
  hs.status = "Degraded"
elseif done[phase] then
  hs.status = "Healthy"
else
  hs.status = "Unknown"
end
hs.message = phase
if status ~= nil and status.actions ~= nil then
  local outcomes = {}
  for _, action in ipairs(status.actions) do
    local text = action.type .. "=" .. action.phase
    if action.phase == "Failed" and action.message ~= nil then
      text = text .. " (" .. action.message .. ")"
    end
    table.insert(outcomes, text)
  end
  if #outcomes > 0 then
    hs.message = phase .. ": " .. table.concat(outcomes, ", ")
  end
end
return hs
