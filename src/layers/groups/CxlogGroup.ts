/**
 * A plain Promise facade over a consumer group's member, for applications that do not use
 * Effect: a member over a `ManagedRuntime` that `close()` disposes (leaving the group: what it
 * holds goes to the others at once).
 *
 * ```ts
 * const group = await CxlogGroup.openWith(Roles.groupMember({ name: "cxlog" }), { group: "mailer" })
 * for await (const job of group) {
 *   await send(job.text())
 *   await job.ack()
 * }
 * // Or a handler: acked when it resolves, nak'd (delivered again) when it throws.
 * await group.process(async (job) => send(job.text()))
 * // From anywhere, through brokers (which hold the member for this process):
 * const remote = await CxlogGroup.open({ brokers: [{ host: "10.0.0.5", port: 7400 }], group: "mailer" })
 * ```
 */
import { Cause, Chunk, Effect, Exit, type Layer, ManagedRuntime, Option, Scope, Stream } from "effect"
import { type NamesOf, signalProblem, unknownOptionsReason } from "../../OptionNames.js"
import {
  ConsumerGroups,
  type Delivery,
  type GroupSpec,
  InvalidGroupSpec,
  InvalidNakDelay,
  type JoinOptions,
  nakDelayProblem
} from "../../services/groups/ConsumerGroups.js"
import { headerText } from "../../services/net/Subscriber.js"
import { REMOTE_LINK_OPTION_NAMES, remoteLinkProblem } from "../net/RemoteLink.js"
import { layerRemote, type RemoteGroupsOptions } from "./ConsumerGroupsRemote.js"
import { giveBackUnseen, LocalDelivery } from "./GroupDelivery.js"
import { groupToJoin } from "./GroupSpecs.js"

const decoder = new TextDecoder("utf-8", { ignoreBOM: true })

/** What a handler threw, as a dead letter's reason says it. */
const thrown = (error: unknown): string => (error instanceof Error ? error.message : String(error))

export interface CxlogGroupOptions extends JoinOptions {
  readonly group: string
  /** Creates the group with this spec when it does not exist yet. */
  readonly create?: Omit<GroupSpec, "name">
  /** Aborting it closes the member: iteration ends, and a pending `next()` resolves undefined. */
  readonly signal?: AbortSignal
}

/** What `openWith` takes: any other name is a caller's mistake (`maxInflight`), refused rather than left out. */
const MEMBER_NAMES: NamesOf<CxlogGroupOptions> = { group: true, create: true, signal: true, maxInFlight: true }

/** What `open` takes: the member's and the connection's. */
const REMOTE_MEMBER_NAMES: NamesOf<CxlogGroupOptions & RemoteGroupsOptions> = {
  ...MEMBER_NAMES,
  ...REMOTE_LINK_OPTION_NAMES
}

/** Rejects options naming what `names` does not have (or a signal that is none), before anything connects. */
const checkNames = (options: CxlogGroupOptions, names: Readonly<Record<string, true>>) => {
  const reason = unknownOptionsReason(options, names, "a member") ?? signalProblem(options)
  if (reason !== undefined) throw new InvalidGroupSpec({ group: String(options?.group), reason })
}

/** A message handed to this member: settle it once with `ack`, `nak` or `term`. */
export interface CxlogJob {
  readonly group: string
  readonly topic: string
  readonly offset: number
  readonly timestamp: number
  readonly key: Uint8Array | undefined
  readonly headers: Delivery["headers"]
  readonly value: Uint8Array
  readonly deliveryCount: number
  /** The value as UTF-8. */
  readonly text: () => string
  /** The value of the first header named `name`, as UTF-8; undefined when the message has none of that name. */
  readonly header: (name: string) => string | undefined
  /** Done (false: it was no longer this member's, held past ackWait and taken over). */
  readonly ack: () => Promise<boolean>
  /** Deliver it again after `delayMs` (to the dead letters past `maxDeliver`); an impossible delay rejects with InvalidNakDelay, nothing settled. */
  readonly nak: (delayMs?: number) => Promise<boolean>
  /** Never again: to the dead letters with `reason` (an Error: its message, as `process` says what a handler threw). */
  readonly term: (reason?: string) => Promise<boolean>
  /** Still working: its ackWait starts again. */
  readonly inProgress: () => Promise<boolean>
}

