/**
 * A plain Promise facade over the remote Subscriber, for applications that do not use Effect:
 * a subscription over a `ManagedRuntime` that `close()` disposes.
 *
 * ```ts
 * const subscriber = await CxlogSubscriber.open({ brokers: [{ host: "127.0.0.1", port: 7400 }], topic: "orders", consumer: "billing" })
 * for await (const message of subscriber) console.log(message.offset, message.timestamp, message.key, message.headers, message.text())
 * // Several topics, or every topic a pattern matches, over one connection: each message says its topic.
 * const all = await CxlogSubscriber.open({ brokers, topics: ["orders.*", "audit"] })
 * for await (const message of all) console.log(message.topic, message.offset, message.text())
 * ```
 *
 * A message (and a batch) is a view of the received bytes, valid until the next iteration;
 * `copy()` keeps one (a batch's, or a message's: its key, headers and value included). With a consumer name, the batches
 * iterated past are committed every 100 ms by default (`autoCommit`), and `commit()` commits
 * up to the last message iterated now; what was read after the last commit comes again to the next member.
 */
import { Cause, Effect, Exit, type Layer, ManagedRuntime, Scope } from "effect"
import { type NamesOf, signalProblem, unknownOptionsReason } from "../../OptionNames.js"
import { InvalidTopicPattern } from "../../services/log/TopicPattern.js"
import type {
  MessageHeader,
  SubscribeOptions,
  SubscriberBatch,
  SubscriberMessage,
  Subscription,
  TopicsSubscription
} from "../../services/net/Subscriber.js"
import { CommitRejected, headerText, InvalidSubscribeOptions, Subscriber } from "../../services/net/Subscriber.js"
import { layerRemote, type RemoteSubscriberOptions } from "./SubscriberRemote.js"

const decoder = new TextDecoder("utf-8", { ignoreBOM: true })

/** What to read, and how: the topic (or topics and patterns), where to start, as which consumer. */
export interface CxlogSubscribeOptions extends Omit<SubscribeOptions, "fromTime"> {
  /** In place of `from`: the first message stamped at or after this time (a Date, or ms since the epoch). */
  readonly fromTime?: Date | number
  /** One topic to read. */
  readonly topic?: string
  /**
   * In place of `topic`: several topics and patterns (`orders.*`: `*` one dot-separated token, `>`
   * the rest), read over one subscription; each message says its `topic`.
   */
  readonly topics?: ReadonlyArray<string>
  /**
   * Aborting it closes the subscriber: iteration ends, a pending `nextBatch()` rejects with an AbortError.
   * Aborted while `open` connects, `open` rejects with the signal's reason and keeps nothing.
   */
  readonly signal?: AbortSignal
}

export interface CxlogSubscriberOptions extends RemoteSubscriberOptions, CxlogSubscribeOptions {}

/** What `openWith` takes: any other name is a caller's mistake (`fromtime`), refused rather than left out. */
const SUBSCRIBE_NAMES: NamesOf<CxlogSubscribeOptions> = {
  topic: true,
  topics: true,
  from: true,
  fromTime: true,
  consumer: true,
  autoCommit: true,
  signal: true
}

/** What `open` takes: the subscribe's and the connection's. */
const SUBSCRIBER_NAMES: NamesOf<CxlogSubscriberOptions> = {
  ...SUBSCRIBE_NAMES,
  brokers: true,
  credit: true,
  connectTimeoutMs: true,
  connectTimeout: true,
  bufferBytes: true,
  maxBatchBytes: true,
  credentials: true,
  region: true,
  insecure: true,
  tls: true
}

/** Rejects options naming what `names` does not have (or a signal that is none), before anything connects. */
const checkNames = (options: unknown, names: Readonly<Record<string, true>>) => {
  const reason = unknownOptionsReason(options, names, "a subscriber") ?? signalProblem(options as object)
  if (reason !== undefined) throw new InvalidSubscribeOptions({ reason })
}

/** A message as the facade hands it out: `text()` decodes the payload (the value) as UTF-8, `header(name)` a header's value. */
export interface CxlogMessage extends SubscriberMessage {
  readonly text: () => string
  readonly header: (name: string) => string | undefined
}

/** The subscription's reused message, with `text()`; its fields are the current message's. */
class FacadeMessage implements CxlogMessage {
  current!: SubscriberMessage
  get topic(): string {
    return this.current.topic
  }
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
  header(name: string): string | undefined {
    return headerText(this.current.headers, name)
  }
  copy(): SubscriberMessage {
    return this.current.copy()
  }
}

/** The subscription a facade reads: of one topic, or of several. */
type Reading =
  | { readonly several: false; readonly subscription: Subscription }
  | { readonly several: true; readonly subscription: TopicsSubscription }

