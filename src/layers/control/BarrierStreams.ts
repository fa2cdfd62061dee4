/**
 * The streams a barrier drains, for the live coordinator and its fake alike: every control
 * ring of the layout, the probe that reads their writers' and readers' lines for the barrier
 * engine, and the arrival a participant sends — with the drain targets it captures from the
 * rings it writes.
 */
import { Effect } from "effect"
import {
  type BarrierArrive,
  type BarrierOptions,
  barrierOptionsProblem,
  type DrainTarget,
  GROUP_ALL,
  InvalidBarrierOptions,
  type Member
} from "../../services/control/Coordinator.js"
import type { RingAddress, RingInspector, RingsShape } from "../../services/control/Rings.js"
import type { Layout } from "../../services/RegionLayout.js"
import type { ProgressProbe } from "./BarrierRounds.js"
import { streamTargetsOf } from "./BarrierStreamRings.js"

const DEFAULT_BARRIER_TIMEOUT_MS = 30_000

/** Every control ring of the layout, by id. */
export const controlRings = (layout: Layout): ReadonlyArray<RingAddress> => [
  ...Array.from({ length: layout.config.control.maxProcesses }, (_, s) => layout.requestRing(s)),
  layout.broadcastRing,
  ...Array.from({ length: layout.config.control.appRings }, (_, k) => layout.appRing(k))
]

/** Reads every control ring's lines straight from where the rings live. */
export const ringProbe = (rings: RingsShape, layout: Layout): Effect.Effect<ProgressProbe> =>
  Effect.gen(function*() {
    const inspectors = new Map<number, RingInspector>()
    for (const address of controlRings(layout)) {
      inspectors.set(address.id, yield* rings.inspect(address).pipe(Effect.orDie))
    }
    const probe: ProgressProbe = {
      writerOccurrence: (ring) => inspectors.get(ring)?.writer().occurrence ?? -1,
      readers: (ring) => (inspectors.get(ring)?.readers() ?? []).filter((r) => r.state === "attached"),
      reader: (ring, slot) => {
        const inspector = inspectors.get(ring)
        if (inspector === undefined || slot < 0 || slot >= inspector.address.readerSlots) return undefined
        const reader = inspector.reader(slot)
        return reader.state === "attached" ? reader : undefined
      },
      isRequestRing: layout.isRequestRing,
      awaitProgress: (ring, target, reached, timeoutMs) => {
        const address = layout.ring(ring)
        return address === undefined
          ? Effect.as(Effect.sleep(timeoutMs), false)
          : rings.awaitProgress(address, target, reached, timeoutMs).pipe(Effect.orDie)
      }
    }
    return probe
  })

/** Inspectors of every ring a participant may write: every control ring but the coordinator's broadcast ring. */
export const participantRings = (rings: RingsShape, layout: Layout): Effect.Effect<ReadonlyArray<RingInspector>> =>
  Effect.forEach(
    controlRings(layout).filter((a) => a.id !== layout.broadcastRing.id),
    (a) => rings.inspect(a).pipe(Effect.orDie)
  )

/** The streams this process writes, at their leading sequences now. */
export const drainTargetsOf = (inspectors: ReadonlyArray<RingInspector>): ReadonlyArray<DrainTarget> =>
  inspectors.flatMap((inspector) => {
    const writer = inspector.writer()
    return writer.pid === process.pid && writer.occurrence > 0 && !writer.closed
      ? [{ ring: inspector.address.id, occurrence: writer.occurrence, sequence: writer.sequence }]
      : []
  })

/** The drain targets of an arrival: the control rings this process writes and, in a fence, the `streams`' rings it writes. */
export const fenceTargets = (
  rings: RingsShape,
  writable: ReadonlyArray<RingInspector>,
  options: BarrierOptions
): Effect.Effect<ReadonlyArray<DrainTarget>> =>
  Effect.suspend(() => {
    const control = drainTargetsOf(writable)
    return options.streams === undefined || options.streams.length === 0 || options.mode === "rendezvous"
      ? Effect.succeed(control)
      : Effect.map(streamTargetsOf(rings, options.streams), (streams) => [...control, ...streams])
  })

/** A barrier call's name and options checked before its targets are captured and anything is sent. */
export const checkBarrier = (name: string, options: BarrierOptions): Effect.Effect<void, InvalidBarrierOptions> => {
  const reason = barrierOptionsProblem(name, options)
  return reason === undefined ? Effect.void : Effect.fail(new InvalidBarrierOptions({ barrier: name, reason }))
}

/** What `self` sends on entering barrier `name` (checked by `checkBarrier`): its drain targets, captured now. */
export const arrival = (
  self: Member,
  name: string,
  options: BarrierOptions,
  drainTargets: ReadonlyArray<DrainTarget>
): BarrierArrive => ({
  barrier: name,
  mode: options.mode,
  group: options.group ?? GROUP_ALL,
  participant: self.slot,
  occurrence: self.occurrence,
  drainTargets,
  timeoutMs: options.timeoutMs ?? DEFAULT_BARRIER_TIMEOUT_MS
})
