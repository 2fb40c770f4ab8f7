-- Argo CD health of an llmesh Budget: Healthy while it has money left this period;
-- Degraded when exhausted (its action, reject or downgrade, is in force until the
-- period resets) or when the operator reports a problem.
hs = {}
if obj.status == nil or obj.status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the llmesh operator to open the ledger"
  return hs
end
if obj.metadata.generation ~= nil and obj.status.observedGeneration ~= nil
    and obj.status.observedGeneration < obj.metadata.generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the llmesh operator to see generation " .. obj.metadata.generation
  return hs
end
local spent = obj.status.spent or "?"
-- status.limit is the limit in the same format as spent; operators before it had only spec.limit.
local limit = obj.status.limit or obj.spec.limit or "?"
if obj.status.exhausted == true then
  hs.status = "Degraded"
  hs.message = "Exhausted: spent " .. spent .. " of " .. limit
  if obj.status.resetAt ~= nil then
    hs.message = hs.message .. "; resets at " .. obj.status.resetAt
  end
  return hs
end
for _, c in ipairs(obj.status.conditions) do
  if c.type == "Ready" then
    if c.status == "True" then
      hs.status = "Healthy"
      hs.message = "Spent " .. spent .. " of " .. limit
    elseif c.status == "False" then
      hs.status = "Degraded"
      hs.message = (c.reason or "") .. ": " .. (c.message or "")
    else
      hs.status = "Progressing"
      hs.message = (c.reason or "") .. ": " .. (c.message or "")
    end
    return hs
  end
end
hs.status = "Progressing"
hs.message = "No Ready condition yet"
return hs
