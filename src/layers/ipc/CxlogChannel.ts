/**
 * A plain Promise facade over a channel, for applications that do not use Effect: a channel
 * over a `ManagedRuntime` that `close()` disposes, giving back every slot it held.
 *
 * ```ts
 * // `channelsLayer`: ChannelsLayers.layer with its region's layers provided (or ChannelsMemoryLayers.layerMemory())
 * const prices = await CxlogChannel.openWith(channelsLayer, "prices", Price, { ringBytes: 64 << 10 })
 * const subscription = await prices.subscribe()   // sees what is written from now on
 * await prices.publish({ symbol: "ACME", price: 10.5 })   // the first publish takes a writer slot
 * for await (const { value, writer } of subscription) console.log(writer, value)
 * // or, for latency: `await subscription.consume(({ value }) => ...)` until the subscription closes
 * await prices.close()
 * ```
 */
import { Cause, Effect, ExecutionStrategy, Exit, type Layer, ManagedRuntime, type Schema, Scope } from "effect"
import {
  type Channel,
  ChannelClosed,
  type ChannelMessage,
  type ChannelOptions,
  type ChannelPublisher,
  Channels,
  type ChannelShape,
  type ChannelSubscription,
  ChannelSubscriptionClosed
} from "../../services/ipc/Channels.js"

/** How long one wait of `next()` lasts before it is taken again: `next()` itself waits until a value or `close()`. */
const TAKE_SLICE_MS = 60_000
/** Most values one wait of `next()` takes from the subscription. */
const NEXT_BATCH = 256

type Runtime = ManagedRuntime.ManagedRuntime<Channels, unknown>

/** Runs `effect`, rejecting with its typed error itself (not wrapped), or the signal's reason once aborted. */
const run = async <A>(runtime: Runtime, effect: Effect.Effect<A, unknown, Channels>, signal?: AbortSignal) => {
  const exit = await runtime.runPromiseExit(effect, signal === undefined ? undefined : { signal })
  if (Exit.isSuccess(exit)) return exit.value
  throw Cause.squash(exit.cause)
}

/** One subscriber of a channel: a reader slot on every writer ring until `close()` (or its channel's). */
export class CxlogChannelSubscription<A> implements AsyncIterable<ChannelMessage<A>> {
  private closing: Promise<void> | undefined
  /** Ends a wait under way when the subscription closes. */
  private readonly stop = new AbortController()
  private waiting: Promise<unknown> | undefined
  /** Values a batch of `next()` took and has not handed out yet: every take hands them out first, so none is lost. */
  private held: Array<ChannelMessage<A>> = []
  private heldAt = 0

  /** @internal made by `CxlogChannel.subscribe` */
  constructor(
    private readonly runtime: Runtime,
    private readonly subscription: ChannelSubscription<A>,
    private readonly scope: Scope.CloseableScope,
    private readonly name: string,
    /** Its channel lets go of it: a channel subscribed to and closed again and again keeps none of them. */
    private readonly onClosed: () => void
  ) {}

  /**
   * Closed (by its `close()` or its channel's): a take is told so itself, as the subscription's
   * own take would be, and not run on a runtime its channel's close may have disposed.
   */
  private closed(): Promise<never> | undefined {
    return this.closing === undefined ? undefined : Promise.reject(new ChannelSubscriptionClosed({ name: this.name }))
  }

  /** The next value, rejecting with `ChannelTakeTimeout` after `timeoutMs` (or `InvalidChannelFrame`, `ChannelBroken`). */
  take(timeoutMs: number): Promise<ChannelMessage<A>> {
    if (this.heldAt < this.held.length) return Promise.resolve(this.held[this.heldAt++]!)
    return this.closed() ?? run(this.runtime, this.subscription.take(timeoutMs))
  }

