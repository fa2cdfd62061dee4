/**
 * A standby head taking over an order 2 log, through the bundled CLI (real processes): a
 * session's batch 1 is ordered above a gap (its batch 0 never arrived), then enough other
 * batches to overwrite every GOI entry, then the head is SIGKILLed and the standby takes over.
 * The publisher resends batches 0 and 1 and sends 2: batch 1's copy is a duplicate, so batch 2
 * follows batch 0 directly in the log, and a subscriber connected before the takeover reads
 * both on that same connection (a takeover keeps every connection, docs/guarantees.md). And a
 * gap session that stays quiet: kept past the idle bound, it lapses at the gap bound and its
 * connection is told unknown-session, never a frontier to replay from (docs/log.md, "Sessions
 * with a gap").
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { PROTOCOL_VERSION } from "../../src/layers/net/Control.js"
import { FrameType, frameTypeName } from "../../src/layers/net/Frame.js"
import { Subscribe, subscribeFrame } from "../../src/layers/net/SubscribeFrames.js"
import { batchFrame, errorCode, hello, openedEpoch, type RawClient, rawConnect } from "../fixtures/net-raw-client.js"
import { forkCli, runCli, smallRegionEnv, smallRegionEnvFor } from "../helpers/CliRoles.js"
import { uniqueRegion } from "../helpers/Processes.js"

const text = (s: string) => new TextEncoder().encode(s)

/** Frames until an ACK whose frontier reaches `seq`; any other frame (a fence, an error) fails. */
const awaitAck = (client: RawClient, seq: number) =>
  Effect.gen(function*() {
    for (;;) {
      const frame = yield* client.nextFrame(30_000)
      if (frame.type !== FrameType.ACK) {
        return yield* Effect.fail(new Error(`frame type ${frame.type} instead of an ACK`))
      }
      if (frame.seq >= seq) return frame.seq
    }
  })

describe("a standby head taking over sessions with a gap", () => {
  it.scopedLive(
    "a batch ordered above a gap before the takeover, its GOI entry since overwritten, is not ordered again when resent; the publisher's and a subscriber's connections carry on",
    () =>
      Effect.gen(function*() {
        const region = yield* uniqueRegion("gaptakeover")
        // A GOI of 64 entries: the 200 batches below overwrite it three times.
        const env = { ...smallRegionEnvFor(1, 1 << 20, { goiSlots: 64, pbrSlots: 16 }), CXLOG_REGION: region }
        const head = yield* forkCli(["head", "--topic", "t:2:1"], env)
        yield* head.event("ready")
        const standby = yield* forkCli(["head", "--standby"], env)
        yield* standby.event("standby")
        const broker = yield* forkCli(["broker", "--broker-id", "0", "--port", "0", "--insecure"], env)
        const port = (yield* broker.event("listening"))["port"] as number
        const read = (from: number, limit: number) =>
          Effect.map(runCli(["subscribe", "--topic", "t", "--from", `${from}`, "--limit", `${limit}`], env), (r) => {
            expect(r.code, r.stderr).toBe(0)
            return r.stdout.trim().split("\n")
          })

        const publisher = yield* rawConnect(port)
        publisher.write(hello("t", 5))
        const epoch = yield* openedEpoch(publisher)
        publisher.write(batchFrame(5, epoch, 1, [text("gap-1")]))
        expect(yield* read(0, 1)).toEqual(["0\tgap-1"])
        const other = yield* rawConnect(port)
        other.write(hello("t", 6))
        const otherEpoch = yield* openedEpoch(other)
        other.write(
          Buffer.concat(Array.from({ length: 200 }, (_, seq) => batchFrame(6, otherEpoch, seq, [text(`other-${seq}`)])))
        )
        yield* awaitAck(other, 200)
        // Reading from the end, so what it gets next is what the new head orders.
        const subscriber = yield* rawConnect(port, undefined, 1 << 20)
        subscriber.write(
          subscribeFrame(new Subscribe({ protocol: PROTOCOL_VERSION, topic: "t", from: "latest", credit: 16 }))
        )
        expect(yield* subscriber.nextFrame(30_000)).toMatchObject({ type: FrameType.SUBSCRIBED })

        head.child.kill("SIGKILL")
        yield* head.exited
        expect(yield* standby.event("ready", 30_000)).toMatchObject({ epoch: 2 })
        publisher.write(Buffer.concat([0, 1].map((seq) => batchFrame(5, epoch, seq, [text(`gap-${seq}`)]))))
        publisher.write(batchFrame(5, epoch, 2, [text("end")]))
        expect(yield* awaitAck(publisher, 3)).toBe(3)
        // Batch 2 right after batch 0 (offset 201): a second copy of batch 1 would have put it at 203. Both are still
        // held: the broker's 16-slot PBR reuses slots, but their payloads stay until its Blog needs the bytes.
        expect(yield* read(201, 2)).toEqual(["201\tgap-0", "202\tend"])
        // The subscriber's connection outlived the head: batches 0 and 2 arrive on it, no ERROR before them.
        for (const offset of [201, 202]) {
          const frame = yield* subscriber.nextFrame(30_000)
          expect({ type: frameTypeName(frame.type), offset: frame.seq, error: errorCode(frame) })
            .toEqual({ type: "DATA", offset, error: undefined })
        }
      }),
    120_000
  )

  it.scopedLive(
    "a quiet session with a gap is not fenced at the idle bound; at the gap bound its connection is told unknown-session",
    () =>
      Effect.gen(function*() {
        const region = yield* uniqueRegion("gaplapse")
        const env = { ...smallRegionEnv, CXLOG_REGION: region }
        // Idle bound 200 ms, so the gap bound is 1.2 s.
        const head = yield* forkCli(["head", "--topic", "t:2:1", "--session-idle-ms", "200"], env)
        yield* head.event("ready")
        const broker = yield* forkCli(["broker", "--broker-id", "0", "--port", "0", "--insecure"], env)
        const publisher = yield* rawConnect((yield* broker.event("listening"))["port"] as number)
        publisher.write(hello("t", 5))
        const epoch = yield* openedEpoch(publisher)
        publisher.write(batchFrame(5, epoch, 1, [text("gap-1")]))
        // The first frame the connection gets: no fence at 0 (batch 1 would be replayed), no ACK past the missing batch 0.
        const frame = yield* publisher.nextFrame(30_000)
        expect(errorCode(frame)).toBe("unknown-session")
      }),
    120_000
  )
})
