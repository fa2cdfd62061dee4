/** The addon's settings, declared once (src/Settings.ts): where it is loaded from, and how npm's install step gets it. */
import { setting, type SettingsTable } from "../Settings.js"

export const NATIVE_SETTINGS = {
  usedBy: "every process (the addon)",
  settings: {
    nativePath: setting.optionalText({
      env: "CXLOG_NATIVE_PATH",
      placeholder: "PATH",
      shown: "build/Release, else prebuilds/",
      description: "load the addon from this file only"
    })
  }
} as const satisfies SettingsTable

/** Read by scripts/install-addon.mjs (plain JavaScript, before anything is built): declared here for `cxlog config` and the docs. */
export const INSTALL_SETTINGS = {
  usedBy: "npm's install step (scripts/install-addon.mjs)",
  settings: {
    buildFromSource: setting.toggle({
      env: "CXLOG_BUILD_FROM_SOURCE",
      description: "build the addon with node-gyp even where a prebuilt one loads"
    })
  }
} as const satisfies SettingsTable
