-- Argo CD health of a WorkloadIdentityRisk (identityrisk.dev/v1alpha1): the operator's record of
-- one ServiceAccount's risk. It appears in an Application's tree under the ServiceAccount it
-- scores (owner reference). Contained or paused enforcement needs a person: Degraded.
local hs = {}
local status = obj.status
if status == nil or status.lastEvaluated == nil then
  hs.status = "Progressing"
  hs.message = "not scored yet"
  return hs
end
local summary = "score " .. tostring(status.score or 0) .. ", band " .. (status.band or "none")
local enforcement = status.enforcement or "None"
if enforcement == "Enforced" then
  hs.status = "Degraded"
  hs.message = summary .. ": enforcement in force (" .. (status.lastDecision or "see RiskDecisions") .. ")"
elseif enforcement == "Paused" then
  hs.status = "Degraded"
  hs.message = summary .. ": enforcement paused by a safeguard (circuit breaker or rate limit)"
elseif enforcement == "PendingApproval" then
  hs.status = "Progressing"
  hs.message = summary .. ": decision awaiting approval"
else
  hs.status = "Healthy"
  hs.message = summary .. " (" .. enforcement .. ")"
end
return hs
