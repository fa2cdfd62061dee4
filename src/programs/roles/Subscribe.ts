/**
 * `cxlog subscribe`: a local reader of a topic's total order (it maps the region). With
 * `--audit` it checks the messages `cxlog publish`/`run` stamped and reports the audit.
 *
 * An audit reads to the end of the ordered log, not just until every message arrived once,
 * so a duplicate ordered after the last distinct message is counted: the end is the log's end
 * when `publishersDone` first holds (`cxlog run` says so once its publisher is acked), or,
 * without that signal, when every message has arrived once. Past that end with messages still
 * missing, it keeps reading until `idleTimeoutMs` (with ACK 0 they may still be ordered); what
 * is then missing is lost. Stopping before that end, missing messages are "not delivered".
 *
 * Every wait is bounded: `--limit` fails with `ReadIdle` after `idleTimeoutMs` without a new
 * message, and any wait fails with `HeadUnavailable` once the head is gone past its bound (a
 * plain tail with the head alive waits for as long as it runs).
 */
import { Console, Data, Effect, Layer } from "effect"
import { valueStart } from "../../layers/net/BatchPayload.js"
import { attachRegion, processSlot, reader, type RegionAccess } from "../../layers/Roles.js"
import { loadAddonSync } from "../../native/Native.js"
import { type LogBatchView, type LogMessageView, LogReader } from "../../services/log/LogReader.js"
import type { OrderMode } from "../../services/log/OrderModes.js"
import { LogCorrupt } from "../../services/log/Topics.js"
import { auditFigures, type AuditResult, makeAudit } from "../run/Audit.js"
import { report as reportToParent, reportFailure, type RoleEvent } from "./Report.js"

export interface SubscribeOptions {
  readonly region: RegionAccess
  readonly topic: string
  readonly from: number | "earliest" | "latest"
  /** Audit `publishers × perPublisher` stamped messages, reading to the end of the log (see above). */
  readonly audit?: { readonly publishers: number; readonly perPublisher: number; readonly order: OrderMode }
  /** Audit mode: true once every publisher has finished; the log's end then is where the audit stops. */
  readonly publishersDone?: () => boolean
  /** Without an audit: stop after this many messages (default: run until interrupted). */
  readonly limit?: number
  /** Give up when nothing new arrives for this long (audit mode, and `limit`). */
  readonly idleTimeoutMs: number
  readonly reportEveryMs: number
  /** Print each message (no audit): its total order and payload as text. */
  readonly print: boolean
  /** Where progress and done events go; default the orchestrator's IPC channel, if any. */
  readonly report?: (event: RoleEvent) => void
}

export class ReadIdle extends Data.TaggedError("ReadIdle")<{
  /** The topic read, or the topics and patterns. */
  readonly topic: string
  readonly received: number
  readonly limit: number
  readonly idleMs: number
  /** Where the one topic read was (undefined: several topics). */
  readonly position?: number
}> {
  override get message() {
    return `topic ${this.topic}: no new message for ${this.idleMs} ms after ${this.received} of the ${this.limit} asked for (${
      this.position === undefined ? "" : `at offset ${this.position}; `
    }--idle-timeout-ms)`
  }
}

