--[[
  caps: the per-call bounds of the scheduler's loops, so one call's work stays bounded however
  much is due (DEFAULTS in src/shared/config.ts; the loader passes them to every script that
  includes this as ARGV[2], JSON: wakeCampaignsPerSlot, wakeGroupsPerCampaign, reclaimBatch,
  wakeDueBatch, dispatchLooksPerPick, dispatchExtraLooks), and the adaptive concurrency's
  tunables (adaptive.lua: adaptiveHoldRatio, adaptiveRiseRatio, adaptiveSureRiseRatio,
  adaptiveSlackMs, adaptiveRoundMinCalls, adaptiveRiseDecreaseFactor, adaptiveRiseDecreaseMin,
  adaptiveDecreaseFactor, adaptiveRetryAfterRestartFactor,
  adaptiveSlowStartFactor, adaptiveOverloadMargin, adaptiveOverloadDriftRounds, adaptiveOverloadMemoryMs,
  adaptiveIdleMs),
  and the maintenance windows' clock offset (windows.lua: windowClockOffsetMs, 0 but in tests
  and drills) and recheck (windowRecheckMs).
  Provides: CAPS. Needs no include.
]]
local CAPS = cjson.decode(ARGV[2])