export interface ProcessOptions {
  /** How long a job whose handler threw waits before it is delivered again (default 0; up to MAX_NAK_DELAY_MS, else `process` rejects with InvalidNakDelay at once). */
  readonly nakDelayMs?: number
  /**
   * Handlers running at once (default 1; Infinity: every job the member holds). In a byKey group
   * a key's jobs still run one after another, in offset order; jobs of other keys run beside
   * them. Past the member's `maxInFlight` it has no more jobs to give.
   */
  readonly concurrency?: number
  /** Stops taking jobs once aborted (a wait for the next one ends too); `process` resolves once the jobs it started are settled. */
  readonly signal?: AbortSignal
}

/**
 * The jobs this member took and has not handed to the caller yet. Their ackWait runs from when
 * the member took them, all at once, so a loop working through them one at a time would leave
 * the last ones in hand past their deadline, for another member to take over and run again.
 * While the caller keeps asking for jobs (once within an ackWait), their deadlines are renewed
 * every third of an ackWait; a caller that stops asking lets them go to the others.
 */
class JobsInHand {
  readonly deliveries: Array<Delivery> = []
  private askedAt = performance.now()

  constructor(private readonly ackWaitMs: number) {}

  asked(): void {
    this.askedAt = performance.now()
  }

  /** Renews the waiting jobs' deadlines for as long as the member lives (forked in its scope). */
  get keepingDeadlines(): Effect.Effect<never> {
    const renewal = Effect.suspend(() =>
      performance.now() - this.askedAt > this.ackWaitMs
        ? Effect.void
        : Effect.forEach(this.deliveries.slice(), (d) => d.inProgress, { discard: true })
    )
    // A tick under 10 ms would spin for an ackWait too short to wait in hand anyway.
    return Effect.forever(Effect.delay(renewal, Math.max(10, this.ackWaitMs / 3)))
  }
}

const ABORTED = Symbol("aborted")

/** What `promise` gives, or ABORTED once `signal` aborts first. */
const unlessAborted = <A>(promise: Promise<A>, signal: AbortSignal): Promise<A | typeof ABORTED> => {
  if (signal.aborted) return Promise.resolve(ABORTED)
  return new Promise((resolve) => {
    const onAbort = () => resolve(ABORTED)
    signal.addEventListener("abort", onAbort, { once: true })
    void promise.then((value) => {
      signal.removeEventListener("abort", onAbort)
      resolve(value)
    })
  })
}

/** Runs each key's work after the work of the same key before it; work without a key at once. */
class KeyTurns {
  private readonly last = new Map<string, Promise<void>>()

  after(key: Uint8Array | undefined, work: () => Promise<void>): Promise<void> {
    if (key === undefined) return work()
    // latin1: one character per byte, so two keys are one string only if their bytes are equal.
    const name = Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString("latin1")
    const previous = this.last.get(name)
    const mine = previous === undefined ? work() : previous.then(work, work)
    this.last.set(name, mine)
    const over = () => {
      if (this.last.get(name) === mine) this.last.delete(name)
    }
    // Handled here as well as by the caller: a failed turn rejects what the caller awaits, once.
    mine.then(over, over)
    return mine
  }
}

export class CxlogGroup implements AsyncIterable<CxlogJob> {
  private closing: Promise<void> | undefined
  /** Ends a pull under way when the member closes (or the caller's signal aborts). */
  private readonly stop = new AbortController()
  /** The pull under way, which `close` waits for before it unmaps anything. */
  private pulling: Promise<unknown> | undefined
  /** The pull under way with what it brings put in hand: the one every caller of `take` waits on. */
  private taking: ReturnType<CxlogGroup["pullInto"]> | undefined
  private readonly onAbort = () => void this.close()

