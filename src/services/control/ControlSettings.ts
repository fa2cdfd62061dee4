/**
 * The control plane's settings, declared once (src/Settings.ts): the process table and rings
 * of the region's layout (read by the head that creates it, read back by every other
 * process), and the coordinator's.
 */
import { setting, type SettingsTable } from "../../Settings.js"

export const CONTROL_LAYOUT_SETTINGS = {
  usedBy: "head (region layout)",
  settings: {
    maxProcesses: setting.integer({
      env: "CXLOG_MAX_PROCESSES",
      default: 32,
      description: "process slots in the region"
    }),
    requestRingBytes: setting.size({
      env: "CXLOG_REQUEST_RING_BYTES",
      default: 64 << 10,
      description: "each process's request ring to the coordinator"
    }),
    broadcastRingBytes: setting.size({
      env: "CXLOG_BROADCAST_RING_BYTES",
      default: 256 << 10,
      description: "the coordinator's broadcast ring"
    }),
    appRings: setting.integer({ env: "CXLOG_APP_RINGS", default: 8, description: "application rings in the region" }),
    appRingBytes: setting.size({
      env: "CXLOG_APP_RING_BYTES",
      default: 256 << 10,
      description: "bytes of each application ring"
    }),
    appRingReaders: setting.integer({
      env: "CXLOG_APP_RING_READERS",
      default: 8,
      description: "readers each application ring admits"
    })
  }
} as const satisfies SettingsTable

export const COORDINATOR_SETTINGS = {
  usedBy: "head (coordinator)",
  settings: {
    onParticipantDeath: setting.choice({
      env: "CXLOG_BARRIER_ON_DEATH",
      values: ["drop", "fail"],
      default: "drop",
      description: "a barrier participant that dies is dropped (drop) or fails the barrier (fail)"
    }),
    heartbeatStaleMs: setting.millis({
      env: "CXLOG_HEARTBEAT_STALE_MS",
      default: 2_000,
      // Every process writes its heartbeat once a cadence (500 ms, layers/region/Cadence.ts): a
      // bound below two of them would drop live members between two beats.
      min: 1_000,
      description: "a member whose heartbeat is older than this is dead (at least 1000: two heartbeats)"
    }),
    debugBarriers: setting.toggle({
      env: "CXLOG_DEBUG_BARRIERS",
      description: "log every barrier's recorded targets and observed progress"
    })
  }
} as const satisfies SettingsTable
