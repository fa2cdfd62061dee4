/**
 * A plain Promise facade over the Topics service through brokers (TopicsRemote.ts), for
 * applications that do not use Effect:
 *
 * ```ts
 * const admin = await CxlogAdmin.open({ brokers: [{ host: "127.0.0.1", port: 7400 }] })
 * await admin.createTopic({ name: "orders.eu", memory: 16 << 20 })   // order 5, ACK 1, RF 1 unless given
 * const { topics, heap } = await admin.listTopics()
 * await admin.trimTopic("orders.eu", { keepMessages: 1000 })   // what it holds after: { earliest, end }
 * await admin.deleteTopic("orders.eu")
 * await admin.close()
 * ```
 *
 * Each call rejects with its typed error (`TopicExists`, `RegionFull`, `TopicNotFound`,
 * `TopicForbidden`, `HeadUnavailable`, `TopicsUnavailable`, …), whose message says why; `open`
 * with an option it does not take, with `InvalidAdminOptions`.
 */
import { Cause, Data, Effect, Exit, Scope } from "effect"
import { type NamesOf, unknownOptionsReason } from "../../OptionNames.js"
import {
  type TopicBounds,
  type TopicDescription,
  type TopicInfo,
  type TopicsOverview,
  type TopicSpecInput,
  type TopicsShape,
  TopicsUnavailable,
  type TrimTarget,
  withSpecDefaults
} from "../../services/log/Topics.js"
import { REMOTE_LINK_OPTION_NAMES, remoteLinkProblem } from "./RemoteLink.js"
import { makeRemoteTopics, type RemoteTopicsOptions } from "./TopicsRemote.js"

export type CxlogAdminOptions = RemoteTopicsOptions

/** Options `open` cannot use: a misspelt name (`requestTimeout` is one, `timeoutMs` is not), said before anything connects. */
export class InvalidAdminOptions extends Data.TaggedError("InvalidAdminOptions")<{ readonly reason: string }> {
  override get message() {
    return `invalid admin options: ${this.reason}`
  }
}

/** What `open` takes: any other name is a caller's mistake, refused rather than left out. */
const OPTION_NAMES: NamesOf<CxlogAdminOptions> = REMOTE_LINK_OPTION_NAMES

export class CxlogAdmin {
  private closing: Promise<void> | undefined
  /**
   * The calls under way, which `close` waits for before it closes the connection: one whose
   * connection closed under it tried the next broker, on a connection opened after the close
   * and never closed, which kept the process from exiting.
   */
  private readonly calls = new Set<Promise<unknown>>()

  private constructor(private readonly scope: Scope.CloseableScope, private readonly topics: TopicsShape) {}

  /** Connects to the first broker that takes this client (in the order given); rejects with `TopicsUnavailable` when none does. */
  static async open(options: CxlogAdminOptions): Promise<CxlogAdmin> {
    const unknown = unknownOptionsReason(options, OPTION_NAMES, "an admin client") ??
      remoteLinkProblem(options)
    if (unknown !== undefined) throw new InvalidAdminOptions({ reason: unknown })
    const scope = Effect.runSync(Scope.make())
    const exit = await Effect.runPromiseExit(
      Effect.tap(makeRemoteTopics(options).pipe(Scope.extend(scope)), (remote) => remote.connect)
    )
    if (Exit.isFailure(exit)) {
      await Effect.runPromise(Scope.close(scope, Exit.void))
      throw Cause.squash(exit.cause)
    }
    return new CxlogAdmin(scope, exit.value.topics)
  }

  /**
   * Creates a topic (order, ACK level, replication factor, memory, disk retention: `TopicSpec`;
   * order, ACK level and replication factor left out are 5, 1 and 1); what it is now.
   */
  createTopic(spec: TopicSpecInput): Promise<TopicInfo> {
    return this.run(this.topics.create(withSpecDefaults(spec)))
  }

  /** Deletes a topic: its name is free at once, its memory comes back once no process holds it. */
  deleteTopic(name: string): Promise<void> {
    return this.run(this.topics.delete(name))
  }

  /**
   * Drops a topic's oldest messages: those before `beforeOffset`, all but the last `keepMessages`, or
   * those stamped before `beforeTime` (ms since the epoch); what it holds after (`earliest`, `end`).
   */
  trimTopic(name: string, target: TrimTarget | { readonly beforeTime: Date }): Promise<TopicBounds> {
    // A Date as `fromTime` takes one: its milliseconds since the epoch.
    // Looked into only when it is an object: a JavaScript caller's `undefined` made `in` throw at the call.
    const given = typeof target === "object" && target !== null && "beforeTime" in target &&
        target.beforeTime instanceof Date
      ? { beforeTime: target.beforeTime.getTime() }
      : target as TrimTarget
    return this.run(this.topics.trim(name, given))
  }

  /** Drops every message a topic holds; its offsets go on from where they were. */
  purgeTopic(name: string): Promise<TopicBounds> {
    return this.run(this.topics.purge(name))
  }

  /** A topic as it is now: its spec, memory, the offsets it holds, sessions, readers and consumers. */
  describeTopic(name: string): Promise<TopicDescription> {
    return this.run(this.topics.describe(name))
  }

  /** Every topic this user may read or administer, described, and the region's heap (`heap.freeBytes`: the memory left). */
  listTopics(): Promise<TopicsOverview> {
    return this.run(this.topics.overview)
  }

  /** Closes the connection once the calls under way are answered (each within `requestTimeout`); calls after it reject. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await Promise.allSettled(this.calls)
      await Effect.runPromise(Scope.close(this.scope, Exit.void))
    })()
    return this.closing
  }

  private async run<A, E>(effect: Effect.Effect<A, E>): Promise<A> {
    if (this.closing !== undefined) throw new TopicsUnavailable({ reason: "this CxlogAdmin is closed" })
    const running = Effect.runPromiseExit(effect)
    this.calls.add(running)
    const exit = await running
    this.calls.delete(running)
    if (Exit.isSuccess(exit)) return exit.value
    throw Cause.squash(exit.cause)
  }
}