  /**
   * Every value available now, `max` at most (waiting up to `timeoutMs` only while there is
   * none); rejects with `ChannelTakeTimeout`, or `InvalidChannelFrame` for a frame that does not
   * decode (the values before it come in the call before).
   */
  takeUpTo(max: number, timeoutMs: number): Promise<Array<ChannelMessage<A>>> {
    if (this.heldAt < this.held.length) {
      // As the subscription's own: room for none (a max below 1, or not a number) takes none, and keeps them held.
      if (!(max >= 1)) return Promise.resolve([])
      const end = Math.min(this.held.length, this.heldAt + Math.floor(max))
      const taken = this.held.slice(this.heldAt, end)
      this.heldAt = end
      return Promise.resolve(taken)
    }
    return this.closed() ?? run(this.runtime, this.subscription.takeUpTo(max, timeoutMs))
  }

  /**
   * The next value from any writer (each writer's in the order written); undefined once closed.
   * A frame that does not decode rejects this one call with `InvalidChannelFrame`: the next call
   * goes on with the frames after it.
   */
  async next(): Promise<ChannelMessage<A> | undefined> {
    while (this.closing === undefined) {
      if (this.heldAt < this.held.length) return this.held[this.heldAt++]!
      // A batch per call into the runtime: the values after the first are handed out from `held`.
      const waiting = this.runtime.runPromiseExit(this.subscription.takeUpTo(NEXT_BATCH, TAKE_SLICE_MS), {
        signal: this.stop.signal
      })
      this.waiting = waiting
      const exit = await waiting
      if (Exit.isSuccess(exit)) {
        this.held = exit.value
        this.heldAt = 1
        return exit.value[0]!
      }
      if (this.closing !== undefined) return undefined
      const error = Cause.squash(exit.cause)
      if ((error as { _tag?: string })._tag !== "ChannelTakeTimeout") throw error
    }
    return undefined
  }

  /**
   * Calls `handler` with every value as its ring's wake-up decodes it (the subscription's
   * `consume`: no Promise per value, the form for latency); values an iteration had not handed
   * out come first. Resolves once the subscription closes; rejects with `InvalidChannelFrame` at
   * a frame that does not decode, `ChannelBroken`, or what `handler` threw (that value counts as
   * taken; the frames after it wait for the next `consume`, `take` or iteration).
   */
  async consume(handler: (message: ChannelMessage<A>) => void): Promise<void> {
    while (this.heldAt < this.held.length) handler(this.held[this.heldAt++]!)
    if (this.closing !== undefined) return
    const consuming = this.runtime.runPromiseExit(this.subscription.consume(handler), { signal: this.stop.signal })
    this.waiting = consuming
    const exit = await consuming
    if (this.closing !== undefined || Exit.isSuccess(exit)) return
    const error = Cause.squash(exit.cause)
    if ((error as { _tag?: string })._tag !== "ChannelSubscriptionClosed") throw error
  }

  async *[Symbol.asyncIterator](): AsyncIterator<ChannelMessage<A>> {
    for (;;) {
      const message = await this.next()
      if (message === undefined) return
      yield message
    }
  }

  /** Gives its reader slots back: writers no longer wait for it; what it had not taken is dropped for it alone. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.stop.abort()
      await this.waiting
      await Effect.runPromise(Scope.close(this.scope, Exit.void))
      this.held = []
      this.onClosed()
    })()
    return this.closing
  }
}

export class CxlogChannel<A> {
  private closing: Promise<void> | undefined
  private publisher: Promise<ChannelPublisher<A>> | undefined
  private readonly subscriptions = new Set<CxlogChannelSubscription<A>>()
  /** Ends the calls under way (a publish waiting for room) when the channel closes, before its memory goes. */
  private readonly stop = new AbortController()
  private readonly calls = new Set<Promise<unknown>>()

  private constructor(
    private readonly runtime: Runtime,
    private readonly scope: Scope.CloseableScope,
    private readonly channel: Channel<A>
  ) {}

  /**
   * Opens the channel `name` through the Channels a layer makes (`ChannelsLayers.layer` over a
   * region, or `ChannelsMemoryLayers.layerMemory()` in an app's tests), creating it with
   * `options`' shape if there is none. Rejects with the typed error (`ChannelUnavailable`,
   * `InvalidChannel`, `HeadUnavailable` when the head that would create it is gone).
   */
  static async openWith<A, I, E>(
    layer: Layer.Layer<Channels, E>,
    name: string,
    schema: Schema.Schema<A, I>,
    options: ChannelOptions = {}
  ): Promise<CxlogChannel<A>> {
    const runtime: Runtime = ManagedRuntime.make(layer)
    const scope = Effect.runSync(Scope.make())
    try {
      const channel = await run(
        runtime,
        Effect.flatMap(Channels, (c) => c.open(name, schema, options)).pipe(Scope.extend(scope))
      )
      return new CxlogChannel(runtime, scope, channel)
    } catch (error) {
      await Effect.runPromise(Scope.close(scope, Exit.void))
      await runtime.dispose()
      throw error
    }
  }

