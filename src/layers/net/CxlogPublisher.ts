/**
 * A plain Promise facade over the Effect publisher, for applications that do not use
 * Effect: a small class over a `ManagedRuntime` that `close()` disposes.
 *
 * ```ts
 * const publisher = await CxlogPublisher.open({ brokers: [{ host: "127.0.0.1", port: 7400 }], topic: "orders" })
 * await publisher.publish("hello")
 * const { offset } = await publisher.publish("one", { acked: true })   // once acknowledged: its place in the total order
 * await publisher.publish("paid", { key: "order-17", headers: { source: "web" } })
 * await publisher.publish("shipped", { topic: "shipments" })   // any topic, over the same connections
 * await publisher.flush(5_000)   // rejects with PublishAckTimeout naming each broker's acked/sent counts
 * await publisher.close()         // flushes first: rejects with PublisherCloseUnflushed if that fails
 * ```
 */
import { Cause, Data, type Duration, type Effect, Exit, type Layer, ManagedRuntime } from "effect"
import { setMaxListeners } from "node:events"
import { durationProblem, withMillis } from "../../Durations.js"
import {
  InvalidPublisherOptions,
  type MessageOptions,
  type MessageRange,
  type PublishAck,
  Publisher,
  PublisherClosed,
  type PublisherOptions,
  type PublisherShape,
  type PublisherStats
} from "../../services/net/Publisher.js"
import { MAX_TIMER_MS } from "../../SettingText.js"
import { invalidPublishOptions } from "./MessageCheck.js"
import * as PublisherLayers from "./Publisher.js"
import { optionsProblem } from "./PublisherDefaults.js"

/** `close()` could not flush: the messages not acknowledged are lost to this publisher (it closed anyway). */
export class PublisherCloseUnflushed extends Data.TaggedError("PublisherCloseUnflushed")<{
  readonly unacknowledgedMessages: number
  /** Why the flush failed: `PublishAckTimeout` (naming each broker's acked/sent batches) or the publisher's error. */
  readonly cause: unknown
}> {
  override get message() {
    const why = this.cause instanceof Error ? this.cause.message : String(this.cause)
    return `closed with ${this.unacknowledgedMessages} message(s) published but not acknowledged: ${why}`
  }
}

export interface CloseOptions {
  /** Flush before closing (default true); `false` closes at once, abandoning what is not acknowledged. */
  readonly flush?: boolean
  /** Bound of that flush; default the publisher's `ackTimeoutMs` (30 s). */
  readonly timeoutMs?: number
  /** `timeoutMs` as a duration (`"5 seconds"`, `Duration.seconds(5)`); given both, this one counts. */
  readonly timeout?: Duration.DurationInput
}

/** Why `close` cannot take `options` (a JavaScript caller can pass anything), or undefined. */
const closeOptionsProblem = (options: unknown): string | undefined => {
  if (typeof options !== "object" || options === null) {
    return `close takes { flush, timeoutMs, timeout } or nothing, not ${String(options)}`
  }
  const { flush, timeout } = options as CloseOptions
  if (flush !== undefined && typeof flush !== "boolean") return `close's flush is true or false, not ${String(flush)}`
  const noDuration = durationProblem("close's timeout", timeout)
  if (noDuration !== undefined) return noDuration
  const { timeoutMs } = withMillis(options as CloseOptions, ["timeout"])
  return timeoutMs === undefined || (typeof timeoutMs === "number" && timeoutMs >= 0 && timeoutMs <= MAX_TIMER_MS)
    ? undefined
    : `close takes a timeout in milliseconds from 0 to ${MAX_TIMER_MS}, not ${String(timeoutMs)}`
}

const encoder = new TextEncoder()
const accepted = Promise.resolve()

export class CxlogPublisher {
  private closed = false
  private closing: Promise<void> | undefined
  /**
   * Ends the publishes still waiting for window room when `close()` starts: let in once room
   * came, they would land after its flush and go unsent with the publisher, their promises resolved.
   */
  private readonly stop = new AbortController()

