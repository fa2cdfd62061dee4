/** The supervisor's settings, declared once (src/Settings.ts): what a child spec leaves out. */
import { setting, type SettingsTable } from "../../Settings.js"

export const SUPERVISOR_SETTINGS = {
  usedBy: "supervisor (the Supervisor layer, cxlog app; the drain settings also drainOnStop in its children)",
  settings: {
    backoffMs: setting.millis({
      env: "CXLOG_SUPERVISOR_BACKOFF_MS",
      default: 100,
      min: 0,
      description: "the wait before a child's first restart; each restart in a row doubles it"
    }),
    maxBackoffMs: setting.millis({
      env: "CXLOG_SUPERVISOR_MAX_BACKOFF_MS",
      default: 5_000,
      min: 0,
      description: "the longest wait before a restart, however many came before"
    }),
    restartLimit: setting.integer({
      env: "CXLOG_SUPERVISOR_RESTART_LIMIT",
      default: 5,
      min: 0,
      description: "restarts of one child allowed within the window; one more and it is given up (ChildGaveUp)"
    }),
    restartWindowMs: setting.millis({
      env: "CXLOG_SUPERVISOR_RESTART_WINDOW_MS",
      default: 60_000,
      min: 1,
      description: "the window the restart limit counts restarts in"
    }),
    stopTimeoutMs: setting.millis({
      env: "CXLOG_SUPERVISOR_STOP_TIMEOUT_MS",
      default: 5_000,
      min: 0,
      description:
        "how long a shutdown waits for children to exit after SIGTERM (after its fence, when it drains) before it SIGKILLs their process groups"
    }),
    drainTimeoutMs: setting.millis({
      env: "CXLOG_SUPERVISOR_DRAIN_TIMEOUT_MS",
      default: 10_000,
      min: 1,
      description:
        "how long a draining shutdown's processing fence may take (every participant's arrival and the drain) before it ends unfinished"
    }),
    drainGroup: setting.optionalText({
      env: "CXLOG_SUPERVISOR_DRAIN_GROUP",
      description:
        "the process group a stopped child's drainOnStop fences over; a draining supervisor sets it in its children's environment"
    })
  }
} as const satisfies SettingsTable
