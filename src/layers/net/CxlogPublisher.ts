/**
 * A plain Promise facade over the Effect publisher, for applications that do not use
 * Effect: a small class over a `ManagedRuntime` that `close()` disposes.
 *
 * ```ts
 * const publisher = await CxlogPublisher.open({ brokers: [{ host: "127.0.0.1", port: 7400 }], topic: "orders" })
 * await publisher.publish("hello")
 * const { offset } = await publisher.publish("one", { acked: true })   // once acknowledged: its place in the total order
 * await publisher.publish("paid", { key: "order-17", headers: { source: "web" } })
 * await publisher.flush(5_000)   // rejects with PublishAckTimeout naming each broker's acked/sent counts
 * await publisher.close()
 * ```
 */
import { Cause, type Effect, Exit, ManagedRuntime } from "effect"
import { type LocalRegion, withLocalCredentials } from "./Auth.js"
import * as PublisherLayers from "./Publisher.js"
import {
  type InvalidPublisherOptions,
  type MessageOptions,
  Publisher,
  PublisherClosed,
  type PublishAck,
  type PublisherOptions,
  type PublisherShape,
  type PublisherStats
} from "../../services/net/Publisher.js"

const encoder = new TextEncoder()
const accepted = Promise.resolve()

export class CxlogPublisher {
  private closed = false

  private constructor(
    private readonly runtime: ManagedRuntime.ManagedRuntime<Publisher, InvalidPublisherOptions>,
    private readonly publisher: PublisherShape
  ) {}

  /**
   * Starts connecting to the brokers; rejects with `InvalidPublisherOptions`. Without
   * `credentials` it authenticates as the local user of `region` (its secret file), as the CLI does.
   */
  static async open(options: PublisherOptions & LocalRegion): Promise<CxlogPublisher> {
    const runtime = ManagedRuntime.make(PublisherLayers.layer(withLocalCredentials(options)))
    const exit = await runtime.runPromiseExit(Publisher)
    if (Exit.isFailure(exit)) {
      await runtime.dispose()
      throw Cause.squash(exit.cause)
    }
    return new CxlogPublisher(runtime, exit.value)
  }

  get clientId(): number {
    return this.publisher.clientId
  }

  /**
   * Resolves once the message is in a batch (at once unless the in-flight window is full);
   * with `{ acked: true }`, once it is acknowledged, with its offset in the total order
   * (rejects with `PublishAckTimeout` after `ackTimeoutMs`). `key` and `headers` travel with
   * it (strings as UTF-8); it is stamped with the time of this call.
   */
  publish(payload: Uint8Array | string, options?: MessageOptions & { readonly acked?: false }): Promise<void>
  publish(payload: Uint8Array | string, options: MessageOptions & { readonly acked: true }): Promise<PublishAck>
  publish(payload: Uint8Array | string, options?: MessageOptions & { readonly acked?: boolean }): Promise<void | PublishAck> {
    const bytes = typeof payload === "string" ? encoder.encode(payload) : payload
    const message = options?.key === undefined && options?.headers === undefined ? undefined : options
    if (options?.acked === true) return this.run(this.publisher.publishAcked(bytes, message))
    const taken = this.publisher.tryPublish(bytes, message)
    if (taken === true) return accepted
    if (taken !== false) return Promise.reject(taken)
    return this.run(this.publisher.publish(bytes, message))
  }

  /** Resolves when everything published so far is acknowledged; rejects with `PublishAckTimeout` after `timeoutMs`. */
  flush(timeoutMs = 30_000): Promise<void> {
    return this.run(this.publisher.flush(timeoutMs))
  }

  stats(): PublisherStats {
    return this.publisher.stats()
  }

  /** Seal-to-ACK latency per acknowledged batch, in µs. */
  ackLatencies(): Float64Array {
    return this.publisher.ackLatencies()
  }

  /** Closes every connection; unacknowledged batches are abandoned (flush first). */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    await this.runtime.dispose()
  }

  /** Runs an effect, rejecting with its typed error itself (not a FiberFailure wrapper). */
  private async run<A, E>(effect: Effect.Effect<A, E, Publisher>): Promise<A> {
    if (this.closed) throw new PublisherClosed()
    const exit = await this.runtime.runPromiseExit(effect)
    if (Exit.isSuccess(exit)) return exit.value
    throw Cause.squash(exit.cause)
  }
}
