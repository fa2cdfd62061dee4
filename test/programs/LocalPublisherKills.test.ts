/**
 * A local publisher (`cxlog publish --local`: appends into the region itself, in a broker slot
 * of its own) SIGKILLed at random points of its stream, beside a TCP publisher on the same topic
 * (order 5), and started again each time. Each restart needs the slot the dead one held (the
 * region has one broker slot and one for a local publisher), so it proves that slot is freed
 * as a dead broker's is; the log read back proves nothing the dead ones appended was ordered
 * twice or out of order, that every message a killed one had acknowledged is in it (each says
 * every acknowledgement as it comes: `--report-acks`), and that the publishers that finished
 * have every message in it.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { type CliRole, forkCli, runCli, smallRegionEnvFor } from "../helpers/CliRoles.js"
import { uniqueRegion } from "../helpers/Processes.js"

const KILLS = 5
const TCP_MESSAGES = 20_000
const LAST_MESSAGES = 3_000
const MESSAGE_BYTES = 64

/** (publisher index, seq) of each message read back, in offset order (the stamp in its first 8 bytes: src/programs/run/Audit.ts). */
const stampsOf = (lines: ReadonlyArray<string>) =>
  lines.map((line) => {
    const { payloadBase64, payload } = JSON.parse(line) as { payloadBase64?: string; payload?: string }
    const bytes = payloadBase64 === undefined ? Buffer.from(payload ?? "") : Buffer.from(payloadBase64, "base64")
    return { publisher: bytes.readUInt32LE(0), seq: bytes.readUInt32LE(4) }
  })

describe("a local publisher SIGKILLed at random points, beside a TCP publisher", () => {
  it.scopedLive(
    `${KILLS} kills and restarts: each restart takes the dead one's slot; nothing acknowledged lost, nothing twice, each stream in publish order, the finished ones whole`,
    () =>
      Effect.gen(function*() {
        const region = yield* uniqueRegion("local-kills")
        const env = {
          // Broker 0, and one slot for a local publisher: a restart gets it only if the dead one's was freed.
          ...smallRegionEnvFor(2, 16 << 20, { goiSlots: 1 << 16 }),
          CXLOG_REGION: region
        }
        const head = yield* forkCli(["head", "--topic", "t:5:1"], env)
        yield* head.event("ready")
        const broker = yield* forkCli(["broker", "--broker-id", "0", "--port", "0"], env)
        const port = (yield* broker.event("listening"))["port"] as number
        const publish = (
          index: number,
          count: number,
          where: ReadonlyArray<string>
        ) => [
          "publish",
          ...where,
          "--topic",
          "t",
          "--count",
          `${count}`,
          "--message-bytes",
          `${MESSAGE_BYTES}`,
          "--publisher-index",
          `${index}`
        ]
        const tcp = yield* Effect.fork(runCli(publish(0, TCP_MESSAGES, ["--brokers", `127.0.0.1:${port}`]), env))
        /** Per killed publisher: the messages (its seqs) it said were acknowledged, each as its ACK came, before it died. */
        const ackedBeforeKill = new Map<number, Array<number>>()
        const ackedOf = (role: CliRole) =>
          role.events("acked").flatMap((e) =>
            Array.from({ length: e["count"] as number }, (_, i) => (e["from"] as number) + i)
          )
        for (let k = 1; k <= KILLS; k++) {
          // Far more than it publishes before the kill (at 1 MB/s: ~16 000 messages a second), so it dies mid-stream.
          const local = yield* forkCli(
            [...publish(k, 10_000_000, ["--local"]), "--rate-mbps", "1", "--report-acks"],
            env
          )
          // Once its first batch is acknowledged, at a random point after.
          yield* local.event("acked", 30_000)
          yield* Effect.sleep(Math.floor(Math.random() * 300))
          local.child.kill("SIGKILL")
          // What it said before it died (one still in its own buffers at the kill is not counted: everything counted was acknowledged).
          yield* local.exited
          ackedBeforeKill.set(k, ackedOf(local))
        }
        const last = yield* runCli(publish(KILLS + 1, LAST_MESSAGES, ["--local"]), env)
        expect(last.code, last.stderr).toBe(0)
        const tcpRun = yield* Fiber.join(tcp)
        expect(tcpRun.code, tcpRun.stderr).toBe(0)

        // Everything ordered so far (the head reports its count), read back from offset 0. How many that is
        // depends on what the killed ones had committed, so the count is taken once it stood still over a
        // window of a second (a window, not a wait: nothing more may be ordered in it).
        const orderedNow = () => (head.latest("ordered")?.["ordered"] as Record<string, number> | undefined)?.["t"] ?? 0
        let ordered = -1
        for (let waitedMs = 0; orderedNow() !== ordered || ordered < TCP_MESSAGES + LAST_MESSAGES; waitedMs += 1_000) {
          expect(waitedMs, "the head's ordered count to settle").toBeLessThan(30_000)
          ordered = orderedNow()
          yield* Effect.sleep(1_000)
        }
        const read = yield* runCli([
          "subscribe",
          "--topic",
          "t",
          "--format",
          "json",
          "--from",
          "0",
          "--limit",
          `${ordered}`
        ], env)
        expect(read.code, read.stderr).toBe(0)
        const stamps = stampsOf(read.stdout.trim().split("\n"))
        expect(stamps).toHaveLength(ordered)
        const seqs = new Map<number, Array<number>>()
        for (const { publisher, seq } of stamps) {
          const of = seqs.get(publisher) ?? []
          of.push(seq)
          seqs.set(publisher, of)
        }
        expect([...seqs.keys()].sort((a, b) => a - b)).toEqual(Array.from({ length: KILLS + 2 }, (_, i) => i))
        for (const [publisher, of] of seqs) {
          // Each stream in publish order with nothing twice and no hole: what a killed one left
          // unfinished (a batch half written, one above its gap) is never ordered.
          expect(of, `publisher ${publisher}`).toEqual(Array.from({ length: of.length }, (_, i) => i))
        }
        // Nothing a killed one had acknowledged is missing: each message it said was acknowledged is in the log.
        for (const [publisher, acked] of ackedBeforeKill) {
          expect(acked.length, `publisher ${publisher}'s acknowledgements`).toBeGreaterThan(0)
          const inLog = new Set(seqs.get(publisher))
          expect(acked.filter((seq) => !inLog.has(seq)), `publisher ${publisher}: acknowledged but not in the log`)
            .toEqual([])
        }
        expect(seqs.get(0)).toHaveLength(TCP_MESSAGES)
        expect(seqs.get(KILLS + 1)).toHaveLength(LAST_MESSAGES)
      }),
    240_000
  )
})