export class CxlogSubscriber implements AsyncIterable<CxlogMessage> {
  private readonly stop = new AbortController()
  private closing: Promise<void> | undefined
  /** Per topic, the offset after the last message the iterator handed out (none: whole batches so far). */
  private readonly iterated = new Map<string, number>()
  private readonly onAbort = () => void this.close()

  private constructor(
    private readonly runtime: ManagedRuntime.ManagedRuntime<Subscriber, unknown>,
    private readonly scope: Scope.CloseableScope,
    private readonly reading: Reading,
    private readonly pull: Effect.Effect<SubscriberBatch, unknown>,
    private readonly signal: AbortSignal | undefined
  ) {
    signal?.addEventListener("abort", this.onAbort, { once: true })
  }

  /** Connects to the first broker that takes the subscription; rejects with its typed error (`TopicNotFound`, `LogOutOfRange`, `ConsumerBusy`, …). */
  static async open(options: CxlogSubscriberOptions): Promise<CxlogSubscriber> {
    checkNames(options, SUBSCRIBER_NAMES)
    options.signal?.throwIfAborted()
    return CxlogSubscriber.subscribeWith(layerRemote(options), options)
  }

  /**
   * Subscribes through the Subscriber a layer makes: a local one on the region's host
   * (`SubscriberLayers.layer` over `Roles.reader`, docs/clients.md "Reading"), or the in-memory
   * cluster of `cxlog/testing` in an app's tests.
   * Rejects with the layer's error or the subscription's.
   */
  static async openWith<E>(
    layer: Layer.Layer<Subscriber, E>,
    options: CxlogSubscribeOptions
  ): Promise<CxlogSubscriber> {
    checkNames(options, SUBSCRIBE_NAMES)
    options.signal?.throwIfAborted()
    return CxlogSubscriber.subscribeWith(layer, options)
  }

  /** `openWith` once the options' names are checked (`open` checks the connection's too). */
  private static async subscribeWith<E>(
    layer: Layer.Layer<Subscriber, E>,
    options: CxlogSubscribeOptions
  ): Promise<CxlogSubscriber> {
    // Looked at by the caller (open, openWith) before the names: nothing ran since.
    const signal = options.signal
    const runtime = ManagedRuntime.make(layer)
    // Made out here so that whatever the subscription acquired is released even when an abort interrupts open midway.
    const scope = Effect.runSync(Scope.make())
    const exit = await runtime.runPromiseExit(
      Effect.gen(function*() {
        const subscriber = yield* Subscriber
        const subscribeOptions: SubscribeOptions = {
          ...(options.from === undefined ? {} : { from: options.from }),
          ...(options.fromTime === undefined
            ? {}
            : { fromTime: options.fromTime instanceof Date ? options.fromTime.getTime() : options.fromTime }),
          ...(options.consumer === undefined ? {} : { consumer: options.consumer }),
          ...(options.autoCommit === undefined ? {} : { autoCommit: options.autoCommit })
        }
        if ((options.topic === undefined) === (options.topics === undefined)) {
          return yield* new InvalidTopicPattern({
            pattern: options.topic ?? "",
            reason: "give one of topic (one topic) and topics (several topics and patterns)"
          })
        }
        return options.topics === undefined
          ? { several: false as const, subscription: yield* subscriber.subscribe(options.topic!, subscribeOptions) }
          : {
            several: true as const,
            subscription: yield* subscriber.subscribeTopics(options.topics, subscribeOptions)
          }
      }).pipe(Scope.extend(scope)),
      signal === undefined ? undefined : { signal }
    )
    if (Exit.isFailure(exit) || signal?.aborted === true) {
      await Effect.runPromise(Scope.close(scope, Exit.void))
      await runtime.dispose()
      throw signal?.aborted === true || Exit.isSuccess(exit) ? signal?.reason : Cause.squash(exit.cause)
    }
    const reading = exit.value
    // The subscription's pull itself, not a pull of its Stream: no Stream step per batch.
    return new CxlogSubscriber(runtime, scope, reading, reading.subscription.pull, signal)
  }

  /** The topic it reads (undefined when it reads several: `topics`). */
  get topic(): string | undefined {
    return this.reading.several ? undefined : this.reading.subscription.topic
  }

  /** The topics it reads now (those named, and those its patterns matched so far). */
  get topics(): ReadonlyArray<string> {
    return this.reading.several ? this.reading.subscription.topics() : [this.reading.subscription.topic]
  }

  /** Offset of the next message (of its one topic; with several, of the first: `positionOf`). */
  get position(): number {
    return this.reading.several
      ? this.reading.subscription.position(this.topics[0] ?? "") ?? 0
      : this.reading.subscription.position()
  }

  /** Offset of the next message of `topic` (undefined: it does not read that topic). */
  positionOf(topic: string): number | undefined {
    return this.reading.several
      ? this.reading.subscription.position(topic)
      : topic === this.reading.subscription.topic
      ? this.reading.subscription.position()
      : undefined
  }