  private constructor(
    private readonly runtime: ManagedRuntime.ManagedRuntime<Publisher, unknown>,
    private readonly publisher: PublisherShape,
    private readonly ackTimeoutMs: number
  ) {
    // Every publish waiting for room listens to it while it waits: any number at once is no leak.
    setMaxListeners(0, this.stop.signal)
  }

  /**
   * Starts connecting to the brokers; rejects with `InvalidPublisherOptions`. Without
   * `credentials` it authenticates as the local user of `region` (its secret file), as the CLI does.
   */
  static async open(options: PublisherOptions): Promise<CxlogPublisher> {
    const problem = optionsProblem(options)
    if (problem !== undefined) throw new InvalidPublisherOptions({ reason: problem })
    return CxlogPublisher.openWith(PublisherLayers.layer(options), withMillis(options, ["ackTimeout"]).ackTimeoutMs)
  }

  /**
   * Opens the publisher a layer makes, e.g. a local one on the region's host, which appends into
   * the region itself through no broker: `CxlogPublisher.openWith(Roles.localPublisher({ name: "cxlog" },
   * { topic: "events" }))`. Rejects with the layer's error; `ackTimeoutMs` as the publisher's (default 30 s).
   */
  static async openWith<E>(layer: Layer.Layer<Publisher, E>, ackTimeoutMs = 30_000): Promise<CxlogPublisher> {
    // Its layer holds the connection's options: a second argument is the ACK timeout alone.
    if (!(typeof ackTimeoutMs === "number" && ackTimeoutMs > 0 && ackTimeoutMs <= MAX_TIMER_MS)) {
      throw new InvalidPublisherOptions({
        reason: `openWith(layer, ackTimeoutMs) takes the ACK timeout in milliseconds (its layer holds the rest), not ${
          typeof ackTimeoutMs === "object" ? JSON.stringify(ackTimeoutMs) : String(ackTimeoutMs)
        }`
      })
    }
    const runtime = ManagedRuntime.make(layer)
    const exit = await runtime.runPromiseExit(Publisher)
    if (Exit.isFailure(exit)) {
      await runtime.dispose()
      throw Cause.squash(exit.cause)
    }
    return new CxlogPublisher(runtime, exit.value, ackTimeoutMs)
  }

  get clientId(): number {
    return this.publisher.clientId
  }

  /**
   * Resolves once the message is in a batch (at once unless the in-flight window is full);
   * with `{ acked: true }`, once it is acknowledged, with its offset in the total order
   * (rejects with `PublishAckTimeout` after `ackTimeoutMs`). `key` and `headers` travel with
   * it (strings as UTF-8); it is stamped with the time of this call. `topic` sends it to that topic
   * (default the publisher's `topic`); a topic the log refuses rejects with `BrokerRejected` naming it.
   */
  publish(payload: Uint8Array | string, options?: MessageOptions & { readonly acked?: false }): Promise<void>
  publish(payload: Uint8Array | string, options: MessageOptions & { readonly acked: true }): Promise<PublishAck>
  /** `acked` known only when it runs: resolves with the ACK when it is true, with nothing when it is false. */
  publish(
    payload: Uint8Array | string,
    options: MessageOptions & { readonly acked: boolean }
  ): Promise<void | PublishAck>
  publish(
    payload: Uint8Array | string,
    options?: MessageOptions & { readonly acked?: boolean }
  ): Promise<void | PublishAck> {
    if (this.closed) return Promise.reject(new PublisherClosed())
    const refused = invalidPublishOptions(options)
    if (refused !== undefined) return Promise.reject(refused)
    const bytes = typeof payload === "string" ? encoder.encode(payload) : payload
    const message = options?.key === undefined && options?.headers === undefined && options?.topic === undefined
      ? undefined
      : options
    if (options?.acked === true) return this.run(this.publisher.publishAcked(bytes, message))
    const taken = this.publisher.tryPublish(bytes, message)
    if (taken === true) return accepted
    if (taken !== false) return Promise.reject(taken)
    return this.run(this.publisher.publish(bytes, message), this.stop.signal)
  }

