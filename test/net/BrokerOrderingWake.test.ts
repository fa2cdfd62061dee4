/**
 * Over a region, a broker's ACK trackers wake only for the rounds that order its own batches.
 * Two brokers as two processes would run them (each with its own doorbell, shared by its
 * Appender and AckTracker) and a live sequencer: the broker's ordering-wait count in its owner
 * line and its doorbell's wake count (the region word a ringer bumps for each wake it pays for)
 * show who is woken, with no clock involved. Each broker doorbell also carries a wait that never
 * ends (as a broker's control-ring readers do), so it is parked between events and any ring of
 * it would be a paid wake.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, type Scope } from "effect"
import * as AckTrackerLayers from "../../src/layers/log/AckTracker.js"
import * as AppenderLayers from "../../src/layers/log/Appender.js"
import { Participant } from "../../src/layers/log/Records.js"
import { LeaseLineView } from "../../src/layers/log/RecordViews.js"
import * as SequencerLayers from "../../src/layers/log/Sequencer.js"
import * as BrokerLayers from "../../src/layers/net/Broker.js"
import { FrameType } from "../../src/layers/net/Frame.js"
import * as CxlMemoryLayers from "../../src/layers/region/CxlMemory.js"
import * as DoorbellLayers from "../../src/layers/region/Doorbell.js"
import { Offsets } from "../../src/layers/region/Superblock.js"
import { AckTracker } from "../../src/services/log/AckTracker.js"
import { Appender } from "../../src/services/log/Appender.js"
import { Topics } from "../../src/services/log/Topics.js"
import { CxlMemory } from "../../src/services/region/CxlMemory.js"
import { Doorbell } from "../../src/services/region/Doorbell.js"
import { bell, regionSize, smallConfig, testRegion, testTopics } from "../fixtures/log-harness.js"
import { batchFrame, hello, openedEpoch, rawConnect } from "../fixtures/net-raw-client.js"
import { uniqueRegion } from "../helpers/Processes.js"

const message = (n: number) => new Uint8Array(24).fill(n & 0xff)

const cluster = Effect.gen(function*() {
  const name = yield* uniqueRegion("ordwake")
  const region = yield* CxlMemoryLayers.make({
    name,
    size: regionSize(smallConfig),
    mode: "create",
    params: testRegion(smallConfig).params
  })
  const area = testRegion(smallConfig).area
  const inRegion = <A, E, R>(make: Effect.Effect<A, E, R>) => make.pipe(Effect.provideService(CxlMemory, region))
  const topics = yield* testTopics(region, area)
  yield* topics.create({ name: "t", order: 5, ackLevel: 1, replicationFactor: 1 })
  /** Broker `b` as its process would be: one doorbell for its Appender and its AckTracker, parked between events. */
  const broker = (b: number) =>
    Effect.gen(function*() {
      const doorbell = yield* inRegion(DoorbellLayers.make({ offset: bell(b), spinMicros: 0 }))
      yield* Effect.forkScoped(doorbell.await(() => false, 600_000))
      const withBell = <A, E>(make: Effect.Effect<A, E, CxlMemory | Doorbell | Scope.Scope>) =>
        inRegion(make.pipe(Effect.provideService(Doorbell, doorbell)))
      const appender = yield* withBell(AppenderLayers.make(area, { brokerId: b }))
      const acks = yield* withBell(AckTrackerLayers.make(area))
      const server = yield* BrokerLayers.make({ insecure: true }).pipe(
        Effect.provideService(Appender, appender),
        Effect.provideService(AckTracker, acks),
        Effect.provideService(Topics, topics)
      )
      const owner = area.brokerOwner(b)
      return {
        port: server.port,
        /** ACK trackers of this broker counted as waiting for its batches to be ordered. */
        orderingWaits: () => Atomics.load(region.i32, (owner + Participant.ackWaits) / 4),
        /** Wakes paid by ringers of this broker's doorbell. */
        wakes: () => Atomics.load(region.i32, bell(b) / 4),
        /** This broker's doorbell is parked (its flag published): a ring of it now pays a wake. */
        parked: () => Atomics.load(region.i32, bell(b) / 4 + 1) === 1
      }
    })
  const quiet = yield* broker(0)
  const busy = yield* broker(1)
  // Holds last long enough that a gap is never fenced during a test (a fence may move any frontier and rings everyone).
  const sequencer = yield* inRegion(
    SequencerLayers.make(area, { holdTimeoutMs: 600_000 }).pipe(
      Effect.provideServiceEffect(Doorbell, inRegion(DoorbellLayers.make({ offset: bell(2), spinMicros: 0 })))
    )
  )
  yield* Effect.forkScoped(sequencer.run)
  /**
   * From now on the head orders every batch (as while a standby takes over): brokers do not order
   * their own (docs/log.md). Once the head has said it is ready (its first round), not to be overwritten.
   */
  const headOrdersAlone = Effect.gen(function*() {
    const lease = new LeaseLineView(region)
    for (let turns = 0; lease.ready(Offsets.sequencerLease) === 0 && turns < 10_000; turns++) {
      yield* Effect.sleep("1 millis")
    }
    expect(lease.ready(Offsets.sequencerLease)).not.toBe(0)
    lease.storeReady(Offsets.sequencerLease, 0)
  })
  return { quiet, busy, headOrdersAlone }
})

