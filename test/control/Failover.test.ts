/**
 * Head failover (bundled CLI, real processes): standby heads take over the sequencer and the
 * coordinator when the active head is SIGKILLed under load (the run's audit passes, per-client
 * FIFO in mode 5 included); a head SIGSTOPped past its lease and continued finds itself fenced
 * and exits having written nothing (checked in the region: which epoch finished each GOI
 * entry's PBR slot); a barrier in flight at the takeover fails with a typed error at once.
 * A takeover after a SIGKILL does not wait for the lease to lapse: the standby sees the head's
 * process gone (shown under a lease far longer than the test waits). How fast a takeover is
 * belongs to `npm run stress:failover` and its goal, not to these tests.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { spawn } from "node:child_process"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { goiEntryOffset, pbrSlotOffset } from "../../src/layers/log/Layout.js"
import { GoiEntryView, OrderLineView, PbrSlotView } from "../../src/layers/log/RecordViews.js"
import { listTopics } from "../../src/layers/log/TopicDescriptors.js"
import { readLane } from "../../src/layers/log/TopicLanes.js"
import { RegionLayout } from "../../src/layers/RegionLayout.js"
import { attachRegion } from "../../src/layers/Roles.js"
import { CxlMemory } from "../../src/services/region/CxlMemory.js"
import { forkCli, runCli, smallRegionEnv, smallRegionEnvFor } from "../helpers/CliRoles.js"
import { spawnFixture, uniqueRegion } from "../helpers/Processes.js"

interface Summary {
  readonly takeoverMs: number | null
  readonly takeoverEpoch: number | null
  readonly auditPassed: boolean
  readonly messages: number
  readonly received: number
  readonly lost: number
  readonly duplicated: number
  readonly outOfOrder: number
  readonly crcMismatches: number
  readonly order: number
  readonly ackLevel: number
  readonly durable: { readonly fsyncs: number; readonly bytesPerFsync: number } | null
}

const runKillHead = (standbys: number, extra: ReadonlyArray<string> = []) =>
  Effect.gen(function*() {
    const { code, stdout, stderr } = yield* runCli([
      "run",
      "--kill-head",
      "--standby",
      `${standbys}`,
      "--bytes",
      "32MiB",
      "--broker-count",
      "2",
      "--json",
      ...extra
    ])
    expect(code, stdout + stderr).toBe(0)
    return JSON.parse(stdout.trim().split("\n").at(-1)!) as Summary
  })

/** For every GOI entry of the run's topic whose PBR slot still holds its batch: the epoch of the head that finished that slot, in GOI order. */
const orderingEpochs = (region: string) =>
  Effect.gen(function*() {
    const memory = yield* CxlMemory
    const { log: area } = yield* RegionLayout
    const [topic] = listTopics(memory, area)
    const t = topic!.id
    const goi = new GoiEntryView(memory)
    const pbr = new PbrSlotView(memory)
    const committed = new OrderLineView(memory).committed(area.orderLine(t))
    const epochs: Array<number> = []
    for (let g = 0; g < committed; g++) {
      const e = goiEntryOffset(area, t, g)
      if (!goi.holds(e, g) || readLane(memory, area, t, goi.brokerId(e)) <= 0) continue
      const slot = pbrSlotOffset(area, t, goi.brokerId(e), goi.pbrSeq(e))
      if (pbr.pbrSeq(slot) === goi.pbrSeq(e)) epochs.push(pbr.orderedEpoch(slot))
    }
    return { epochs, orderLineEpoch: new OrderLineView(memory).epoch(area.orderLine(t)) }
  }).pipe(Effect.scoped, Effect.provide(Layer.fresh(attachRegion({ name: region }))))

const stressScript = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "scripts", "stress-failover.mjs")

/** `npm run stress:failover` once (its speed goal off: that is for the stress runs, not CI); its JSON summary. */
const stressOnce = Effect.async<{ code: number | null; output: string }>((resume) => {
  const child = spawn(process.execPath, [stressScript, "--runs", "1", "--bytes", "32MiB", "--no-goal"], {
    stdio: ["ignore", "pipe", "pipe"]
  })
  let output = ""
  child.stdout.on("data", (c: Buffer) => (output += c.toString()))
  child.stderr.on("data", (c: Buffer) => (output += c.toString()))
  child.on("exit", (code) => resume(Effect.succeed({ code, output })))
  return Effect.sync(() => child.kill("SIGKILL"))
})

