/**
 * What a `cxlog run` waits for once it is under way, from its roles' last events: the
 * publisher's figures, the heads' durable-tier report and every subscriber's audit. A role
 * gone before what the run waits for fails it at once, naming it.
 */
import { Effect } from "effect"
import type { AuditingSubscriberEvents, PublisherEvents } from "../roles/RoleEvents.js"
import type { AuditResult } from "./Audit.js"
import { type Heard, type RoleFailed, whileAlive } from "./Cluster.js"
import type { RunRoles } from "./RunCluster.js"
import type { RunPlan } from "./RunPlan.js"

export interface RunOutcome {
  /** The publisher's `done`: its time, ACK latencies, resends and batches. */
  readonly published: Heard<typeof PublisherEvents, "done">
  /** ACK 2: the heads' fdatasyncs and the bytes they covered once every ACK was given (null otherwise). */
  readonly durable: { readonly fsyncs: number; readonly bytes: number } | null
  /** The subscriber's `done`: what it read and its audit (undefined without a subscriber). */
  readonly audited: Heard<typeof AuditingSubscriberEvents, "done"> | undefined
  /** Each remote subscriber's audit and read throughput (payload MB/s from its first batch to the end of its audit). */
  readonly remoteAudits: ReadonlyArray<AuditResult & { readonly mBps: number }>
}

/** Waits for the publisher to finish (or `takenOver` to fail), then for the durable tier's last report and the audits. */
export const awaitOutcome = (
  plan: RunPlan,
  { brokers, durable, heads, publisher, remotes, subscriber }: RunRoles,
  takenOver: Effect.Effect<never, RoleFailed>
) =>
  Effect.gen(function*() {
    // Any role dying before it is done fails the run at once, naming it, what the run waited for, and its last output.
    const essential = [...heads, ...brokers.filter((_, i) => i !== plan.options.killBroker?.index)]
    // A subscriber gone before the publishers are done failed (out of retention, say): the run fails now, naming it.
    const readers = [...(subscriber === undefined ? [] : [subscriber]), ...remotes]
    const published = yield* publisher.event("done", 3_600_000).pipe(
      whileAlive([...essential, ...readers], "the publisher to finish"),
      Effect.raceFirst(takenOver)
    )
    // Every ACK 2 came after its fdatasync: the head's next report counts them all.
    const durableFigures = plan.dataDir === undefined ? null : yield* durable.next(5_000)
    // Everything is acked: the subscriber now reads to the log's end, duplicates after the last distinct message included.
    for (const s of readers) if (s.child.connected) s.child.send({ event: "publishersDone" })
    const audited = subscriber === undefined
      ? undefined
      : yield* subscriber.event("done", 3_600_000).pipe(whileAlive(essential, "the subscriber's audit"))
    // A remote subscriber that fell out of retention fails (LogOutOfRange) and so fails the run, naming it.
    const remoteAudits = yield* Effect.forEach(remotes, (r) =>
      r.event("done", 3_600_000).pipe(
        whileAlive(essential, `${r.role}'s audit`),
        Effect.map((e) => ({
          ...e.audit,
          mBps: Math.round((e.bytes / 1e6 / Math.max(e.elapsedMs / 1000, 1e-3)) * 10) / 10
        }))
      ))
    const outcome: RunOutcome = { published, durable: durableFigures, audited, remoteAudits }
    return outcome
  })
