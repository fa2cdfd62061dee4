/**
 * Recovery: rebuilds a topic's log in an empty region from its stream in the data directory
 * (`cxlog head --recover DIR`). Opening the stream cuts a torn tail (logged) or fails on a
 * corrupt record; every session in it is registered again under its recorded epoch (so a
 * publisher resending across the crash is still deduplicated in order 5, and no new session
 * draws a recovered epoch); each batch is appended again, in the recorded order, through one
 * broker slot, and the sequencer orders them. Read back, every batch must sit at the total order
 * the stream recorded, or recovery fails: the recovered log is the recorded one.
 */
import { Data, Effect } from "effect"
import { Appender } from "../../services/log/Appender.js"
import { LogReader } from "../../services/log/LogReader.js"
import { Segments } from "../../services/log/Segments.js"
import type { TopicInfo } from "../../services/log/Topics.js"
import { decodeOrderRecord, type OrderedBatch, streamOf } from "./DurableOrder.js"
import type { SessionTable } from "./SessionTable.js"

export class RecoveryFailed extends Data.TaggedError("RecoveryFailed")<{ readonly topic: string; readonly reason: string }> {
  override get message() {
    return `recovering topic ${this.topic} from its segments failed: ${this.reason}`
  }
}

export interface RecoveryResult {
  readonly batches: number
  readonly messages: number
  readonly sessions: number
  /** Bytes of a torn tail cut when the stream was opened. */
  readonly cutBytes: number
}

/** Batches appended between two rounds of the sequencer, by default (bounded by the region's room anyway). */
const CHUNK = 256

/**
 * Replays the topic's stream into the (empty) log. `order` runs the sequencer until it is idle
 * (the head steps its own; nothing else may append meanwhile).
 */
export const recoverTopic = <E>(
  topic: TopicInfo,
  sessions: SessionTable,
  order: Effect.Effect<void, E>,
  options: { readonly appendTimeoutMs?: number; readonly chunk?: number } = {}
) =>
  Effect.gen(function*() {
    const segments = yield* Segments
    const appender = yield* Appender
    const reader = yield* LogReader
    const fail = (reason: string) => new RecoveryFailed({ topic: topic.name, reason })
    const { appendTimeoutMs = 30_000, chunk: chunkSize = CHUNK } = options
    const bounds = yield* reader.bounds(topic.name)
    if (bounds.end !== 0) return yield* fail(`the log in the region is not empty (it holds offsets up to ${bounds.end})`)
    const log = yield* segments.open(streamOf(topic.name))
    if (log.first() !== 0) return yield* fail(`the stream's retention deleted its records before ${log.first()}: the offsets cannot be rebuilt from 0`)
    const registered = new Set<string>()
    const durableOf = new Map<string, number>()
    const recorded: Array<number> = []
    let messages = 0
    let next = 0
    while (next < log.durable()) {
      const chunk: Array<OrderedBatch> = []
      let bad: string | undefined
      next = yield* log.read(next, (index, record) => {
        const batch = decodeOrderRecord(record)
        if (batch === undefined) {
          bad = `record ${index} is not a batch record`
          return false
        }
        chunk.push({ ...batch, payload: batch.payload.slice() })
        return chunk.length < chunkSize
      })
      if (bad !== undefined) return yield* fail(bad)
      for (const batch of chunk) {
        if (batch.totalOrder !== messages) return yield* fail(`batch ${recorded.length} was recorded at offset ${batch.totalOrder}, expected ${messages}: the stream has a gap`)
        const key = `${batch.clientId}/${batch.sessionEpoch}`
        if (!registered.has(key)) {
          const taken = sessions.registerAs(batch.clientId, batch.sessionEpoch, Date.now())
          if ("full" in taken) return yield* fail(`the session table is full (${taken.capacity} sessions)`)
          sessions.reserveEpochsThrough(batch.sessionEpoch)
          registered.add(key)
        }
        const header = {
          clientId: batch.clientId,
          sessionEpoch: batch.sessionEpoch,
          batchSeq: batch.batchSeq,
          messageCount: batch.messageCount,
          payloadBytes: batch.payload.length,
          crc32c: batch.crc32c
        }
        const fill = (dst: Uint8Array) => dst.set(batch.payload)
        const appended = appender.tryAppendWith(topic.name, header, fill)
        if (appended === "wait") {
          // The hot tier is full: only ordering what was replayed frees room (nothing else reads yet).
          yield* order
          yield* appender.appendWith(topic.name, header, fill).pipe(
            Effect.timeoutFail({ duration: appendTimeoutMs, onTimeout: () => fail(`no room to append batch ${recorded.length} within ${appendTimeoutMs} ms`) })
          )
        } else if (typeof appended === "object" && "_tag" in appended) {
          return yield* fail(`batch ${recorded.length} was refused: ${appended.message}`)
        }
        recorded.push(batch.totalOrder)
        durableOf.set(key, Math.max(durableOf.get(key) ?? 0, batch.batchSeq + 1))
        messages += batch.messageCount
      }
      yield* order
    }
    yield* order
    // Read back: every batch at its recorded offset, nothing else.
    const end = (yield* reader.bounds(topic.name)).end
    if (end !== messages) return yield* fail(`after replay the log ends at ${end}, the stream at ${messages} (a session's batches could not be ordered)`)
    // (What the hot tier still holds: a long stream leaves only its tail in the region.)
    const cursor = yield* reader.subscribe(topic.name, { from: "earliest" })
    let mismatch: string | undefined
    while (cursor.position() < end && mismatch === undefined) {
      const read = yield* cursor.pollBatches((batch) => {
        if (recorded[batch.globalSeq] !== batch.totalOrder) {
          mismatch ??= `batch ${batch.globalSeq} is at offset ${batch.totalOrder}, recorded at ${recorded[batch.globalSeq]}`
        }
      })
      if (read === 0) break
    }
    if (mismatch !== undefined) return yield* fail(mismatch)
    // They are on disk: a resend across the crash is acknowledged at level 2 as a duplicate.
    for (const [key, durable] of durableOf) {
      const [clientId, sessionEpoch] = key.split("/").map(Number)
      sessions.setDurable(clientId!, sessionEpoch!, durable)
    }
    const result: RecoveryResult = { batches: recorded.length, messages, sessions: registered.size, cutBytes: log.recovery.cutBytes }
    yield* Effect.logInfo(
      `recovery: topic ${topic.name}: ${result.batches} batches (${result.messages} messages) of ${result.sessions} sessions replayed in the recorded order` +
        (result.cutBytes > 0 ? `; a torn tail of ${result.cutBytes} bytes was cut` : "")
    )
    return result
  }).pipe(Effect.scoped)