  get name(): string {
    return this.channel.name
  }

  /** The shape it was created with (a later open finds it as it is). */
  get shape(): ChannelShape {
    return this.channel.shape
  }

  /**
   * Runs `effect` as one of the channel's calls: `ChannelClosed` once the channel is closed, and
   * when `close()` ends it under way (its runtime is about to go, and the rings' memory with it).
   */
  private async call<T>(effect: Effect.Effect<T, unknown, Channels>): Promise<T> {
    if (this.closing !== undefined) throw new ChannelClosed({ name: this.name })
    const running = this.runtime.runPromiseExit(effect, { signal: this.stop.signal })
    this.calls.add(running)
    try {
      const exit = await running
      if (Exit.isSuccess(exit)) return exit.value
      if (this.closing !== undefined && Cause.isInterruptedOnly(exit.cause)) {
        throw new ChannelClosed({ name: this.name })
      }
      throw Cause.squash(exit.cause)
    } finally {
      this.calls.delete(running)
    }
  }

  /** The writer slot this channel writes through, taken by the first publish and held until `close()`. */
  private writer(): Promise<ChannelPublisher<A>> {
    if (this.closing !== undefined) return Promise.reject(new ChannelClosed({ name: this.name }))
    const taking = this.publisher ?? this.call(this.channel.publisher.pipe(Scope.extend(this.scope)))
    // A failed take (`ChannelWritersBusy`) is tried again by the next publish.
    this.publisher = taking.catch((error) => {
      this.publisher = undefined
      throw error
    })
    return this.publisher
  }

  /**
   * Encodes and writes one value. Rejects with `ChannelEncodeError` (nothing written),
   * `ChannelFull` after `publishTimeoutMs` without room, `ChannelWritersBusy` when every writer
   * slot is held by a live process, `ChannelRemoved` when the channel was removed before this
   * object's first publish, `ChannelClosed` after `close()` (or when it comes while this waits for
   * room: nothing written).
   */
  async publish(value: A): Promise<void> {
    const publisher = await this.writer()
    await this.call(publisher.publish(value))
  }

  /** Encodes and writes many values, committed together. */
  async publishAll(values: Iterable<A>): Promise<void> {
    const publisher = await this.writer()
    await this.call(publisher.publishAll(values))
  }

  /** A new subscriber: a reader slot on every writer ring, seeing what is written from now on (`ChannelReadersBusy` when none is free). */
  async subscribe(): Promise<CxlogChannelSubscription<A>> {
    if (this.closing !== undefined) throw new ChannelClosed({ name: this.name })
    const scope = await Effect.runPromise(Scope.fork(this.scope, ExecutionStrategy.sequential))
    try {
      const subscription = await this.call(this.channel.subscribe.pipe(Scope.extend(scope)))
      const facade: CxlogChannelSubscription<A> = new CxlogChannelSubscription(
        this.runtime,
        subscription,
        scope,
        this.name,
        () => this.subscriptions.delete(facade)
      )
      this.subscriptions.add(facade)
      return facade
    } catch (error) {
      await Effect.runPromise(Scope.close(scope, Exit.void))
      throw error
    }
  }

  /**
   * Closes its subscriptions and gives back every slot it held: a publish waiting for room then
   * rejects with `ChannelClosed` (nothing written), as a later publish or subscribe does.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.stop.abort()
      await Promise.all(this.calls)
      await Promise.all([...this.subscriptions].map((s) => s.close()))
      await this.publisher?.catch(() => undefined)
      await Effect.runPromise(Scope.close(this.scope, Exit.void))
      await this.runtime.dispose()
    })()
    return this.closing
  }
}
