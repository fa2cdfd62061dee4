/** The mirror's settings, declared once (src/Settings.ts). */
import { setting, type SettingsTable } from "../../Settings.js"

export const MIRROR_SETTINGS = {
  usedBy: "mirror, topics (mirror status files)",
  settings: {
    statusDir: setting.optionalText({
      env: "CXLOG_MIRROR_STATUS_DIR",
      placeholder: "PATH",
      shown: "$XDG_RUNTIME_DIR/cxlog/mirrors",
      description: "where a mirror leaves its status for cxlog topics on the same host"
    })
  }
} as const satisfies SettingsTable
