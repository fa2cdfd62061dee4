/**
 * Starting the cluster of a `cxlog run`: the head and brokers, the standby heads of
 * `--kill-head`, the auditing subscribers (in the region and over TCP), then the publisher,
 * each once the roles before it are ready; and the heads' durable-tier reports.
 */
import { Effect } from "effect"
import { AuditingSubscriberEvents, type BrokerEvents, HeadEvents, PublisherEvents } from "../roles/RoleEvents.js"
import { RoleFailed, type RoleOf, spawnRole, startHeadAndBrokers, whileAlive } from "./Cluster.js"
import type { RunPlan } from "./RunPlan.js"
import { runToEnd } from "./RunToEnd.js"

export type HeadRole = RoleOf<typeof HeadEvents>
export type SubscriberRole = RoleOf<typeof AuditingSubscriberEvents>

/** The roles a run started. */
export interface RunRoles {
  readonly head: HeadRole
  /** `--kill-head`: the standby heads, one of which takes over. */
  readonly standbys: ReadonlyArray<HeadRole>
  /**
   * With standbys, whichever head said ready last (one may take over early from a head stalled
   * past its lease on a loaded machine); else the head.
   */
  readonly activeHead: () => HeadRole
  /** The heads the run cannot do without: none with standbys. */
  readonly heads: ReadonlyArray<HeadRole>
  readonly brokers: ReadonlyArray<RoleOf<typeof BrokerEvents>>
  readonly subscriber: SubscriberRole | undefined
  readonly remotes: ReadonlyArray<SubscriberRole>
  readonly publisher: RoleOf<typeof PublisherEvents>
  readonly durable: DurableReports
}

/** Each role's metrics port: the head's is `--metrics-port`, broker i's the next + i, then the publisher's and the subscriber's. */
const metricsEnv = (plan: RunPlan) => (index: number) => {
  const base = plan.options.metricsPort ?? 0
  return { CXLOG_METRICS_PORT: base > 0 ? `${base + index}` : "0" }
}

/** An auditing subscriber's flags: the warm-up's messages and the measured ones, read to the log's end once the publisher is done. */
const auditFlags = (plan: RunPlan) => [
  "--topic",
  "run",
  "--audit-publishers",
  "1",
  "--audit-messages",
  `${plan.warmup + plan.messages}`,
  "--audit-order",
  `${plan.options.order}`,
  "--idle-timeout-ms",
  "30000",
  "--until-publishers-done"
]

/** The publisher's flags: the measured messages after the warm-up's, at the run's pace. */
const publisherFlags = (plan: RunPlan, ports: ReadonlyArray<number>) => [
  "publish",
  ...(plan.options.local === true ? ["--local"] : ["--brokers", ports.map((p) => `127.0.0.1:${p}`).join(",")]),
  "--topic",
  "run",
  "--count",
  `${plan.messages}`,
  "--message-bytes",
  `${plan.options.messageBytes}`,
  "--batch-bytes",
  `${plan.options.batchBytes}`,
  "--window",
  `${plan.options.window}`,
  ...(plan.options.fixedWindow === true ? ["--fixed-window"] : []),
  "--ack",
  `${plan.options.ackLevel}`,
  ...(plan.warmup === 0 ? [] : ["--warmup-count", `${plan.warmup}`]),
  ...(plan.offeredMBps === undefined ? [] : ["--rate-mbps", `${plan.offeredMBps}`])
]

