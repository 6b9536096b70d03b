-- Argo CD resource health of a DataProduct, from the conditions the operator writes:
-- Fresh=False, or Ready=False for a reason that will not fix itself (InvalidSpec, ApplyFailed) -> Degraded;
-- Ready=True -> Healthy; anything else -> Progressing.
-- Install it as resource.customizations.health.provisioner.dev_DataProduct in argocd-cm
-- (see argocd-cm-health.yaml next to this file).
local hs = {status = "Progressing", message = "Waiting for the operator"}
if obj.status == nil or obj.status.conditions == nil then
  return hs
end
if obj.metadata.generation ~= nil and obj.status.observedGeneration ~= nil
    and obj.status.observedGeneration < obj.metadata.generation then
  hs.message = "Waiting for the operator to act on the latest spec"
  return hs
end
local ready = nil
for _, condition in ipairs(obj.status.conditions) do
  local failed = condition.type == "Ready" and condition.status == "False"
      and (condition.reason == "InvalidSpec" or condition.reason == "ApplyFailed")
  if failed or (condition.type == "Fresh" and condition.status == "False") then
    return {status = "Degraded", message = condition.message or condition.reason or condition.type}
  end
  if condition.type == "Ready" then
    ready = condition
  end
end
if ready ~= nil and ready.status == "True" then
  return {status = "Healthy", message = ready.message or "Every store is hydrated"}
end
if ready ~= nil then
  hs.message = ready.message or ready.reason or "Not ready yet"
end
return hs
