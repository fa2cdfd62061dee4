/**
 * The remote auditing subscriber of `cxlog run` / `cxlog bench --remote-subscribers N`: it
 * reads a topic's total order over TCP from the brokers (the remote Subscriber) and audits it
 * like the local subscriber (Audit.ts), reading to the log's end as of the orchestrator's
 * `publishersDone`. As a named consumer (`cxlog run` names each) its commits hold retention, so
 * the publishers wait for it; anonymous, it holds none, and one that falls out of the retained
 * window fails with the Subscriber's typed `LogOutOfRange`, never a hang.
 *
 * The batches are audited in a fiber of their own as they arrive (each view is valid only
 * until the next pull); the main loop only watches the position, the end and the idle bound.
 */
import { Console, Effect, Fiber } from "effect"
import { layerRemote, type RemoteSubscriberOptions } from "../../layers/net/SubscriberRemote.js"
import type { OrderMode } from "../../services/log/OrderModes.js"
import { Subscriber, type SubscriberBatch, type SubscriberMessage } from "../../services/net/Subscriber.js"
import { report, reportFailure } from "../roles/Report.js"
import { auditFigures, type AuditResult, makeAudit } from "./Audit.js"

export interface RemoteAuditOptions {
  readonly remote: Pick<RemoteSubscriberOptions, "brokers" | "credentials" | "tls">
  readonly topic: string
  readonly publishers: number
  readonly perPublisher: number
  /** The topic's order mode: whether publish order is checked (`promisesPublishOrder`). */
  readonly order: OrderMode
  /** True once every publisher has finished; the log's end then is where the audit stops. */
  readonly publishersDone: () => boolean
  /** Stop (what is missing then is "not delivered") when nothing new arrives for this long. */
  readonly idleTimeoutMs: number
  readonly reportEveryMs: number
  /** Read as this named consumer (committing as it goes), so retention waits for it. */
  readonly consumer?: string
}

export const remoteAudit = (options: RemoteAuditOptions) =>
  Effect.gen(function*() {
    const subscriber = yield* Subscriber
    const subscription = yield* subscriber.subscribe(options.topic, {
      from: "earliest",
      ...(options.consumer === undefined ? {} : { consumer: options.consumer })
    })
    report({ event: "subscribed", position: subscription.start })
    const audit = makeAudit(options.publishers, options.perPublisher, options.order)
    let messages = 0
    let bytes = 0
    let lastProgress = Date.now()
    /** Read throughput counts from the first batch (the publisher starts after every subscriber subscribed). */
    let firstBatchAt: number | undefined
    const onMessage = (m: SubscriberMessage) => {
      audit.message(m.bytes, m.valueOffset, m.valueLength)
      bytes += m.valueLength
    }
    const onBatch = (batch: SubscriberBatch) => {
      // The values where they lie: no view per message.
      batch.forEach(onMessage)
      messages += batch.count
      firstBatchAt ??= Date.now()
    }
    // Every batch received at once, no Stream or Effect step per batch (either cost more than auditing a 64 KiB batch).
    const reading = yield* Effect.gen(function*() {
      for (;;) {
        yield* subscription.poll(onBatch)
        lastProgress = Date.now()
      }
    }).pipe(Effect.fork)
    const started = Date.now()
    let lastReport = started
    let end: number | undefined
    let readToEnd = false
    for (;;) {
      // The reader failing (LogOutOfRange, the broker gone) fails the audit with its typed error.
      const exit = yield* Fiber.poll(reading)
      if (exit._tag === "Some") {
        yield* exit.value
        break
      }
      const now = Date.now()
      if (now - lastReport >= options.reportEveryMs) {
        lastReport = now
        report({ event: "progress", messages, bytes, position: subscription.position() })
      }
      if (end === undefined && options.publishersDone()) end = (yield* subscriber.bounds(options.topic)).end
      if (end !== undefined && subscription.position() >= end) {
        readToEnd = true
        if (audit.complete()) break
      }
      if (now - lastProgress > options.idleTimeoutMs) break
      yield* Effect.sleep("20 millis")
    }
    yield* Fiber.interrupt(reading)
    const elapsedMs = Date.now() - (firstBatchAt ?? started)
    const result: AuditResult = audit.result(readToEnd)
    report({ event: "done", messages, bytes, elapsedMs, audit: result })
    yield* Console.error(
      `remote subscriber: ${messages} messages in ${elapsedMs} ms${
        readToEnd ? ", read to the end of the log" : ", stopped before the end of the log"
      }; audit ${result.passed ? "passed" : "FAILED"}: received ${result.received}, ${auditFigures(result)}`
    )
    return result
  }).pipe(
    Effect.scoped,
    Effect.tapError((error) => Effect.sync(() => reportFailure(error))),
    Effect.provide(layerRemote(options.remote))
  )
