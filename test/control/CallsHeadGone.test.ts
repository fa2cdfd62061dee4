/**
 * An application's process that joined its head, whose head then dies: what it asks of the head's
 * coordinator afterwards — a channel, a service or a consumer group created by name, a topic, a
 * process group — fails `HeadUnavailable` naming the head once it has been gone
 * `CXLOG_HEAD_LOST_MS`, rather than `CoordinatorUnavailable` at each call's own timeout (10 s); a
 * standby that takes the lease over answers a call made while it does; a head that holds its lease
 * but does not answer is waited for up to the call's own timeout; a head stopped past its lease
 * and resumed never makes a change it had not read before it stopped. The heads are `cxlog head`
 * processes; the application is this process. A coordinator composed without a head (no sequencer
 * lease, ever) is not taken for a head that is gone.
 */
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Fiber, Layer, Schedule, Schema } from "effect"
import * as CoordinatorLayers from "../../src/layers/control/Coordinator.js"
import * as ConsumerGroupsLayers from "../../src/layers/groups/ConsumerGroups.js"
import * as ChannelsLayers from "../../src/layers/ipc/Channels.js"
import * as ServicesLayers from "../../src/layers/ipc/Services.js"
import * as ConsumersLayers from "../../src/layers/log/Consumers.js"
import { makeHeadWatch } from "../../src/layers/log/HeadWatch.js"
import * as LogReaderLayers from "../../src/layers/log/LogReader.js"
import { oneBrokerLogConfig } from "../../src/layers/log/LogRegion.js"
import * as TopicsLayers from "../../src/layers/log/Topics.js"
import * as DirectoryLayers from "../../src/layers/region/Directory.js"
import { defaultControlConfig, RegionLayout } from "../../src/layers/RegionLayout.js"
import * as Roles from "../../src/layers/Roles.js"
import { Coordinator } from "../../src/services/control/Coordinator.js"
import { Rings } from "../../src/services/control/Rings.js"
import { ConsumerGroups } from "../../src/services/groups/ConsumerGroups.js"
import { Channels } from "../../src/services/ipc/Channels.js"
import { Services } from "../../src/services/ipc/Services.js"
import { CxlMemory } from "../../src/services/region/CxlMemory.js"
import type { Role } from "../../src/services/region/ProcessSlot.js"
import { ipcRegionEnv } from "../fixtures/ipc-member.js"
import { forkCli } from "../helpers/CliRoles.js"
import { failureOf, headLostMs } from "../helpers/HeadLost.js"
import { uniqueRegion } from "../helpers/Processes.js"

/**
 * An application's process of region `region`: its channels, services and consumer groups, and its coordinator client;
 * its process slot is `role`'s (a broker's calls are made on its clients' behalf).
 */
const member = (region: string, client: CoordinatorLayers.ClientOptions = {}, role: Role = "client") => {
  const fromLayout = Layer.unwrapEffect(Effect.map(RegionLayout, (layout) =>
    Layer.mergeAll(
      DirectoryLayers.layer(layout.directory),
      LogReaderLayers.layer(layout.log),
      ConsumersLayers.layer(layout.log)
    )))
  return Layer.mergeAll(ChannelsLayers.layer, ServicesLayers.layer, ConsumerGroupsLayers.layer()).pipe(
    Layer.provideMerge(fromLayout),
    Layer.provideMerge(Roles.coordinatorClient(client)),
    Layer.provideMerge(Roles.controlTransport),
    Layer.provideMerge(Roles.processSlot(role)),
    Layer.provideMerge(Roles.attachRegion({ name: region }))
  )
}

/** Each coordinator call's own timeout (the Rpc client's default): the head's loss must end a call before it. */
const CALL_TIMEOUT_MS = 10_000