  private constructor(
    /** The group this member joined. */
    readonly group: string,
    /** Its jobs of one key come in offset order, and `process` keeps them so. */
    private readonly byKey: boolean,
    /** Deliveries a job gets before the dead letters (0: no limit): `process` says why its last one failed. */
    private readonly maxDeliver: number,
    private readonly runtime: ManagedRuntime.ManagedRuntime<ConsumerGroups, unknown>,
    private readonly scope: Scope.CloseableScope,
    /** The next deliveries; undefined when the member's stream ended. */
    private readonly pull: Effect.Effect<Chunk.Chunk<Delivery> | undefined, unknown>,
    private readonly inHand: JobsInHand,
    private readonly signal: AbortSignal | undefined
  ) {
    signal?.addEventListener("abort", this.onAbort, { once: true })
  }

  /**
   * Joins the group through the ConsumerGroups a layer makes: over the region on its host
   * (`Roles.groupMember`), or the fake in an app's tests. Rejects with the typed error
   * (`GroupNotFound`, `GroupMembersFull`, …).
   */
  static async openWith<E>(layer: Layer.Layer<ConsumerGroups, E>, options: CxlogGroupOptions): Promise<CxlogGroup> {
    checkNames(options, MEMBER_NAMES)
    options.signal?.throwIfAborted()
    return CxlogGroup.joinWith(layer, options)
  }

  /** `openWith` once the options' names are checked (`open` checks the connection's too). */
  private static async joinWith<E>(
    layer: Layer.Layer<ConsumerGroups, E>,
    options: CxlogGroupOptions
  ): Promise<CxlogGroup> {
    // Looked at by the caller (open, openWith) before the names: nothing ran since.
    const signal = options.signal
    const runtime = ManagedRuntime.make(layer)
    const scope = Effect.runSync(Scope.make())
    const exit = await runtime.runPromiseExit(
      Effect.gen(function*() {
        const groups = yield* ConsumerGroups
        // A member that cannot join, or a missing or unreadable group, rejects here, not at the first
        // read; with `create`, a missing one is made (and deleted again if this member cannot join it).
        const create = options.create
        const { ackWaitMs, byKey, maxDeliver } = yield* groupToJoin(
          groups,
          options.group,
          create === undefined ? undefined : { make: create, asked: create },
          options.maxInFlight
        )
        const joinOptions = options.maxInFlight === undefined ? {} : { maxInFlight: options.maxInFlight }
        const pull = yield* Stream.toPull(groups.join(options.group, joinOptions))
        const inHand = new JobsInHand(ackWaitMs)
        yield* Effect.forkScoped(inHand.keepingDeadlines)
        return {
          pull: Effect.catchAll(pull, Option.match({ onNone: () => Effect.succeed(undefined), onSome: Effect.fail })),
          inHand,
          byKey,
          maxDeliver
        }
      }).pipe(Scope.extend(scope)),
      signal === undefined ? undefined : { signal }
    )
    if (Exit.isFailure(exit) || signal?.aborted === true) {
      await Effect.runPromise(Scope.close(scope, Exit.void))
      await runtime.dispose()
      throw signal?.aborted === true || Exit.isSuccess(exit) ? signal?.reason : Cause.squash(exit.cause)
    }
    const { byKey, inHand, maxDeliver, pull } = exit.value
    return new CxlogGroup(options.group, byKey, maxDeliver, runtime, scope, pull, inHand, signal)
  }

