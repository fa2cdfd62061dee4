/**
 * The head's per-group metrics: a head with `--metrics-port`, a group over its topic, this process
 * publishing and joining as a member; the head's endpoint, scraped, says what the group's object
 * says — members, pending, the oldest pending message's age, lag, acks and redeliveries.
 */
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Layer, Stream } from "effect"
import parsePrometheusTextFormat from "parse-prometheus-text-format"
import { freePort } from "../../src/programs/bench/peers/PeerServer.js"
import { ConsumerGroups, type Delivery } from "../../src/services/groups/ConsumerGroups.js"
import { Publisher } from "../../src/services/net/Publisher.js"
import { groupsRegionEnv, regionClient } from "../fixtures/groups-harness.js"
import { forkCli } from "../helpers/CliRoles.js"
import { uniqueRegion } from "../helpers/Processes.js"

const MESSAGES = 10

/** The group's series on the endpoint, by family name. */
const scrapeGroup = (port: number, group: string) =>
  Effect.promise(async () => {
    const families = parsePrometheusTextFormat(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text())
    return Object.fromEntries(families.flatMap((family) => {
      const series = (family.metrics as Array<{ labels?: Record<string, string>; value?: string }>)
        .find((m) => m.labels?.["group"] === group)
      return series === undefined ? [] : [[family.name, Number(series.value)]]
    }))
  })

describe("consumer group metrics", () => {
  it.scopedLive(
    "the head's endpoint reads each group's members, pending, age, lag, acks and redeliveries; a deleted group's series go",
    () =>
      Effect.gen(function*() {
        const region = yield* uniqueRegion("group-metrics")
        const port = yield* freePort
        const head = yield* forkCli(["head", "--topic", "jobs", "--metrics-port", `${port}`], groupsRegionEnv(region))
        yield* head.event("ready")
        const client = yield* Layer.build(regionClient(region, "jobs"))
        yield* Effect.gen(function*() {
          const groups = yield* ConsumerGroups
          yield* groups.create({ name: "metered", topic: "jobs", ackWaitMs: 600_000 })
          const publisher = yield* Publisher
          for (let i = 0; i < MESSAGES; i++) yield* publisher.publish(new TextEncoder().encode(`job ${i}`))
          yield* publisher.flush(10_000)
          // One member holding 4 messages: it acks 2, naks 1 (delivered again) and keeps 1.
          const pull = yield* Stream.toPull(groups.join("metered", { maxInFlight: 4 }))
          const held: Array<Delivery> = []
          while (held.length < 4) held.push(...Chunk.toReadonlyArray(yield* pull))
          yield* held[0]!.ack
          yield* held[1]!.ack
          yield* held[2]!.nak(0)
          // New messages may take the freed room before the nak'd one comes again: those are acked as they come.
          let ackedMore = 0
          for (let again = false; !again;) {
            for (const delivery of Chunk.toReadonlyArray(yield* pull)) {
              if (delivery.offset === held[2]!.offset) again = true
              else {
                yield* delivery.ack
                ackedMore++
              }
            }
          }
          const info = yield* groups.describe("metered")
          const metrics = yield* scrapeGroup(port, "metered")
          expect(metrics).toMatchObject({
            cxlog_group_members: 1,
            cxlog_group_pending: info.pending,
            cxlog_group_lag_messages: info.lag,
            cxlog_group_acked: 2 + ackedMore,
            cxlog_group_redeliveries: 1,
            cxlog_group_dead_letters: 0,
            cxlog_group_hold_cut_off: 0
          })
          expect(info.pending).toBe(2)
          // Scraped after the describe: at least as old as it said then (held since before the nak came back: not 0).
          expect(info.oldestPendingAgeMs).toBeGreaterThan(0)
          expect(metrics["cxlog_group_oldest_pending_age_ms"]).toBeGreaterThanOrEqual(info.oldestPendingAgeMs!)
          expect(metrics["cxlog_group_oldest_pending_age_ms"]).toBeLessThanOrEqual(info.oldestPendingAgeMs! + 60_000)
          // Deleted, the group has no series any more: its last figures (2 pending) would stay for good.
          yield* groups.create({ name: "kept", topic: "jobs" })
          yield* groups.delete("metered")
          expect(yield* scrapeGroup(port, "metered")).toEqual({})
          expect(yield* scrapeGroup(port, "kept")).toMatchObject({ cxlog_group_members: 0, cxlog_group_pending: 0 })
        }).pipe(Effect.provide(client))
      }),
    60_000
  )
})