  /**
   * The next batch (a view valid until the next read); rejects with an AbortError once closed or
   * aborted. A subscription that failed is over: its rejection closes the subscriber (its
   * connection goes now, not when the caller remembers `close()`).
   */
  async nextBatch(): Promise<SubscriberBatch> {
    try {
      return await this.run(this.pull)
    } catch (error) {
      if (!this.stop.signal.aborted) await this.close()
      throw error
    }
  }

  /**
   * Messages one by one, in order, until `close()` or the signal; the message object is reused.
   * A failed subscription (`TopicDeleted`, `LogOutOfRange`, …) ends the loop with its typed error.
   * Leaving the loop (`break`, `return`, a throw) closes the subscriber, as `close()` does: a
   * consumer's member leaves, so commit inside the loop what must stay committed.
   */
  async *[Symbol.asyncIterator](): AsyncIterator<CxlogMessage> {
    const message = new FacadeMessage()
    try {
      while (!this.stop.signal.aborted) {
        let batch: SubscriberBatch
        try {
          // run, not nextBatch: nextBatch closes on a failure, and that close would read here as the caller's.
          batch = await this.run(this.pull)
        } catch (error) {
          // Closed or aborted by the caller: the loop ends. A failed subscription's error leaves
          // the loop (the finally closes the subscriber).
          if (this.stop.signal.aborted) return
          throw error
        }
        for (const m of batch) {
          message.current = m
          this.iterated.set(m.topic, m.offset + 1)
          yield message
          if (this.stop.signal.aborted) return
        }
      }
    } finally {
      await this.close()
    }
  }

  /**
   * Calls `handler` with each batch, awaiting it before the next, until `close()`, the signal, or a
   * rejection: the handler's, or the subscription's typed error (which closes the subscriber).
   */
  async eachBatch(
    handler: (batch: SubscriberBatch) => void | Promise<void>,
    options: { readonly signal?: AbortSignal } = {}
  ): Promise<void> {
    // Called, what is no function would throw with a batch already taken from the subscription.
    if (typeof handler !== "function") {
      throw new InvalidSubscribeOptions({ reason: `eachBatch takes a handler function, not ${String(handler)}` })
    }
    const until = options.signal
    const stopped = () => this.stop.signal.aborted || until?.aborted === true
    while (!stopped()) {
      let batch: SubscriberBatch
      try {
        batch = await this.run(this.pull, until)
      } catch (error) {
        if (stopped()) return
        // As nextBatch: a failed subscription is over, so its connection goes now.
        await this.close()
        throw error
      }
      this.iterated.clear()
      await handler(batch)
    }
  }

  /**
   * Commits `offset` as the consumer's committed offset (with several topics, `{ topic, offset }`);
   * default: up to the last message iterated (or batch handed to `eachBatch`), of every topic.
   */
  commit(offset?: number | { readonly topic: string; readonly offset?: number }): Promise<void> {
    const reading = this.reading
    // A JavaScript caller's "110" was no number, so the commit went to the default in silence.
    const at: unknown = typeof offset === "object" && offset !== null ? offset.offset : offset
    if (offset === null || !(at === undefined || typeof at === "number")) {
      return Promise.reject(
        new CommitRejected({
          topic: this.topics.join(", "),
          reason: `an offset is a number (or { topic, offset }), not ${JSON.stringify(offset === null ? null : at)}`
        })
      )
    }
    if (!reading.several) {
      const topic = reading.subscription.topic
      if (typeof offset === "object" && offset.topic !== topic) {
        // Committed to this one topic instead, it would move the consumer of a topic the caller did not name.
        return Promise.reject(
          new CommitRejected({ topic: String(offset.topic), reason: `this subscriber reads topic ${topic} alone` })
        )
      }
      const at = typeof offset === "number" ? offset : offset?.offset
      return this.run(reading.subscription.commit(at ?? this.iterated.get(topic)))
    }
    if (typeof offset === "object") {
      const at = offset.offset ?? this.iterated.get(offset.topic)
      return this.run(reading.subscription.commit({ topic: offset.topic, ...(at === undefined ? {} : { offset: at }) }))
    }
    if (typeof offset === "number") {
      return Promise.reject(
        new CommitRejected({
          topic: this.topics.join(", "),
          reason: "with several topics, name the topic: { topic, offset }"
        })
      )
    }
    const subscription = reading.subscription
    const iterated = [...this.iterated]
    return this.run(
      iterated.length === 0
        ? subscription.commit()
        : Effect.forEach(iterated, ([topic, at]) => subscription.commit({ topic, offset: at }), { discard: true })
    )
  }

  /** Messages published past the position (of every topic it reads). */
  lag(): Promise<number> {
    return this.run(this.reading.subscription.lag)
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
