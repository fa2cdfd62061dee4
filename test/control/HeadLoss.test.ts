/**
 * When the head (coordinator + sequencer) dies: every role waiting on it fails with a typed
 * error naming it instead of waiting forever, `cxlog run` ends at once naming it, and the
 * region it leaves can be taken over by `cxlog head --attach` (its dead process's ring reader
 * slots reclaimed) with the data it held. Real processes of the bundled CLI.
 */
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Exit, Fiber, Layer, Scope } from "effect"
import { lines, ringLineViews } from "../../src/layers/control/RingLines.js"
import * as LogReaderLayers from "../../src/layers/log/LogReader.js"
import * as CxlMemoryMemoryLayers from "../../src/layers/region/CxlMemoryMemory.js"
import * as DoorbellLayers from "../../src/layers/region/Doorbell.js"
import { Coordinator } from "../../src/services/control/Coordinator.js"
import { CxlMemory } from "../../src/services/region/CxlMemory.js"
import { Doorbell } from "../../src/services/region/Doorbell.js"
import { RegionLayout } from "../../src/services/RegionLayout.js"
import { ipcRegionEnv, memberBase } from "../fixtures/ipc-member.js"
import { bell, regionCluster } from "../fixtures/log-harness.js"
import { childrenOf, forkCli, runCli, smallRegionEnv } from "../helpers/CliRoles.js"
import { uniqueRegion } from "../helpers/Processes.js"
import { laterStartTag, startTagOf } from "../helpers/StartTags.js"

interface Reported {
  readonly _tag: string
  readonly region: string
  readonly pid: number
  readonly epoch: number
  readonly state: string
  readonly lapsedMs: number
  readonly boundMs: number
  readonly waitingFor: string
}

const failureOf = (event: Record<string, unknown>) => event["error"] as Reported

describe("head loss: a LogReader cursor (one process, fake region)", () => {
  it.scopedLive("waits as long as the head holds its lease (a live tail), then fails with HeadUnavailable once the head has released it past the bound", () =>
    Effect.gen(function*() {
      const cluster = yield* regionCluster(CxlMemoryMemoryLayers.makeMemory)()
      const { memory, area } = cluster.region!
      yield* cluster.topics.create({ name: "t", order: 2, ackLevel: 1, replicationFactor: 1 })
      const headScope = yield* Scope.make()
      const sequencer = yield* cluster.sequencer({ leaseMs: 300 }).pipe(Scope.extend(headScope))
      const ordering = yield* Effect.fork(sequencer.run)
      const doorbell = yield* DoorbellLayers.make({ offset: bell(40) }).pipe(Effect.provideService(CxlMemory, memory))
      const reader = yield* LogReaderLayers.make(area, { headLostMs: 200 }).pipe(
        Effect.provideService(CxlMemory, memory),
        Effect.provideService(Doorbell, doorbell)
      )
      const cursor = yield* reader.subscribe("t")

      // Nothing to read while the head renews its lease: the wait just times out, past the bound several times over.
      expect(yield* cursor.awaitMore(1_000)).toBe(false)

      yield* Fiber.interrupt(ordering)
      yield* Scope.close(headScope, Exit.void)
      const lost = yield* Effect.flip(cursor.awaitMore(5_000))
      expect(lost).toMatchObject({
        _tag: "HeadUnavailable",
        pid: process.pid,
        epoch: sequencer.epoch,
        state: "released",
        boundMs: 200
      })
      expect(lost.lapsedMs).toBeGreaterThan(200)
      expect(lost.waitingFor).toContain("topic t: batch 0")
    }))
})

/**
 * A head of `region` (barriers logged), two members of group g, and barrier `name` in flight:
 * a arrived and waits for b, up to 20 s (its call 25 s), until the coordinator logged the arrival.
 */
const barrierInFlight = (region: string, name: string) =>
  Effect.gen(function*() {
    const head = yield* forkCli(["head"], { ...ipcRegionEnv(region), CXLOG_DEBUG_BARRIERS: "true" })
    yield* head.event("ready")
    const member = Effect.map(Layer.build(memberBase(region)), (context) => Context.get(context, Coordinator))
    const [a, b] = [yield* member, yield* member]
    yield* a.joinGroup("g")
    yield* b.joinGroup("g")
    const waiting = yield* Effect.fork(a.barrier(name, { mode: "rendezvous", group: "g", timeoutMs: 20_000 }))
    while (!head.output().includes(`name=${name}`)) yield* Effect.sleep("20 millis")
    return { head, b, waiting }
  })