  /** Resolves when everything published so far is acknowledged; rejects with `PublishAckTimeout` after `timeoutMs`. */
  flush(timeoutMs = 30_000): Promise<void> {
    if (!(typeof timeoutMs === "number" && timeoutMs >= 0 && timeoutMs <= MAX_TIMER_MS)) {
      return Promise.reject(
        new InvalidPublisherOptions({ reason: `flush takes a timeout in milliseconds, not ${String(timeoutMs)}` })
      )
    }
    return this.run(this.publisher.flush(timeoutMs))
  }

  stats(): PublisherStats {
    return this.publisher.stats()
  }

  /** The messages published and not acknowledged yet, as ranges naming their topic (after a failed `flush`: the ones it names). */
  unacknowledged(): ReadonlyArray<MessageRange> {
    return this.publisher.unacknowledged()
  }

  /** Seal-to-ACK latency per acknowledged batch, in µs. */
  ackLatencies(): Float64Array {
    return this.publisher.ackLatencies()
  }

  /**
   * Flushes (bounded by `timeoutMs`, default `ackTimeoutMs`), then closes every connection. If
   * messages are left unacknowledged it still closes, and rejects with `PublisherCloseUnflushed`
   * naming how many. `{ flush: false }` closes at once, abandoning them. Options it cannot take
   * reject with `InvalidPublisherOptions`, nothing closed. A `publish` still waiting
   * for window room rejects with `PublisherClosed`, nothing of it sent.
   */
  close(options: CloseOptions = {}): Promise<void> {
    if (this.closing === undefined) {
      // Refused before anything closes, as flush's bound is: a bound that is no number of
      // milliseconds would never expire, and a close that threw midway kept every connection.
      const problem = closeOptionsProblem(options)
      if (problem !== undefined) return Promise.reject(new InvalidPublisherOptions({ reason: problem }))
    }
    this.closing ??= this.closeOnce(options)
    return this.closing
  }

  private async closeOnce(options: CloseOptions): Promise<void> {
    // From here on publish rejects with PublisherClosed, a publish waiting for window room too
    // (nothing of it taken): the flush covers every message taken before.
    this.closed = true
    this.stop.abort()
    const flushed = options.flush === false
      ? Exit.void
      : await this.runtime.runPromiseExit(
        this.publisher.flush(withMillis(options, ["timeout"]).timeoutMs ?? this.ackTimeoutMs)
      )
    const stats = this.publisher.stats()
    await this.runtime.dispose()
    // A publisher that failed earlier fails its flush too; with nothing unacknowledged, nothing is lost.
    const unacknowledgedMessages = stats.messages - stats.ackedMessages
    if (Exit.isFailure(flushed) && unacknowledgedMessages > 0) {
      throw new PublisherCloseUnflushed({ unacknowledgedMessages, cause: Cause.squash(flushed.cause) })
    }
  }

  /** Runs an effect until it ends or `signal` aborts, rejecting with its typed error itself (not a FiberFailure wrapper). */
  private async run<A, E>(effect: Effect.Effect<A, E, Publisher>, signal?: AbortSignal): Promise<A> {
    if (this.closed) throw new PublisherClosed()
    const exit = await this.runtime.runPromiseExit(effect, signal === undefined ? undefined : { signal })
    if (Exit.isSuccess(exit)) return exit.value
    // Ended by close(): the message was never taken.
    if (this.closed && Cause.isInterruptedOnly(exit.cause)) throw new PublisherClosed()
    throw Cause.squash(exit.cause)
  }
}