describe("head failover (bundled CLI, real processes)", () => {
  it.scopedLive(
    "npm run stress:failover, one run: cxlog run --kill-head (1 standby) — the standby takes over mid-run, the audit passes",
    () =>
      Effect.gen(function*() {
        const { code, output } = yield* stressOnce
        expect(code, output).toBe(0)
        const summary = JSON.parse(output.trim().split("\n").at(-1)!)
        expect(summary).toMatchObject({ stress: "failover", runs: 1, failed: 0, auditsPassed: 1 })
        // It took over: the run awaits the standby's first GOI entry after the kill (and fails without one).
        expect(summary.takeoverMs.all[0]).toBeGreaterThan(0)
        expect(output).toContain("epoch 2), lost 0, duplicated 0, out of order 0, audit passed")
      }),
    120_000
  )

  it.scopedLive(
    "cxlog run --kill-head --standby 2: exactly one of two standbys takes over mid-run, the audit passes (mode 5, per-client FIFO)",
    () =>
      Effect.gen(function*() {
        const summary = yield* runKillHead(2)
        expect(summary).toMatchObject({
          order: 5,
          auditPassed: true,
          lost: 0,
          duplicated: 0,
          outOfOrder: 0,
          crcMismatches: 0
        })
        expect(summary.received).toBe(summary.messages)
        // One standby won the lease: one epoch past the killed head's.
        expect(summary.takeoverEpoch).toBe(2)
        // It took over: the run awaits the standby's first GOI entry after the kill (and fails without one).
        expect(summary.takeoverMs).toBeGreaterThan(0)
      }),
    120_000
  )

  it.scopedLive(
    "cxlog run --ack 2 --kill-head: the standby's durable tier carries the topic's copy on disk on, every message is acked at level 2, the audit passes",
    () =>
      Effect.gen(function*() {
        const summary = yield* runKillHead(1, ["--ack", "2"])
        expect(summary).toMatchObject({
          order: 5,
          ackLevel: 2,
          auditPassed: true,
          lost: 0,
          duplicated: 0,
          outOfOrder: 0,
          crcMismatches: 0,
          takeoverEpoch: 2
        })
        expect(summary.received).toBe(summary.messages)
        // Both heads' fdatasyncs: the killed one's last report and the standby's, which took the stream over.
        expect(summary.durable?.fsyncs).toBeGreaterThan(0)
        expect(summary.durable?.bytesPerFsync).toBeGreaterThan(0)
      }),
    120_000
  )

  it.scopedLive(
    "a head SIGSTOPped past its lease is fenced: the standby takes over, the old head continued exits having written nothing",
    () =>
      Effect.gen(function*() {
        const region = yield* uniqueRegion("fence")
        const messages = 4_000
        const env = {
          // Every batch of the run keeps its PBR slot and GOI entry (a lane of 8 MiB holds 4096 of each), so the region shows who ordered each.
          ...smallRegionEnvFor(1, 8 << 20, { pbrSlots: 16384, goiSlots: 16384 }),
          CXLOG_REGION: region,
          // Long enough that a loaded machine's stall is no takeover; the stop outlasts it.
          CXLOG_SEQUENCER_LEASE_MS: "1500"
        }
        const head = yield* forkCli(["head", "--topic", "t:5:1"], env)
        expect((yield* head.event("ready"))["epoch"]).toBe(1)
        const standby = yield* forkCli(["head", "--standby", "--standby-check-ms", "50"], env)
        yield* standby.event("standby")
        const broker = yield* forkCli(["broker", "--broker-id", "0", "--port", "0"], env)
        const port = (yield* broker.event("listening"))["port"] as number
        const subscriber = yield* forkCli(
          [
            "subscribe",
            "--topic",
            "t",
            "--audit-publishers",
            "1",
            "--audit-messages",
            `${messages}`,
            "--idle-timeout-ms",
            "30000"
          ],
          env
        )
        yield* subscriber.event("subscribed")
        // About 8 s of load: before, during and after the stop.
        const publisher = yield* forkCli(
          [
            "publish",
            "--brokers",
            `127.0.0.1:${port}`,
            "--topic",
            "t",
            "--count",
            `${messages}`,
            "--message-bytes",
            "128",
            "--rate-mbps",
            "0.064"
          ],
          env
        )
        // This head orders some of it before it stops: the publisher has ACKs (its first report comes at once, and a fixed
        // 500 ms after it left a loaded machine's head with nothing ordered, so no entry of epoch 1 to find).
        const acked = () => (publisher.latest("progress")?.["ackedMessages"] as number | undefined) ?? 0
        for (let polls = 0; acked() === 0; polls++) {
          if (polls === 3_000) return yield* Effect.fail(new Error(`no ACK within 60 s: ${publisher.output()}`))
          yield* Effect.sleep("20 millis")
        }
        expect(head.child.exitCode).toBe(null)

        head.child.kill("SIGSTOP")
        // The standby takes over once the lease lapses, unless the head stopped inside a round: then it waits for that
        // round, which only the continued head can end, and says so. The head stays stopped until one or the other (a
        // fixed 5 s let a loaded machine continue it before the standby had claimed the lease: no takeover at all).
        const waitsForRound = () => /stopped inside a round/.test(standby.output())
        for (let polls = 0; standby.latest("firstOrdered") === undefined && !waitsForRound(); polls++) {
          if (polls === 3_000) {
            return yield* Effect.fail(
              new Error(`the standby neither took over nor waited for a round in 60 s: ${standby.output()}`)
            )
          }
          yield* Effect.sleep("20 millis")
        }
        head.child.kill("SIGCONT")
        expect((yield* standby.event("ready"))["epoch"]).toBe(2)

        yield* publisher.event("done", 60_000)
        const audited = yield* subscriber.event("done", 60_000)
        expect(audited["audit"]).toMatchObject({ passed: true, lost: 0, duplicated: 0, outOfOrder: 0 })

        // In GOI order: the first head's entries, then only the standby's; the frontier is the standby's.
        const { epochs, orderLineEpoch } = yield* orderingEpochs(region)
        expect(epochs.length).toBeGreaterThan(0)
        const firstOfNew = epochs.indexOf(2)
        expect(firstOfNew).toBeGreaterThan(0)
        expect(epochs.slice(0, firstOfNew).every((e) => e === 1)).toBe(true)
        expect(epochs.slice(firstOfNew).every((e) => e === 2)).toBe(true)
        expect(orderLineEpoch).toBe(2)

        // The continued head found itself fenced and exited at once, without finalizers.
        const exit = yield* head.exited.pipe(Effect.timeoutFail({
          duration: 10_000,
          onTimeout: () => new Error(`the fenced head still runs: ${head.output()}`)
        }))
        expect(exit.code, head.output()).toBe(3)
        expect(head.output()).toContain("exiting without writing")
      }),
    120_000
  )

  it.scopedLive(
    "a standby started before its head waits for the region and for the head to start; --attach on the live head is HeadActive; the standby takes over when the head is SIGKILLed, without waiting for its lease",
    () =>
      Effect.gen(function*() {
        const region = yield* uniqueRegion("early")
        // A lease far longer than the test waits for the takeover: only the head's process being gone lets the standby in.
        const env = { ...smallRegionEnv, CXLOG_REGION: region, CXLOG_SEQUENCER_LEASE_MS: "600000" }
        const standby = yield* forkCli(["head", "--standby"], env)
        yield* standby.event("standby")
        // The scenario's pace: the standby looks for the region a few times before the head makes it.
        yield* Effect.sleep("300 millis")
        const head = yield* forkCli(["head", "--topic", "t:5:1"], env)
        expect((yield* head.event("ready"))["epoch"]).toBe(1)
        // --attach is for a region whose head is gone: this one is live and owns its lease.
        const attach = yield* runCli(["head", "--attach", "--topic", "t:5:1"], env)
        expect(attach.code).toBe(1)
        expect(attach.stdout + attach.stderr).toContain(
          `is served by a live head (pid ${head.pid}) that holds the sequencer lease`
        )
        expect(attach.stdout + attach.stderr).toContain("--standby")
        head.child.kill("SIGKILL")
        expect(yield* standby.event("ready", 60_000)).toMatchObject({ epoch: 2, pid: standby.pid })
      }),
    120_000
  )

  it.scopedLive(
    "a barrier in flight when the head dies fails with CoordinatorUnavailable as it dies (within a look), well before its timeout and the takeover",
    () =>
      Effect.gen(function*() {
        const region = yield* uniqueRegion("fobarrier")
        const env = { ...smallRegionEnv, CXLOG_REGION: region, CXLOG_DEBUG_BARRIERS: "true" }
        const head = yield* forkCli(["head", "--topic", "t:5:1"], env)
        yield* head.event("ready")
        const standby = yield* forkCli(["head", "--standby"], env)
        yield* standby.event("standby")
        const sleeper = yield* spawnFixture("coord-node", ["sleeper", region, "2"])
        const survivor = yield* spawnFixture("coord-node", ["survivor", region, "2"])
        yield* sleeper.next()
        // The coordinator logs the survivor's arrival (debug barriers): the barrier is in flight.
        while (!head.output().includes("name=stuck")) yield* Effect.sleep("20 millis")

        head.child.kill("SIGKILL")
        yield* standby.event("ready")
        // Its log lines (the re-join) come first on stdout; the result is its last line.
        let result: { result?: boolean; outcome?: { error?: string; message?: string } } = {}
        while (result.result !== true) result = yield* survivor.next(15_000)
        expect(result.outcome?.error).toBe("CoordinatorUnavailable")
        expect(result.outcome?.message).toContain(`(pid ${head.pid}) is gone while barrier stuck was in flight`)
      }),
    60_000
  )
})