describe("calls to the head's coordinator once the head is gone (cxlog head processes)", () => {
  it.scopedLive(
    "its head SIGKILLed after the process joined (no standby): every call through the head fails HeadUnavailable naming it and what to do",
    () =>
      Effect.gen(function*() {
        const region = yield* uniqueRegion("calls-killed")
        const head = yield* forkCli(["head", "--topic", "t:5:1"], ipcRegionEnv(region))
        yield* head.event("ready")
        const app = yield* Layer.build(member(region)).pipe(headLostMs(500))
        const coordinator = Context.get(app, Coordinator)
        const channels = Context.get(app, Channels)
        const services = Context.get(app, Services)
        const groups = Context.get(app, ConsumerGroups)
        // Made while the head ran: removed below through the head.
        const before = yield* Effect.scoped(Effect.map(channels.open("before", Schema.Number), (c) => c.entry))

        head.child.kill("SIGKILL")
        yield* head.exited
        const calls: ReadonlyArray<readonly [string, Effect.Effect<unknown, { readonly message: string }>]> = [
          [`to create channel "prices"`, Effect.scoped(channels.open("prices", Schema.Number))],
          [`to create service "quotes"`, Effect.scoped(services.serve("quotes", []))],
          [`to create group "workers"`, groups.create({ name: "workers", topic: "t" })],
          [`to remove channel "before"`, channels.remove("before")],
          ["to create topic u", coordinator.createTopic({ name: "u", order: 5, ackLevel: 1, replicationFactor: 1 })],
          ["to delete topic t", coordinator.deleteTopic("t")],
          ["to trim topic t", coordinator.trimTopic("t", { keepMessages: 0 })],
          ["to purge topic t", coordinator.purgeTopic("t")],
          ["to create process group g", coordinator.createGroup("g", [coordinator.self.slot])],
          ["to add this process to process group g", coordinator.joinGroup("g")],
          ["to list the members of group all", coordinator.members()],
          [
            `to remove channel "before"`,
            coordinator.removeObject({ kind: "channel", name: "before", generation: before.generation })
          ]
        ]
        for (const [asked, call] of calls) {
          const { failed, tookMs } = yield* failureOf(call)
          expect(failed, asked).toMatchObject({
            _tag: "HeadUnavailable",
            region,
            pid: head.pid,
            epoch: 1,
            state: "exited",
            boundMs: 500
          })
          expect(failed.message, asked).toContain(`its coordinator ${asked} (asked by this process, pid ${process.pid}`)
          expect(failed.message, asked).toContain(`cxlog head --attach --region ${region}`)
          expect(tookMs, asked).toBeLessThan(CALL_TIMEOUT_MS)
        }
      }),
    120_000
  )

  it.scopedLive(
    "a standby that takes the lease over answers a call made while the head was gone: the channel asked for is created",
    () =>
      Effect.gen(function*() {
        const region = yield* uniqueRegion("calls-takeover")
        const env = ipcRegionEnv(region)
        const head = yield* forkCli(["head"], env)
        yield* head.event("ready")
        const standby = yield* forkCli(["head", "--standby", "--standby-check-ms", "200"], env)
        yield* standby.event("standby")
        // A bound well past a takeover's (well under a second, docs/operations.md) on a loaded machine.
        const app = yield* Layer.build(member(region)).pipe(headLostMs(15_000))
        const channels = Context.get(app, Channels)
        const requests = yield* Effect.flatMap(
          Rings,
          (rings) => rings.inspect(Context.get(app, RegionLayout).requestRing(Context.get(app, Coordinator).self.slot))
        ).pipe(Effect.provide(app))

        // The standby takes over only once the request is in the gone head's ring: none of its own reads it.
        standby.child.kill("SIGSTOP")
        head.child.kill("SIGKILL")
        yield* head.exited
        const sent = requests.writer().sequence
        const opening = yield* Effect.fork(Effect.scoped(channels.open("prices", Schema.Number)))
        while (requests.writer().sequence === sent) yield* Effect.sleep("10 millis")
        standby.child.kill("SIGCONT")

        const opened = yield* Fiber.join(opening)
        expect(opened.entry).toMatchObject({ kind: "channel", name: "prices" })
        expect(yield* standby.event("ready")).toMatchObject({ epoch: 2 })
      }),
    60_000
  )

  it.scopedLive(
    "a head stopped (SIGSTOP) past its lease with topic creates in flight, then resumed, makes neither: the caller that gave up is told it was not read, the one still waiting gets the head's refusal",
    () =>
      Effect.gen(function*() {
        const region = yield* uniqueRegion("calls-lapsed")
        const head = yield* forkCli(["head", "--sequencer-lease-ms", "1000"], ipcRegionEnv(region))
        yield* head.event("ready")
        // One gives up on the head soon after its lease lapses; the other, a broker's slot, still waits when it runs again.
        const quick = yield* Layer.build(member(region)).pipe(headLostMs(200))
        const patient = yield* Layer.build(member(region, {}, "broker")).pipe(headLostMs(20_000))
        const spec = (name: string) => ({ name, order: 5, ackLevel: 1, replicationFactor: 1 }) as const

        head.child.kill("SIGSTOP")
        const waiting = yield* Effect.fork(Effect.flip(Context.get(patient, Coordinator).createTopic(spec("v"))))
        const { failed } = yield* failureOf(Context.get(quick, Coordinator).createTopic(spec("u")))
        expect(failed).toMatchObject({ _tag: "HeadUnavailable", pid: head.pid, state: "lease-lapsed" })
        expect(failed.message).toContain("to create topic u (asked by this process")
        expect(failed.message).toContain("not read by the head: not made, and a head that runs again refuses it")

        head.child.kill("SIGCONT")
        const refused = yield* Fiber.join(waiting)
        expect(refused).toMatchObject({ _tag: "HeadUnavailable", pid: head.pid, state: "lapse-refused" })
        expect(refused.message).toContain("refused what was sent to it (waiting for its coordinator to create topic v")
        // Told to the broker's client: the broker asked on its behalf, not "this process".
        expect(refused.message).toContain(`(asked by broker process pid ${process.pid}, slot `)
        expect(refused.message).toContain(`, on its client's behalf)`)
        expect(refused.message).toContain("nothing was changed, and the head serves again: ask again")

        // Once the head holds its lease again, each create asked again is made: neither was (TopicExists otherwise).
        const lease = makeHeadWatch(Context.get(quick, CxlMemory), 60_000)
        yield* Effect.repeat(
          Effect.sync(() => lease.check(() => "the head to run again") === undefined && lease.available()),
          {
            until: (held) => held,
            schedule: Schedule.spaced("10 millis")
          }
        )
        expect(yield* Context.get(quick, Coordinator).createTopic(spec("u"))).toMatchObject({ name: "u" })
        expect(yield* Context.get(patient, Coordinator).createTopic(spec("v"))).toMatchObject({ name: "v" })
      }),
    60_000
  )

  it.scopedLive(
    "a head that holds its lease but does not answer (stopped, within its lease) is waited for up to the call's own timeout",
    () =>
      Effect.gen(function*() {
        const region = yield* uniqueRegion("calls-slow")
        const head = yield* forkCli(["head", "--sequencer-lease-ms", "30000"], ipcRegionEnv(region))
        yield* head.event("ready")
        const app = yield* Layer.build(member(region, { callTimeoutMs: 2_000 })).pipe(headLostMs(500))
        const coordinator = Context.get(app, Coordinator)
        head.child.kill("SIGSTOP")
        // Its own timeout, 2 s, is four times the bound: the head that holds its lease is not taken for gone meanwhile.
        const { failed } = yield* failureOf(
          coordinator.createTopic({ name: "u", order: 5, ackLevel: 1, replicationFactor: 1 })
        )
        expect(failed).toMatchObject({ _tag: "CoordinatorUnavailable" })
        expect(failed.message).toContain("rpc cxlog.createTopic")
        expect(failed.message).toContain("no reply within 2000 ms")
        head.child.kill("SIGCONT")
      }),
    60_000
  )
})

