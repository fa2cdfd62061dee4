/**
 * A plain Promise facade over the remote Subscriber, for applications that do not use Effect:
 * a subscription over a `ManagedRuntime` that `close()` disposes.
 *
 * ```ts
 * const subscriber = await CxlogSubscriber.open({ brokers: [{ host: "127.0.0.1", port: 7400 }], topic: "orders", consumer: "billing" })
 * for await (const message of subscriber) console.log(message.offset, message.timestamp, message.key, message.headers, message.text())
 * ```
 *
 * A message (and a batch) is a view of the received bytes, valid until the next iteration;
 * `copy()` keeps one (a batch's, or a message's: its key, headers and value included). With a consumer name, the batches
 * iterated past are committed every 100 ms by default (`autoCommit`), and `commit()` commits
 * up to the last message iterated now; what was read after the last commit comes again to the next member.
 */
import { Cause, Effect, Exit, type Layer, ManagedRuntime, Scope } from "effect"
import type {
  MessageHeader,
  SubscribeOptions,
  SubscriberBatch,
  SubscriberMessage,
  Subscription
} from "../../services/net/Subscriber.js"
import { Subscriber } from "../../services/net/Subscriber.js"
import { layerRemote, type RemoteSubscriberOptions } from "./SubscriberRemote.js"

const decoder = new TextDecoder()

/** What to read, and how: the topic, where to start, as which consumer. */
export interface CxlogSubscribeOptions extends SubscribeOptions {
  readonly topic: string
  /**
   * Aborting it closes the subscriber: iteration ends, a pending read rejects with an AbortError.
   * Aborted while `open` connects, `open` rejects with the signal's reason and keeps nothing.
   */
  readonly signal?: AbortSignal
}

export interface CxlogSubscriberOptions extends RemoteSubscriberOptions, CxlogSubscribeOptions {}

/** A message as the facade hands it out: `text()` decodes the payload (the value) as UTF-8. */
export interface CxlogMessage extends SubscriberMessage {
  readonly text: () => string
}

/** The subscription's reused message, with `text()`; its fields are the current message's. */
class FacadeMessage implements CxlogMessage {
  current!: SubscriberMessage
  get offset(): number {
    return this.current.offset
  }
  get timestamp(): number {
    return this.current.timestamp
  }
  get flags(): number {
    return this.current.flags
  }
  get key(): Uint8Array | undefined {
    return this.current.key
  }
  get headers(): ReadonlyArray<MessageHeader> | undefined {
    return this.current.headers
  }
  get payload(): Uint8Array {
    return this.current.payload
  }
  get bytes(): Uint8Array {
    return this.current.bytes
  }
  get valueOffset(): number {
    return this.current.valueOffset
  }
  get valueLength(): number {
    return this.current.valueLength
  }
  text(): string {
    return decoder.decode(this.current.payload)
  }
  copy(): SubscriberMessage {
    return this.current.copy()
  }
}

export class CxlogSubscriber implements AsyncIterable<CxlogMessage> {
  private readonly stop = new AbortController()
  private closing: Promise<void> | undefined
  /** The offset after the last message the iterator handed out (undefined: whole batches so far). */
  private iterated: number | undefined
  private readonly onAbort = () => void this.close()

  private constructor(
    private readonly runtime: ManagedRuntime.ManagedRuntime<Subscriber, unknown>,
    private readonly scope: Scope.CloseableScope,
    private readonly subscription: Subscription,
    private readonly pull: Effect.Effect<SubscriberBatch, unknown>,
    private readonly signal: AbortSignal | undefined
  ) {
    signal?.addEventListener("abort", this.onAbort, { once: true })
  }

  /** Connects to the first broker that takes the subscription; rejects with its typed error (`TopicNotFound`, `LogOutOfRange`, `ConsumerBusy`, …). */
  static async open(options: CxlogSubscriberOptions): Promise<CxlogSubscriber> {
    options.signal?.throwIfAborted()
    return CxlogSubscriber.openWith(layerRemote(options), options)
  }

