/**
 * A whole cxlog cluster in memory, for an app's tests (`cxlog/testing`, docs/testing.md): the
 * log's live engines — topics, appends, the sequencer's ordering, sessions and ACK tracking,
 * readers and named consumers — over the in-process store instead of a region, with no process,
 * no shared memory and no addon. An app's code that asks for `Publisher` and `Subscriber` runs
 * unchanged over it: its publisher is the live one (batching, window, sessions, resends),
 * appending as a local publisher does and acknowledged once the cluster's sequencer has ordered
 * its batches; its subscriber reads the same total order every other reader sees.
 *
 * Not faked, therefore not here: the wire (brokers, TCP, authentication), durability (ACK 2 on
 * a disk) and failover — tests of those run the real processes (`cxlog serve`).
 */
import { Cause, Context, type Duration, Effect, Exit, Layer, Scope } from "effect"
import { durationProblem, withMillis } from "../../Durations.js"
import { AckTracker } from "../../services/log/AckTracker.js"
import { Appender } from "../../services/log/Appender.js"
import { InvalidSequencerOptions } from "../../services/log/Sequencer.js"
import type { AckLevel } from "../../services/log/Topics.js"
import { type InvalidPublisherOptions, Publisher, type PublisherOptions } from "../../services/net/Publisher.js"
import { Subscriber } from "../../services/net/Subscriber.js"
import { makeMemoryLog, type MemoryLog, type MemoryLogError } from "../net/BrokerLogMemory.js"
import { makeLocal } from "../net/Publisher.js"
import { makeMemory as makeMemorySubscriber } from "../net/SubscriberMemory.js"

/** The running in-memory cluster: its log, for assertions (`ordered`, `stats`) and for `settle`. */
export class TestCluster extends Context.Tag("cxlog/TestCluster")<TestCluster, MemoryLog>() {}

/** A topic of the cluster: its name (order 5, ACK 1), or its name with an ACK level. */
export type TestTopic = string | { readonly name: string; readonly ackLevel?: AckLevel }

export interface TestClusterOptions {
  /** The topics, created with the cluster. */
  readonly topics: ReadonlyArray<TestTopic>
  /** How long a gap in a session may stay open before the session is fenced. Default 2 s. */
  readonly holdTimeoutMs?: number
  /** `holdTimeoutMs` as a duration (`"5 seconds"`, `Duration.seconds(5)`); given both, this one counts. */
  readonly holdTimeout?: Duration.DurationInput
}

/** A publisher's options in the cluster: a TCP publisher's, without brokers (there are none). */
export type TestPublisherOptions = Omit<PublisherOptions, "brokers" | "credentials" | "insecure" | "tls" | "region">

/** The region name a test publisher's errors carry. */
const TEST_REGION = "cxlog-testing (in memory)"

/** The cluster, for as long as the layer is in use. */
export const cluster = (given: TestClusterOptions): Layer.Layer<TestCluster, MemoryLogError> => {
  // Before `withMillis`, which throws on a value that is no duration (as the sequencer refuses it).
  const notDuration = durationProblem("holdTimeout", given.holdTimeout)
  if (notDuration !== undefined) {
    return Layer.fail(
      new InvalidSequencerOptions({ option: "holdTimeoutMs", value: given.holdTimeout, notDuration })
    )
  }
  const options = withMillis(given, ["holdTimeout"])
  return Layer.scoped(
    TestCluster,
    makeMemoryLog({
      topics: options.topics.map((topic) => (typeof topic === "string" ? { name: topic } : topic)),
      ...(options.holdTimeoutMs === undefined ? {} : { holdTimeoutMs: options.holdTimeoutMs })
    })
  )
}

/** A live publisher of the cluster's topic `options.topic`, appending through the cluster's first broker slot. */
export const publisher = (
  options: TestPublisherOptions
): Layer.Layer<Publisher, InvalidPublisherOptions, TestCluster> =>
  Layer.scoped(
    Publisher,
    Effect.flatMap(TestCluster, (log) =>
      makeLocal({ ...options, region: TEST_REGION }).pipe(
        Effect.provideService(Appender, log.appender(0)),
        Effect.provideService(AckTracker, log.acks)
      ))
  )

/** The live subscriber over the cluster's total order (named consumers included). */
export const subscriber: Layer.Layer<Subscriber, never, TestCluster> = Layer.effect(
  Subscriber,
  Effect.flatMap(TestCluster, (log) => makeMemorySubscriber(log.store))
)

/** What an Effect app asks for, over one cluster: a Publisher (of `options.publisher.topic`), the Subscriber, and the cluster itself. */
export const layer = (
  options: TestClusterOptions & { readonly publisher: TestPublisherOptions }
): Layer.Layer<Publisher | Subscriber | TestCluster, MemoryLogError | InvalidPublisherOptions> =>
  Layer.provideMerge(Layer.merge(publisher(options.publisher), subscriber), cluster(options))

/** A cluster started for a Promise app's tests: the layers its facades open with, until `close`. */
export interface RunningTestCluster {
  readonly log: MemoryLog
  /** For `CxlogPublisher.openWith`: a publisher of this cluster. */
  readonly publisher: (options: TestPublisherOptions) => Layer.Layer<Publisher, InvalidPublisherOptions>
  /** For `CxlogSubscriber.openWith`: the subscriber of this cluster. */
  readonly subscriber: Layer.Layer<Subscriber>
  /** Stops the cluster (its sequencer); close the facades opened on it first. */
  readonly close: () => Promise<void>
}

/** Starts a cluster outside any Effect scope, for Promise apps: every facade opened on it shares its one total order. */
export const start = async (options: TestClusterOptions): Promise<RunningTestCluster> => {
  const scope = Effect.runSync(Scope.make())
  const exit = await Effect.runPromiseExit(Layer.buildWithScope(cluster(options), scope))
  if (Exit.isFailure(exit)) {
    await Effect.runPromise(Scope.close(scope, exit))
    throw Cause.squash(exit.cause)
  }
  const running = Layer.succeedContext(exit.value)
  return {
    log: Context.get(exit.value, TestCluster),
    publisher: (publisherOptions) => Layer.provide(publisher(publisherOptions), running),
    subscriber: Layer.provide(subscriber, running),
    close: () => Effect.runPromise(Scope.close(scope, Exit.void))
  }
}