  /**
   * Joins the group through the first of `brokers` that takes the connection, from a process that
   * need not map the region: the broker holds the member for it, and the next broker takes over
   * when the connection goes (docs/consumers.md, "Remote members").
   */
  static async open(options: CxlogGroupOptions & RemoteGroupsOptions): Promise<CxlogGroup> {
    checkNames(options, REMOTE_MEMBER_NAMES)
    options.signal?.throwIfAborted()
    // As CxlogAdmin's: else a timeout out of range blames the broker, brokers as text throws a TypeError.
    const unusable = remoteLinkProblem(options)
    if (unusable !== undefined) throw new InvalidGroupSpec({ group: options.group, reason: unusable })
    const { create: _create, group: _group, maxInFlight: _maxInFlight, signal: _signal, ...remote } = options
    return CxlogGroup.joinWith(layerRemote(remote), options)
  }

  private jobOf(delivery: Delivery): CxlogJob {
    // A closed member holds nothing, and its region may be unmapped: its jobs settle nothing (false).
    // A refusal rejects with the typed error itself (InvalidNakDelay, DeadLetterFailed), not wrapped.
    const run = async <A>(effect: Effect.Effect<A, unknown>) => {
      if (this.closing !== undefined) return false
      const exit = await Effect.runPromiseExit(effect)
      if (Exit.isSuccess(exit)) return exit.value
      throw Cause.squash(exit.cause)
    }
    return {
      group: delivery.group,
      topic: delivery.topic,
      offset: delivery.offset,
      timestamp: delivery.timestamp,
      key: delivery.key,
      headers: delivery.headers,
      value: delivery.value,
      deliveryCount: delivery.deliveryCount,
      text: () => decoder.decode(delivery.value),
      header: (name) => headerText(delivery.headers, name),
      // A local member's ack is a few atomic operations: settled now, not through an effect per ack.
      ack: () =>
        delivery instanceof LocalDelivery && this.closing === undefined
          ? Promise.resolve(delivery.ackNow())
          : run(delivery.ack),
      nak: (delayMs) => run(delivery.nak(delayMs)),
      term: (reason) => run(delivery.term(reason)),
      inProgress: () => run(delivery.inProgress)
    }
  }

  /** The next job; undefined once the member is closed. Rejects with the member's typed error. */
  next(): Promise<CxlogJob | undefined> {
    return this.take(undefined)
  }

  /**
   * The next job; undefined once the member is closed, or once `signal` aborts: then what the
   * pull under way brings stays in hand for the next call (or goes to the others with `close`).
   */
  private async take(signal: AbortSignal | undefined): Promise<CxlogJob | undefined> {
    // Closed, it holds nothing: what it had buffered went to the others with the rest.
    if (this.closing !== undefined) return undefined
    this.inHand.asked()
    const buffered = this.inHand.deliveries
    while (buffered.length === 0) {
      // One pull at a time: a pull its caller stopped waiting for fills the hand all the same.
      this.taking ??= this.pullInto(buffered)
      const exit = signal === undefined ? await this.taking : await unlessAborted(this.taking, signal)
      if (exit === ABORTED) return undefined
      if (Exit.isSuccess(exit)) {
        if (exit.value === undefined) return undefined
        continue
      }
      if (this.closing !== undefined || this.signal?.aborted === true) return undefined
      throw Cause.squash(exit.cause)
    }
    if (this.closing !== undefined || signal?.aborted === true) return undefined
    return this.jobOf(buffered.shift()!)
  }

  /** One pull of the member's stream, its deliveries put in `buffered`; never rejects (its Exit says how it ended). */
  private pullInto(buffered: Array<Delivery>) {
    const pulling = this.runtime.runPromiseExit(this.pull, { signal: this.stop.signal })
    this.pulling = pulling
    return pulling.then((exit) => {
      this.taking = undefined
      if (Exit.isSuccess(exit) && exit.value !== undefined) {
        for (const delivery of exit.value) buffered.push(delivery)
      }
      return exit
    })
  }

  /** Its jobs one by one; leaving the loop (`break`, `return`, a throw) closes the member, as its end does. */
  async *[Symbol.asyncIterator](): AsyncIterator<CxlogJob> {
    try {
      for (;;) {
        const job = await this.next()
        if (job === undefined) return
        yield job
      }
    } finally {
      await this.close()
    }
  }