/** The reader over whatever LogReader is provided (`subscribe` maps the region for it). */
export const readTopic = (options: Omit<SubscribeOptions, "region">) =>
  Effect.gen(function*() {
    const report = options.report ?? reportToParent
    const log = yield* LogReader
    const cursor = yield* log.subscribe(options.topic, { from: options.from, durable: true })
    report({ event: "subscribed", position: cursor.position() })
    const addon = loadAddonSync()
    const audit = options.audit === undefined
      ? undefined
      : makeAudit(options.audit.publishers, options.audit.perPublisher, options.audit.order)
    const decoder = new TextDecoder("utf-8", { ignoreBOM: true })
    let messages = 0
    let bytes = 0
    const onMessage = (m: LogMessageView) => {
      messages++
      bytes += m.length
      if (options.print) {
        // The log hands out whole record bodies: the value follows the key and headers (checked by the broker).
        const start = valueStart(m.bytes, m.offset - 8, m.flags, m.length)
        process.stdout.write(
          `${m.totalOrder}\t${decoder.decode(m.bytes.subarray(Math.max(start, m.offset), m.offset + m.length))}\n`
        )
      }
    }
    /**
     * Audit mode reads whole batches: one callback per batch, the crc32c over its payload, then
     * a plain loop over its messages (their lengths bounds-checked, as `poll` would).
     */
    let malformed: string | undefined
    const u32 = (b: Uint8Array, o: number) => (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0
    const onBatch = (batch: LogBatchView) => {
      if (audit === undefined) return
      audit.batchCrc(addon.crc32c(batch.bytes, batch.offset, batch.length) === batch.crc32c)
      const { bytes: region, messageCount, startIndex } = batch
      const end = batch.offset + batch.length
      let at = batch.offset
      for (let i = 0; i < messageCount; i++) {
        const length = at + 8 <= end ? u32(region, at) : -1
        if (length < 0 || length > end - at - 8) {
          malformed ??= `batch ${batch.globalSeq}: message ${i} overruns its payload`
          return
        }
        if (i >= startIndex) {
          messages++
          bytes += length
          // A plain record's value starts after its 8-byte header; the batch's first carries its base timestamp first.
          const flags = u32(region, at + 4)
          const value = (flags & 0xff) === 0 ? at + 8 : valueStart(region, at, flags, length)
          if (value < 0) audit.message(region, at + 8, 0)
          else audit.message(region, value, at + 8 + length - value)
        }
        at += 8 + ((length + 7) & ~7)
      }
      if (at !== end) malformed ??= `batch ${batch.globalSeq}: ${end - at} bytes follow its last message`
    }
    /** Audit mode: the log's end the audit reads to, once known, and whether the reader got there. */
    let end: number | undefined
    let readToEnd = false
    /** Audit mode: when every message had arrived once (epoch ms), the clock point an e2e MB/s ends at. */
    let completeAtMs: number | undefined
    const started = Date.now()
    let lastReport = started
    let lastProgress = started
    for (;;) {
      const n = audit === undefined ? yield* cursor.poll(onMessage, 256) : yield* cursor.pollBatches(onBatch, 256)
      if (malformed !== undefined) return yield* new LogCorrupt({ reason: `topic ${options.topic}: ${malformed}` })
      const now = Date.now()
      if (n > 0) lastProgress = now
      if (now - lastReport >= options.reportEveryMs) {
        lastReport = now
        report({ event: "progress", messages, bytes, position: cursor.position() })
      }
      if (audit === undefined) {
        if (options.limit !== undefined && messages >= options.limit) break
      } else {
        if (completeAtMs === undefined && n > 0 && audit.complete()) {
          completeAtMs = performance.timeOrigin + performance.now()
        }
        if (end === undefined && (options.publishersDone === undefined ? audit.complete() : options.publishersDone())) {
          end = (yield* log.bounds(options.topic)).end
        }
        if (end !== undefined && cursor.position() >= end) {
          readToEnd = true
          if (audit.complete()) break
        }
      }
      if (n === 0) {
        if (audit !== undefined && now - lastProgress > options.idleTimeoutMs) break
        if (options.limit !== undefined && now - lastProgress > options.idleTimeoutMs) {
          return yield* new ReadIdle({
            topic: options.topic,
            received: messages,
            limit: options.limit,
            idleMs: now - lastProgress,
            position: cursor.position()
          })
        }
        yield* cursor.awaitMore(100)
      }
    }
    const elapsedMs = Date.now() - started
    const result: AuditResult | undefined = audit?.result(readToEnd)
    report({
      event: "done",
      messages,
      bytes,
      elapsedMs,
      audit: result,
      ...(completeAtMs === undefined ? {} : { completeAtMs })
    })
    if (result !== undefined) {
      yield* Console.error(
        `subscriber: ${messages} messages${
          readToEnd ? ", read to the end of the log" : ", stopped before the end of the log"
        }; audit ${result.passed ? "passed" : "FAILED"}: received ${result.received}, ${auditFigures(result)}`
      )
    }
    return result
  }).pipe(Effect.scoped)

export const subscribe = (options: SubscribeOptions) =>
  readTopic(options).pipe(
    Effect.provide(
      reader.pipe(Layer.provideMerge(processSlot("client")), Layer.provideMerge(attachRegion(options.region)))
    ),
    Effect.tapError((error) => Effect.sync(() => reportFailure(error)))
  )
