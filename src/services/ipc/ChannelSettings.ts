/** Channels' settings, declared once (src/Settings.ts): a new channel's shape and how long its ends wait. */
import { setting, type SettingsTable } from "../../Settings.js"

/**
 * What a channel's layout holds at most (layers/ipc/ChannelLayout.ts checks an open's shape against
 * them): the settings refuse more, naming their variable, rather than every open without a shape.
 */
export const CHANNEL_LIMITS = {
  /** Ring ids are `directory slot × writerSlots + writer slot`. */
  writerSlots: 256,
  /** A subscription holds a reader slot on every ring. */
  readerSlots: 64,
  ringBytes: { min: 4096, max: 2 ** 30, multipleOf: 64 }
} as const

export const CHANNEL_SETTINGS = {
  usedBy: "channels (the Channels layers)",
  settings: {
    writerSlots: setting.integer({
      env: "CXLOG_CHANNEL_WRITER_SLOTS",
      default: 8,
      min: 1,
      max: CHANNEL_LIMITS.writerSlots,
      description: "publishers a new channel has room for at once: a ring each (when its open names none)"
    }),
    readerSlots: setting.integer({
      env: "CXLOG_CHANNEL_READER_SLOTS",
      default: 8,
      min: 1,
      max: CHANNEL_LIMITS.readerSlots,
      description: "subscribers a new channel has room for at once (when its open names none)"
    }),
    ringBytes: setting.size({
      env: "CXLOG_CHANNEL_RING_BYTES",
      default: 64 << 10,
      bounds: CHANNEL_LIMITS.ringBytes,
      description:
        "each writer's ring in a new channel (when its open names none): what a writer may be ahead of its slowest reader"
    }),
    publishTimeoutMs: setting.millis({
      env: "CXLOG_CHANNEL_PUBLISH_TIMEOUT_MS",
      default: 10_000,
      min: 1,
      description: "how long a publish waits for room in its ring before it fails with ChannelFull"
    }),
    subscriberBuffer: setting.integer({
      env: "CXLOG_CHANNEL_SUBSCRIBER_BUFFER",
      default: 256,
      min: 1,
      description:
        "values a subscription holds taken from the rings and not yet handed on (its share of the backpressure bound)"
    }),
    spinMicros: setting.integer({
      env: "CXLOG_CHANNEL_SPIN_MICROS",
      default: 500,
      description:
        "how long a subscriber waiting for the next value may spin before parking (adaptive: only while recent waits say it pays and the machine has a core free); 0: the process's CXLOG_SPIN_MICROS"
    })
  }
} as const satisfies SettingsTable