  /**
   * Runs `handler` on every job until the member is closed: a job is acked when the handler
   * resolves, nak'd (delivered again, after `nakDelayMs`) when it throws — on its last delivery
   * (`maxDeliver`), sent to the dead letters with what the handler threw. Options it cannot take
   * reject at once, the member untouched; once its loop ran, a rejection (`GroupDeleted`, a settle
   * that failed) closes the member first, as leaving a `for await` loop by a throw does: a member
   * left open keeps its process from exiting, and its jobs from the others.
   */
  async process(handler: (job: CxlogJob) => unknown, options: ProcessOptions = {}): Promise<void> {
    // Called, what is no function throws for every job: each would be nak'd to its last delivery.
    if (typeof handler !== "function") {
      throw new InvalidGroupSpec({
        group: this.group,
        reason: `process takes a handler function, not ${String(handler)}`
      })
    }
    const problem = nakDelayProblem(options.nakDelayMs)
    if (problem !== undefined) throw new InvalidNakDelay({ group: this.group, offset: undefined, reason: problem })
    const concurrency = options.concurrency ?? 1
    if (!(Number.isSafeInteger(concurrency) || concurrency === Infinity) || concurrency < 1) {
      throw new InvalidGroupSpec({
        group: this.group,
        reason:
          `process's concurrency ${concurrency} is not a whole number of handlers, at least 1 (Infinity: as many as the member holds)`
      })
    }
    try {
      await this.processing(handler, options, concurrency)
    } catch (error) {
      // What ended the loop is what the caller is told, whatever the close met.
      await this.close().catch(() => undefined)
      throw error
    }
  }

  /** `process`'s loop, its options checked. */
  private async processing(
    handler: (job: CxlogJob) => unknown,
    options: ProcessOptions,
    concurrency: number
  ): Promise<void> {
    const settle = async (job: CxlogJob) => {
      try {
        await handler(job)
        await job.ack()
      } catch (error) {
        // Its last delivery: to the dead letters with what the handler threw, not only how often it was nak'd.
        if (this.maxDeliver > 0 && job.deliveryCount >= this.maxDeliver) {
          await job.term(`the handler failed on delivery ${job.deliveryCount} of ${this.maxDeliver}: ${thrown(error)}`)
        } else {
          await job.nak(options.nakDelayMs ?? 0)
        }
      }
    }
    const turns = new KeyTurns()
    const running = new Set<Promise<void>>()
    // A settle that failed (its ack or nak rejected): the loop takes no more, and rejects with it once the rest are settled.
    let failed: { readonly error: unknown } | undefined
    // Jobs are taken only while fewer than `concurrency` run; the loop leaves once every one it took is settled.
    while (options.signal?.aborted !== true && failed === undefined) {
      // The signal ends a wait for the next job too: a handler may abort it while the loop waits.
      const job = await this.take(options.signal)
      if (job === undefined) break
      const run = turns.after(this.byKey ? job.key : undefined, () => settle(job))
      running.add(run)
      run.then(() => running.delete(run), (error: unknown) => {
        running.delete(run)
        failed ??= { error }
      })
      while (running.size >= concurrency) await Promise.race(running).catch(() => undefined)
    }
    await Promise.allSettled(running)
    if (failed !== undefined) throw failed.error
  }

  /**
   * Leaves the group: the jobs it holds unsettled go to the other members at once, and settling
   * one of them afterwards does nothing (`false`). Those it took but never handed out (`next`)
   * go back unseen: not counted as deliveries (a remote member's through its broker).
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.signal?.removeEventListener("abort", this.onAbort)
      this.stop.abort()
      await this.pulling
      await Effect.runPromise(giveBackUnseen(this.inHand.deliveries.splice(0)))
      await Effect.runPromise(Scope.close(this.scope, Exit.void))
      await this.runtime.dispose()
    })()
    return this.closing
  }
}
