-- Argo CD health check for serving.modeldeploy.dev/ModelDeployment.
-- Reads what the operator writes: status.observedGeneration, status.phase and the kstatus
-- conditions (Ready, Reconciling, Stalled). Order matters:
--   1. no status yet, or status older than the spec     -> Progressing
--   2. phase Paused (a `kubectl modeldeploy pause`)      -> Suspended
--   3. Stalled=True, or phase RolledBack / Failed        -> Degraded
--   4. Reconciling=True                                  -> Progressing
--   5. Ready=True                                        -> Healthy
--   6. anything else                                     -> Progressing
local hs = {}

local function condition(status, kind)
  if status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local function describe(c, fallback)
  if c ~= nil and c.message ~= nil and c.message ~= "" then
    if c.reason ~= nil and c.reason ~= "" then
      return c.reason .. ": " .. c.message
    end
    return c.message
  end
  return fallback
end

local status = obj.status
if status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the modeldeploy operator to observe the ModelDeployment"
  return hs
end

local generation = obj.metadata.generation
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

local phase = status.phase or ""
local message = status.message
if message == nil or message == "" then
  message = phase
end

if phase == "Paused" then
  hs.status = "Suspended"
  hs.message = message
  return hs
end

local stalled = condition(status, "Stalled")
if (stalled ~= nil and stalled.status == "True") or phase == "RolledBack" or phase == "Failed" then
  hs.status = "Degraded"
  hs.message = describe(stalled, message)
  return hs
end

local reconciling = condition(status, "Reconciling")
if reconciling ~= nil and reconciling.status == "True" then
  hs.status = "Progressing"
  hs.message = describe(reconciling, message)
  return hs
end

local ready = condition(status, "Ready")
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = message
  return hs
end

hs.status = "Progressing"
hs.message = describe(ready, message)
return hs
