-- Argo CD health of an IdentityRiskPolicy (identityrisk.dev/v1alpha1).
-- The apiserver validated the spec (schema and CEL) when Git applied it, so a policy without a
-- status is Healthy; a condition the operator reports can make it Progressing or Degraded.
local hs = { status = "Healthy", message = "policy accepted by the API server" }
local status = obj.status
if status == nil then
  return hs
end
local generation = obj.metadata.generation
if status.observedGeneration ~= nil and generation ~= nil and status.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "the operator has not read generation " .. generation .. " yet"
  return hs
end
if status.conditions ~= nil then
  for _, condition in ipairs(status.conditions) do
    if (condition.type == "Ready" or condition.type == "Valid") and condition.status == "False" then
      hs.status = "Degraded"
      hs.message = condition.message or condition.reason or "policy not in force"
      return hs
    end
    if condition.type == "Ready" and condition.status == "Unknown" then
      hs.status = "Progressing"
      hs.message = condition.message or "policy being loaded"
      return hs
    end
  end
end
if status.identitiesCovered ~= nil then
  hs.message = "covers " .. status.identitiesCovered .. " identities"
end
return hs
