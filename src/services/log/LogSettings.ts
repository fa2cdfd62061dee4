/**
 * The log's settings, declared once (src/Settings.ts): the log area's layout, which the head
 * that creates a region reads and every other process reads back from the region; the
 * sequencer's bounds; how long a reader or broker waits for a head that is gone; and the
 * durable tier's directory.
 */
import { nonBlank, type Parse, setting, type SettingsTable } from "../../Settings.js"

export const LOG_LAYOUT_SETTINGS = {
  usedBy: "head (region layout)",
  settings: {
    maxBrokers: setting.integer({
      env: "CXLOG_LOG_MAX_BROKERS",
      default: 64,
      description: "writer slots of the region: each broker and each local publisher takes one while it runs"
    }),
    pbrSlots: setting.integer({
      env: "CXLOG_LOG_PBR_SLOTS",
      default: 1024,
      description: "the most batch headers a topic's writer lane holds (a topic's memory sizes its own, up to this)"
    }),
    topicMemoryBytes: setting.size({
      env: "CXLOG_TOPIC_MEMORY",
      default: 64 << 20,
      description:
        "the memory a topic's writer lanes share when its create names none: each writer's lane takes memory / writers (down to a power of two), allocated when it first writes; the topic's records take a little more"
    }),
    topicWriters: setting.integer({
      env: "CXLOG_TOPIC_WRITERS",
      default: 4,
      description: "how many writers (brokers, local publishers) a topic has lanes for when its create names none"
    }),
    goiSlots: setting.integer({
      env: "CXLOG_LOG_GOI_SLOTS",
      default: 1 << 16,
      description:
        "the most batches a topic's global order index holds (a topic's memory sizes its own: one per 2 KiB, up to this)"
    }),
    sessionSlots: setting.integer({
      env: "CXLOG_LOG_SESSION_SLOTS",
      default: 1024,
      description:
        "the most publisher session lines a topic has (one per 4 KiB of its memory, at least 16; 7/8 of them usable at once)"
    }),
    subscriberSlots: setting.integer({
      env: "CXLOG_LOG_SUBSCRIBER_SLOTS",
      default: 8,
      description: "durable subscriber cursors per topic"
    }),
    listenerSlots: setting.integer({
      env: "CXLOG_LOG_LISTENER_SLOTS",
      default: 32,
      description: "reader processes the region can wake"
    }),
    maxBatchBytes: setting.size({
      env: "CXLOG_LOG_MAX_BATCH_BYTES",
      default: 1 << 20,
      description: "the largest batch a topic takes (a topic's lanes may allow less: two batches fit each Blog)"
    })
  }
} as const satisfies SettingsTable

export const SEQUENCER_SETTINGS = {
  usedBy: "head",
  settings: {
    holdTimeoutMs: setting.millis({
      env: "CXLOG_HOLD_TIMEOUT_MS",
      default: 5_000,
      // At 0 nothing is held: a session whose batches reach the sequencer out of order (through two
      // brokers) would be fenced at its first gap, and a full log's waiting would fence it too.
      min: 1,
      // Compared with the clock only (the sequencer's wait is bounded by its lease): no timer's bound.
      max: Number.MAX_SAFE_INTEGER,
      // Nothing is skipped: the engine's expiry (OrderEngine.expire) fences the session and drops what it held.
      description:
        "order 5: how long the sequencer holds a session's later batches for a gap before fencing the session: its held batches are dropped, none is ordered past the gap, and its publisher sends them again in a new session (at least 1)"
    }),
    sessionIdleMs: setting.millis({
      env: "CXLOG_SESSION_IDLE_MS",
      default: 10 * 60_000,
      // At 0 every session would be released at each sweep, between any two of its batches: 0 is not "never".
      min: 1,
      // Compared with the clock at each sweep only: no timer's bound.
      max: Number.MAX_SAFE_INTEGER,
      description: "release a publisher session that sent no batch for this long (at least 1)"
    }),
    sessionGapIdleMs: setting.optionalMillis({
      env: "CXLOG_SESSION_GAP_IDLE_MS",
      shown: "6 x --session-idle-ms",
      max: Number.MAX_SAFE_INTEGER,
      description:
        "orders 0/2/4: a session with batches ordered above a gap lapses after this long with no batch (its publisher is told unknown-session)"
    }),
    leaseMs: setting.millis({
      env: "CXLOG_SEQUENCER_LEASE_MS",
      default: 2_000,
      min: 1,
      description: "the sequencer's lease in the region: a head that stops renewing it is gone after this long"
    })
  }
} as const satisfies SettingsTable

export const HEAD_WATCH_SETTINGS = {
  usedBy: "broker, subscribe, every member of a region (its coordinator client)",
  settings: {
    headLostMs: setting.optionalMillis({
      env: "CXLOG_HEAD_LOST_MS",
      min: 1,
      shown: "lease + 3000",
      description:
        "how long the head may be gone before a broker stops, a waiting reader fails with HeadUnavailable, and so does a process's call to the head's coordinator (joining it included)"
    })
  }
} as const satisfies SettingsTable

/**
 * A data directory's path. A blank one is refused: its streams would be made relative to the
 * working directory (`DIR/topic-NAME` with DIR "": `./topic-NAME`), where no head started
 * elsewhere finds them.
 */
export const parseDataDir: Parse<string | undefined> = nonBlank(
  "a directory (a blank path would put the streams in the working directory)"
)

export const DURABLE_SETTINGS = {
  usedBy: "head, broker, serve, local readers",
  settings: {
    dataDir: setting.custom({
      env: "CXLOG_DATA_DIR",
      placeholder: "DIR",
      parse: parseDataDir,
      default: undefined,
      shown: "none: memory only",
      description:
        "the durable tier's directory: topics with replication factor 2 are persisted there and ACK 2 means on disk (docs/durability.md)"
    })
  }
} as const satisfies SettingsTable
