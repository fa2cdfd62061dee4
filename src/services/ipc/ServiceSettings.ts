/** Services' settings, declared once (src/Settings.ts): a new service's shape, a call's bound, how often a caller looks at its server. */
import { setting, type SettingsTable } from "../../Settings.js"

/**
 * What a service's layout holds at most (layers/ipc/ServiceLayout.ts checks a serve's shape against
 * them): the settings refuse more, naming their variable, rather than every serve without a shape.
 */
export const SERVICE_LIMITS = {
  /** 256 ring ids a directory slot: the reply ring's, and one request ring per caller. */
  callerSlots: 255,
  ringBytes: { min: 4096, max: 2 ** 30, multipleOf: 64 }
} as const

export const SERVICE_SETTINGS = {
  usedBy: "services (the Services layers)",
  settings: {
    callerSlots: setting.integer({
      env: "CXLOG_SERVICE_CALLER_SLOTS",
      default: 16,
      min: 1,
      max: SERVICE_LIMITS.callerSlots,
      description: "callers a new service has room for at once: a request ring each (when its serve names none)"
    }),
    ringBytes: setting.size({
      env: "CXLOG_SERVICE_RING_BYTES",
      default: 64 << 10,
      bounds: SERVICE_LIMITS.ringBytes,
      description:
        "each request ring and the reply ring of a new service (when its serve names none): a request or reply is at most a quarter of it"
    }),
    callTimeoutMs: setting.millis({
      env: "CXLOG_SERVICE_CALL_TIMEOUT_MS",
      default: 10_000,
      min: 1,
      description: "how long a call waits for its reply before RpcTimeout (when the call names no bound)"
    }),
    checkEveryMs: setting.millis({
      env: "CXLOG_SERVICE_CHECK_MS",
      default: 50,
      min: 1,
      description:
        "how often a connected caller looks whether its service's server still runs: its calls fail with ServiceServerDied within about this of the server's death"
    }),
    spinMicros: setting.integer({
      env: "CXLOG_SERVICE_SPIN_MICROS",
      default: 200,
      description:
        "how long a caller waiting for a reply, and a server for the next request, may spin before parking (adaptive: only while recent waits say it pays and the machine has a core free); 0: the process's CXLOG_SPIN_MICROS"
    })
  }
} as const satisfies SettingsTable