/** Session 8 on the busy broker: `batches` batches, each ordered in its own round and acknowledged before the next. */
const busyRounds = (port: number, batches: number) =>
  Effect.gen(function*() {
    const loud = yield* rawConnect(port)
    loud.write(hello("t", 8))
    const epoch = yield* openedEpoch(loud)
    for (let seq = 0; seq < batches; seq++) {
      loud.write(batchFrame(8, epoch, seq, [message(seq)]))
      const ack = yield* loud.nextFrame()
      expect([ack.type, ack.seq]).toEqual([FrameType.ACK, seq + 1])
    }
  })

describe("Broker ACK trackers over a region: woken by their own broker's batches only", () => {
  it.scopedLive("a broker with nothing in flight is not counted as waiting and is not woken while another broker's batches are ordered", () =>
    Effect.gen(function*() {
      const { busy, quiet, headOrdersAlone } = yield* cluster
      // The head's rounds ring the brokers whose batches they order (a broker ordering its own needs no ring).
      yield* headOrdersAlone
      const client = yield* rawConnect(quiet.port)
      client.write(hello("t", 7))
      const epoch = yield* openedEpoch(client)
      client.write(batchFrame(7, epoch, 0, [message(0)]))
      expect((yield* client.nextFrame()).seq).toBe(1)
      // Acknowledged, nothing in flight: off the log's waits.
      expect(quiet.orderingWaits()).toBe(0)
      const [quietWakes, busyWakes] = [quiet.wakes(), busy.wakes()]
      yield* busyRounds(busy.port, 20)
      expect(quiet.orderingWaits()).toBe(0)
      expect(quiet.wakes()).toBe(quietWakes)
      // The other broker was woken for its own batches (the count is live).
      expect(busy.wakes()).toBeGreaterThan(busyWakes)
      // Its next batch is acknowledged as before.
      client.write(batchFrame(7, epoch, 1, [message(1)]))
      const ack = yield* client.nextFrame()
      expect([ack.type, ack.seq]).toEqual([FrameType.ACK, 2])
    }))

  it.scopedLive("a broker with a batch in flight waits for its own batches, and rounds ordering only another broker's do not wake it", () =>
    Effect.gen(function*() {
      const { busy, quiet, headOrdersAlone } = yield* cluster
      // The head orders every round, so the one that orders batch 0 reaches the broker only by its ring
      // (a broker ordering its own round re-checks its waiters itself, paying no wake).
      yield* headOrdersAlone
      const client = yield* rawConnect(quiet.port)
      client.write(hello("t", 7))
      const epoch = yield* openedEpoch(client)
      // Batch 1 before batch 0: held by the sequencer (order 5), so it stays in flight.
      client.write(batchFrame(7, epoch, 1, [message(1)]))
      for (let turns = 0; quiet.orderingWaits() === 0 && turns < 10_000; turns++) yield* Effect.sleep("1 millis")
      expect(quiet.orderingWaits()).toBe(1)
      const quietWakes = quiet.wakes()
      yield* busyRounds(busy.port, 20)
      expect(quiet.wakes()).toBe(quietWakes)
      // Batch 0 lets the round order both: that round wakes the broker, which acknowledges both.
      // The ACK tracker's wait also re-checks at its bounds (within a second), so only a wake the
      // head paid for tells its ring woke it; parked, the broker's doorbell makes the ring pay one.
      for (let turns = 0; !quiet.parked() && turns < 10_000; turns++) yield* Effect.sleep("1 millis")
      expect(quiet.parked()).toBe(true)
      client.write(batchFrame(7, epoch, 0, [message(0)]))
      const ack = yield* client.nextFrame()
      expect([ack.type, ack.seq]).toEqual([FrameType.ACK, 2])
      expect(quiet.wakes()).toBeGreaterThan(quietWakes)
    }))
})
