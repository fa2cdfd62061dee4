/** Discovery's settings, declared once (src/Settings.ts): how often the region is looked at while watched. */
import { setting, type SettingsTable } from "../../Settings.js"

export const DISCOVERY_SETTINGS = {
  usedBy: "discovery (the Discovery layers)",
  settings: {
    watchMs: setting.millis({
      env: "CXLOG_DISCOVERY_WATCH_MS",
      default: 50,
      min: 1,
      description:
        "how often discovery looks at the directory's change count and the process table while an event stream or a waitFor is open (nothing runs while none is)"
    }),
    exitWaitMs: setting.millis({
      env: "CXLOG_DISCOVERY_EXIT_WAIT_MS",
      default: 2_000,
      min: 0,
      description:
        "how long a dead child's crash event waits for its exit status from the supervisor that started it, before it is told without one"
    })
  }
} as const satisfies SettingsTable