describe("head loss (bundled CLI, real processes)", () => {
  it.scopedLive(
    "a SIGKILLed head: a subscriber waiting for the next batch and a broker fail with HeadUnavailable naming it",
    () =>
      Effect.gen(function*() {
        const region = yield* uniqueRegion("headloss")
        const env = { ...smallRegionEnv, CXLOG_REGION: region, CXLOG_HEAD_LOST_MS: "1000" }
        const head = yield* forkCli(["head", "--topic", "t:5:1"], env)
        const ready = yield* head.event("ready")
        const broker = yield* forkCli(["broker", "--broker-id", "0", "--port", "0"], env)
        yield* broker.event("listening")
        const subscriber = yield* forkCli(["subscribe", "--topic", "t"], env)
        yield* subscriber.event("subscribed")

        head.child.kill("SIGKILL")
        const read = failureOf(yield* subscriber.event("failed"))
        expect(read).toMatchObject({
          _tag: "HeadUnavailable",
          region,
          pid: head.pid,
          epoch: ready["epoch"],
          state: "exited",
          boundMs: 1000
        })
        expect(read.lapsedMs).toBeGreaterThan(1000)
        expect(read.waitingFor).toContain("topic t: batch 0")
        expect((yield* subscriber.exited).code).toBe(1)

        const served = failureOf(yield* broker.event("failed"))
        expect(served).toMatchObject({ _tag: "HeadUnavailable", region, pid: head.pid, state: "exited" })
        expect(served.waitingFor).toContain("broker 0")
        expect((yield* broker.exited).code).toBe(1)
      }),
    60_000
  )

  it.scopedLive(
    "a barrier waiting when its head is SIGKILLed ends within a look, CoordinatorUnavailable naming the coordinator, not at its call's bound (its timeout and 5 s)",
    () =>
      Effect.gen(function*() {
        const { b, head, waiting } = yield* barrierInFlight(yield* uniqueRegion("headloss-barrier"), "tb")
        head.child.kill("SIGKILL")
        const killedAt = Date.now()
        const ended = yield* Effect.flip(Fiber.join(waiting)).pipe(Effect.timeout("10 seconds"))
        expect(Date.now() - killedAt).toBeLessThan(3_000)
        expect(ended).toMatchObject({ _tag: "CoordinatorUnavailable" })
        expect(ended.message).toContain(`(pid ${head.pid}) is gone while barrier tb was in flight`)
        // Entered with the head gone: the same within its 3 s (it took 8 s: the call's bound).
        const enteredAt = Date.now()
        const late = yield* Effect.flip(b.barrier("tb", { mode: "rendezvous", group: "g", timeoutMs: 3_000 })).pipe(
          Effect.timeout("10 seconds")
        )
        expect(Date.now() - enteredAt).toBeLessThan(3_000)
        expect(late).toMatchObject({ _tag: "CoordinatorUnavailable" })
      }),
    60_000
  )

  it.scopedLive(
    "a barrier waiting while the broadcast ring's writer line names the head's pid under another start tag (a dead coordinator's pid taken by a later process) ends within a look, naming it gone",
    () =>
      Effect.gen(function*() {
        const region = yield* uniqueRegion("headloss-reused")
        const { head, waiting } = yield* barrierInFlight(region, "tr")
        const base = yield* Layer.build(memberBase(region))
        // The head stands still (it runs on, but writes nothing meanwhile) while its line reads as a later
        // process's under its pid: what a coordinator's line reads once it died and its pid went to another.
        process.kill(head.pid, "SIGSTOP")
        const { control } = ringLineViews(Context.get(base, CxlMemory))
        const at = lines(Context.get(base, RegionLayout).broadcastRing).control
        const own = control.writer(at)
        expect(own).toEqual({ pid: head.pid, start: startTagOf(head.pid) })
        yield* Effect.addFinalizer(() =>
          Effect.sync(() => {
            control.swapWriter(at, control.writer(at), own.pid, own.start)
            process.kill(head.pid, "SIGCONT")
          })
        )
        expect(control.swapWriter(at, own, head.pid, laterStartTag(own.start))).toBe(true)
        const swappedAt = Date.now()
        const ended = yield* Effect.flip(Fiber.join(waiting)).pipe(Effect.timeout("10 seconds"))
        // Within a look of the watch, not at the barrier's 20 s.
        expect(Date.now() - swappedAt).toBeLessThan(3_000)
        expect(ended).toMatchObject({ _tag: "CoordinatorUnavailable" })
        expect(ended.message).toContain(`(pid ${head.pid}) is gone while barrier tr was in flight`)
      }),
    60_000
  )

  it.scopedLive(
    "cxlog run whose head is SIGKILLed ends at once with RoleFailed naming the head's pid and what the run waited for",
    () =>
      Effect.gen(function*() {
        let headPid = 0
        const { code, stdout, stderr } = yield* runCli(
          ["run", "--bytes", "4GiB", "--broker-count", "1", "--json"],
          {},
          (run) => {
            // Mid-run: once the publisher is started, the head dies.
            const poll = setInterval(() => {
              if (childrenOf(run.pid!, "publish").length === 0) return
              clearInterval(poll)
              headPid = childrenOf(run.pid!, "head")[0] ?? 0
              if (headPid > 0) process.kill(headPid, "SIGKILL")
            }, 50)
            run.once("exit", () => clearInterval(poll))
          }
        )
        expect(headPid).toBeGreaterThan(0)
        expect(code).toBe(1)
        // The runtime logs the failure (on stdout or stderr, depending on the logger).
        expect(stdout + stderr).toMatch(
          new RegExp(
            `cxlog run: head \\(pid ${headPid}\\) failed: exited with SIGKILL while the run waited for the publisher to finish`
          )
        )
      }),
    120_000
  )

  it.scopedLive(
    "the region of a SIGKILLed head: cxlog head says how to attach or remove it (never rm), and --attach takes it over with its data",
    () =>
      Effect.gen(function*() {
        const region = yield* uniqueRegion("attach")
        const env = { ...smallRegionEnv, CXLOG_REGION: region }
        const first = yield* forkCli(["head", "--topic", "t:5:1"], env)
        expect((yield* first.event("ready"))["epoch"]).toBe(1)
        const broker = yield* forkCli(["broker", "--broker-id", "0", "--port", "0"], env)
        const port = (yield* broker.event("listening"))["port"] as number
        const publisher = yield* forkCli([
          "publish",
          "--brokers",
          `127.0.0.1:${port}`,
          "--topic",
          "t",
          "--count",
          "10",
          "--message-bytes",
          "64"
        ], env)
        yield* publisher.event("done")
        // The whole node crashes: head and broker.
        first.child.kill("SIGKILL")
        broker.child.kill("SIGKILL")
        yield* first.exited
        yield* broker.exited

        const again = yield* runCli(["head", "--topic", "t:5:1"], env)
        expect(again.code).toBe(1)
        const said = again.stdout + again.stderr
        expect(said).toMatch(/^cxlog head: a region named /m)
        expect(said).toContain(`holds 10 ordered messages (t: 10); its head (pid ${first.pid}) is gone`)
        expect(said).toContain("--attach")
        expect(said).toContain(`cxlog regions --remove ${region}`)
        expect(said).not.toContain("rm /dev/shm")

        // Process slot 0 and the dead head's reader slots (its reply slot on the broadcast ring) are reclaimed.
        const attached = yield* forkCli(["head", "--attach", "--topic", "t:5:1"], env)
        expect((yield* attached.event("ready"))["epoch"]).toBe(2)
        const rejoined = yield* forkCli(["broker", "--broker-id", "0", "--port", "0"], env)
        yield* rejoined.event("listening")
        const reader = yield* forkCli(["subscribe", "--topic", "t", "--limit", "10", "--idle-timeout-ms", "10000"], env)
        expect(yield* reader.event("done")).toMatchObject({ messages: 10 })
      }),
    90_000
  )
})
