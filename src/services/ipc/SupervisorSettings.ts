/** The supervisor's settings, declared once (src/Settings.ts): what a child spec leaves out. */
import { setting, type SettingsTable } from "../../Settings.js"

export const SUPERVISOR_SETTINGS = {
  usedBy: "supervisor (the Supervisor layer, cxlog app)",
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
        "how long a shutdown waits for children to exit after SIGTERM before it SIGKILLs their process groups"
    })
  }
} as const satisfies SettingsTable
