-- Argo CD health of an llmesh LLMModel: Healthy once the operator has compiled the
-- current spec into the sidecars' config (Ready=True); Degraded with the operator's
-- reason and message when it cannot (a missing Secret, an unknown fallback).
hs = {}
if obj.status == nil or obj.status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the llmesh operator"
  return hs
end
if obj.metadata.generation ~= nil and obj.status.observedGeneration ~= nil
    and obj.status.observedGeneration < obj.metadata.generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the llmesh operator to see generation " .. obj.metadata.generation
  return hs
end
for _, c in ipairs(obj.status.conditions) do
  if c.type == "Ready" then
    if c.status == "True" then
      hs.status = "Healthy"
    elseif c.status == "False" then
      hs.status = "Degraded"
    else
      hs.status = "Progressing"
    end
    hs.message = (c.reason or "") .. ": " .. (c.message or "")
    return hs
  end
end
hs.status = "Progressing"
hs.message = "No Ready condition yet"
return hs