  /**
   * Subscribes through the Subscriber a layer makes: a local one on the region's host
   * (`Roles.localSubscriber`), or the in-memory cluster of `cxlog/testing` in an app's tests.
   * Rejects with the layer's error or the subscription's.
   */
  static async openWith<E>(
    layer: Layer.Layer<Subscriber, E>,
    options: CxlogSubscribeOptions
  ): Promise<CxlogSubscriber> {
    const signal = options.signal
    signal?.throwIfAborted()
    const runtime = ManagedRuntime.make(layer)
    // Made out here so that whatever the subscription acquired is released even when an abort interrupts open midway.
    const scope = Effect.runSync(Scope.make())
    const exit = await runtime.runPromiseExit(
      Effect.gen(function*() {
        const subscriber = yield* Subscriber
        return yield* subscriber.subscribe(options.topic, {
          ...(options.from === undefined ? {} : { from: options.from }),
          ...(options.fromTime === undefined ? {} : { fromTime: options.fromTime }),
          ...(options.consumer === undefined ? {} : { consumer: options.consumer }),
          ...(options.autoCommit === undefined ? {} : { autoCommit: options.autoCommit })
        })
      }).pipe(Scope.extend(scope)),
      signal === undefined ? undefined : { signal }
    )
    if (Exit.isFailure(exit) || signal?.aborted === true) {
      await Effect.runPromise(Scope.close(scope, Exit.void))
      await runtime.dispose()
      throw signal?.aborted === true || Exit.isSuccess(exit) ? signal?.reason : Cause.squash(exit.cause)
    }
    const subscription = exit.value
    // The subscription's pull itself, not a pull of its Stream: no Stream step per batch.
    return new CxlogSubscriber(runtime, scope, subscription, subscription.pull, signal)
  }

  get topic(): string {
    return this.subscription.topic
  }

  /** Offset of the next message. */
  get position(): number {
    return this.subscription.position()
  }

  /** The next batch (a view valid until the next read); rejects with an AbortError once closed or aborted. */
  nextBatch(): Promise<SubscriberBatch> {
    return this.run(this.pull)
  }

  /**
   * Messages one by one, in order, until `close()` or the signal; the message object is reused.
   * Leaving the loop (`break`, `return`, a throw) closes the subscriber, as `close()` does: a
   * consumer's member leaves, so commit inside the loop what must stay committed.
   */
  async *[Symbol.asyncIterator](): AsyncIterator<CxlogMessage> {
    const message = new FacadeMessage()
    try {
      while (!this.stop.signal.aborted) {
        let batch: SubscriberBatch
        try {
          batch = await this.nextBatch()
        } catch (error) {
          if (this.stop.signal.aborted) return
          throw error
        }
        for (const m of batch) {
          message.current = m
          this.iterated = m.offset + 1
          yield message
          if (this.stop.signal.aborted) return
        }
      }
    } finally {
      await this.close()
    }
  }

  /** Calls `handler` with each batch, awaiting it before the next, until `close()`, the signal, or a rejection. */
  async eachBatch(
    handler: (batch: SubscriberBatch) => void | Promise<void>,
    options: { readonly signal?: AbortSignal } = {}
  ): Promise<void> {
    const until = options.signal
    const stopped = () => this.stop.signal.aborted || until?.aborted === true
    while (!stopped()) {
      let batch: SubscriberBatch
      try {
        batch = await this.run(this.pull, until)
      } catch (error) {
        if (stopped()) return
        throw error
      }
      this.iterated = undefined
      await handler(batch)
    }
  }

  /** Commits `offset` as the consumer's committed offset; default: up to the last message iterated (or batch handed to `eachBatch`). */
  commit(offset?: number): Promise<void> {
    return this.run(this.subscription.commit(offset ?? this.iterated))
  }

  /** Messages published past the position. */
  lag(): Promise<number> {
    return this.run(this.subscription.lag)
  }

  /** Ends the subscription (a consumer's member leaves: what it did not commit goes to the next one). */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.signal?.removeEventListener("abort", this.onAbort)
      this.stop.abort()
      await Effect.runPromise(Scope.close(this.scope, Exit.void))
      await this.runtime.dispose()
    })()
    return this.closing
  }

  /** Runs `effect` until it ends or a signal fires; rejects with its typed error itself. */
  private async run<A, E>(effect: Effect.Effect<A, E, Subscriber>, signal?: AbortSignal): Promise<A> {
    // Closed: its runtime is disposed and would never answer.
    this.stop.signal.throwIfAborted()
    const signals = signal === undefined ? this.stop.signal : AbortSignal.any([this.stop.signal, signal])
    const exit = await this.runtime.runPromiseExit(effect, { signal: signals })
    if (Exit.isSuccess(exit)) return exit.value
    throw Cause.squash(exit.cause)
  }
}