/** Starts the run's roles, each once those it needs are ready; a role that fails meanwhile fails the start, naming it. */
export const startCluster = (plan: RunPlan) =>
  Effect.gen(function*() {
    const { env, options } = plan
    const metrics = metricsEnv(plan)
    const { brokers, head, ports } = yield* startHeadAndBrokers(
      `run:${options.order}:${options.ackLevel}${plan.dataDir === undefined ? "" : ":2"}`,
      options.brokers,
      env,
      metrics,
      options.discard === undefined ? [] : ["--discard", options.discard]
    )
    if (options.stalledReader === true) {
      yield* runToEnd("stalled reader", ["consumers", "reset", "stalled", "--topic", "run", "--to", "earliest"], env)
        .pipe(
          whileAlive([head, ...brokers], "the stalled reader's consumer to be made")
        )
    }
    const standbys = yield* Effect.forEach(
      Array.from({ length: options.killHead?.standbys ?? 0 }, (_, i) => i),
      (i) => spawnRole(`standby head ${i}`, ["head", "--standby"], env, HeadEvents)
    )
    yield* Effect.forEach(standbys, (s) => s.event("standby", 20_000)).pipe(
      whileAlive([head, ...brokers], "the standby heads to start")
    )
    const durable = durableReports([head, ...standbys])
    let activeHead = head
    for (const standby of standbys) {
      standby.onEvent("ready", () => {
        activeHead = standby
      })
    }
    const heads = standbys.length === 0 ? [head] : []
    const subscriber = plan.withSubscriber
      ? yield* spawnRole(
        "subscriber",
        ["subscribe", ...auditFlags(plan)],
        { ...env, ...metrics(options.brokers + 2) },
        AuditingSubscriberEvents
      )
      : undefined
    if (subscriber !== undefined) {
      yield* subscriber.event("subscribed", 20_000).pipe(
        whileAlive([...heads, ...brokers], "the subscriber to subscribe")
      )
    }
    // Remote subscribers: each a named consumer (its commits hold retention, so it reads everything while the
    // publishers wait for it, as a durable reader would), each trying the brokers from its own first one.
    const remotes = yield* Effect.forEach(Array.from({ length: options.remoteSubscribers ?? 0 }, (_, i) => i), (i) =>
      spawnRole(
        `remote subscriber ${i}`,
        [
          "subscribe",
          "--brokers",
          ports.map((_, j) =>
            `127.0.0.1:${ports[(i + j) % ports.length]}`
          ).join(","),
          ...auditFlags(plan),
          "--consumer",
          `run-remote-${i}`
        ],
        env,
        AuditingSubscriberEvents
      ))
    yield* Effect.forEach(remotes, (r) => r.event("subscribed", 20_000)).pipe(
      whileAlive([...heads, ...brokers], "the remote subscribers to subscribe")
    )
    const publisher = yield* spawnRole("publisher", publisherFlags(plan, ports), {
      ...env,
      ...metrics(options.brokers + 1)
    }, PublisherEvents)
    const roles: RunRoles = {
      head,
      standbys,
      activeHead: () => activeHead,
      heads,
      brokers,
      subscriber,
      remotes,
      publisher,
      durable
    }
    return roles
  })

/** The heads' durable-tier figures, summed (see `durableReports`). */
export interface DurableReports {
  /** The next report of any head after the call, with every head's latest; fails after `timeoutMs` without one. */
  readonly next: (timeoutMs: number) => Effect.Effect<{ fsyncs: number; bytes: number }, RoleFailed>
}

/**
 * The heads' durable-tier reports (`durable` events: fsyncs and bytes so far, each process its
 * own): `next` waits for one after the call and sums every head's latest, so a head that took
 * over (counting from 0) adds to what the one before it reported.
 */
const durableReports = (heads: ReadonlyArray<HeadRole>): DurableReports => {
  const latest = new Map<HeadRole, { readonly fsyncs: number; readonly bytes: number }>()
  let waiter: (() => void) | undefined
  for (const head of heads) {
    head.onEvent("durable", (e) => {
      latest.set(head, { fsyncs: e.fsyncs, bytes: e.bytes })
      const w = waiter
      waiter = undefined
      w?.()
    })
  }
  const total = () => {
    let fsyncs = 0
    let bytes = 0
    for (const figures of latest.values()) {
      fsyncs += figures.fsyncs
      bytes += figures.bytes
    }
    return { fsyncs, bytes }
  }
  return {
    next: (timeoutMs: number) =>
      Effect.async<{ fsyncs: number; bytes: number }, RoleFailed>((resume) => {
        const timer = setTimeout(() => {
          waiter = undefined
          resume(
            Effect.fail(
              new RoleFailed({
                role: heads.length > 1 ? "heads" : heads[0]!.role,
                reason: `no durable-tier report within ${timeoutMs} ms`,
                stderr: ""
              })
            )
          )
        }, timeoutMs)
        waiter = () => {
          clearTimeout(timer)
          resume(Effect.succeed(total()))
        }
        return Effect.sync(() => {
          clearTimeout(timer)
          waiter = undefined
        })
      })
  }
}
