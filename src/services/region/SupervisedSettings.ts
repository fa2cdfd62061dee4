/**
 * A supervised child's identity, declared once (src/Settings.ts): its supervisor sets these in
 * the child's environment, and the child's process slot carries them, so every process of the
 * region lists it by name (docs/ipc.md, "Discovery and events").
 */
import { setting, type SettingsTable } from "../../Settings.js"

export const SUPERVISED_SETTINGS = {
  usedBy:
    "library (a supervised child's process slot: ProcessSlotLayers); a supervisor sets them in its children's environment",
  settings: {
    name: setting.optionalText({
      env: "CXLOG_SUPERVISED_NAME",
      description:
        "the name a supervisor gave this child (`worker#0`): its process slot carries the first 20 bytes, so discovery lists it by name in every process"
    }),
    supervisor: setting.optionalInteger({
      env: "CXLOG_SUPERVISED_BY",
      min: 1,
      description: "the pid of the supervisor that started this child, carried by its process slot"
    }),
    restarts: setting.integer({
      env: "CXLOG_SUPERVISED_RESTARTS",
      default: 0,
      min: 0,
      description:
        "how many times the supervisor had restarted this child when it started it, carried by its process slot"
    })
  }
} as const satisfies SettingsTable