describe("a coordinator composed without a head (live layers in this process)", () => {
  it.scopedLive(
    "serving with no sequencer lease held ever, it is not taken for a head that is gone: a call made past the bound is answered",
    () =>
      Effect.gen(function*() {
        const name = yield* uniqueRegion("calls-leaseless")
        const region = yield* Layer.build(
          Roles.createRegion({ name }, {
            directory: { entrySlots: 16, holderLines: 4, heapBytes: 4 << 20 },
            control: { ...defaultControlConfig, maxProcesses: 8 },
            log: oneBrokerLogConfig
          })
        )
        yield* Layer.build(
          CoordinatorLayers.layerServer().pipe(
            Layer.provideMerge(Layer.unwrapEffect(Effect.map(RegionLayout, (l) => TopicsLayers.layer(l.log)))),
            Layer.provideMerge(Roles.controlTransport),
            Layer.provideMerge(Roles.processSlot("head", 0)),
            Layer.provide(Layer.succeedContext(region))
          )
        )
        const app = yield* Layer.build(
          Roles.coordinatorClient().pipe(
            Layer.provideMerge(Roles.controlTransport),
            Layer.provideMerge(Roles.processSlot("worker")),
            Layer.provide(Layer.succeedContext(region))
          )
        ).pipe(headLostMs(100))
        const coordinator = Context.get(app, Coordinator)
        // An observation window: twice the bound, counted from the join's look at the lease no head holds.
        yield* Effect.sleep("200 millis")
        const members = yield* coordinator.members()
        expect(members.map((m) => m.slot)).toContain(coordinator.self.slot)
      })
  )
})
