/**
 * `cxlog subscribe`: a local reader of a topic's total order (it maps the region). With
 * `--audit` it checks the messages `cxlog publish`/`run` stamped and reports the audit.
 */
import { Console, Effect, Layer } from "effect"
import { attachRegion, processSlot, reader, type RegionAccess } from "../layers/Roles.js"
import { loadAddonSync } from "../native/Native.js"
import { LogReader, type LogMessageView } from "../services/LogReader.js"
import { type AuditResult, makeAudit } from "./Audit.js"
import { report } from "./Report.js"

export interface SubscribeOptions {
  readonly region: RegionAccess
  readonly topic: string
  readonly from: number | "earliest" | "latest"
  /** Audit `publishers × perPublisher` stamped messages and stop when all arrived. */
  readonly audit?: { readonly publishers: number; readonly perPublisher: number }
  /** Without an audit: stop after this many messages (default: run until interrupted). */
  readonly limit?: number
  /** Give up when nothing new arrives for this long (audit mode). */
  readonly idleTimeoutMs: number
  readonly reportEveryMs: number
  /** Print each message (no audit): its total order and payload as text. */
  readonly print: boolean
}

export const subscribe = (options: SubscribeOptions) =>
  Effect.gen(function*() {
    const log = yield* LogReader
    const cursor = yield* log.subscribe(options.topic, { from: options.from, durable: true })
    report({ event: "subscribed", position: cursor.position() })
    const addon = loadAddonSync()
    const audit = options.audit === undefined ? undefined : makeAudit(options.audit.publishers, options.audit.perPublisher)
    const decoder = new TextDecoder()
    let batchSeen = -1
    let messages = 0
    let bytes = 0
    const onMessage = (m: LogMessageView) => {
      messages++
      bytes += m.length
      if (audit !== undefined) {
        if (m.batch.globalSeq !== batchSeen) {
          batchSeen = m.batch.globalSeq
          audit.batchCrc(addon.crc32c(m.batch.bytes, m.batch.offset, m.batch.length) === m.batch.crc32c)
        }
        audit.message(m.bytes, m.offset, m.length)
      } else if (options.print) {
        process.stdout.write(`${m.totalOrder}\t${decoder.decode(m.payload)}\n`)
      }
    }
    const done = () => (audit !== undefined ? audit.complete() : options.limit !== undefined && messages >= options.limit)
    const started = Date.now()
    let lastReport = started
    let lastProgress = started
    while (!done()) {
      const n = yield* cursor.poll(onMessage, 256)
      const now = Date.now()
      if (n > 0) lastProgress = now
      if (now - lastReport >= options.reportEveryMs) {
        lastReport = now
        report({ event: "progress", messages, bytes, position: cursor.position() })
      }
      if (n === 0) {
        if (audit !== undefined && now - lastProgress > options.idleTimeoutMs) break
        yield* cursor.awaitMore(100)
      }
    }
    const elapsedMs = Date.now() - started
    const result: AuditResult | undefined = audit?.result()
    report({ event: "done", messages, bytes, elapsedMs, audit: result })
    if (result !== undefined) {
      yield* Console.error(
        `subscriber: ${messages} messages; audit ${result.passed ? "passed" : "FAILED"}: lost ${result.lost}, duplicated ${result.duplicated}, out of order ${result.outOfOrder}, crc mismatches ${result.crcMismatches}`
      )
    }
    return result
  }).pipe(
    Effect.scoped,
    Effect.provide(reader.pipe(Layer.provideMerge(processSlot("client")), Layer.provideMerge(attachRegion(options.region))))
  )
