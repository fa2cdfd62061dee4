/**
 * Rings outside the control layout that a fence drains (a channel's writer rings, named by a
 * participant's drain targets): the participant's targets on them, and the coordinator's probe
 * extended to read them. Their own ids may be any control ring's too, so the probe knows each
 * under an id of its own, above every control ring's, and an arrival's targets on them are
 * renumbered to it before the engine sees them (`admit`).
 */
import { Effect } from "effect"
import type { BarrierArrive, DrainTarget, FenceStream, StreamRing } from "../../services/control/Coordinator.js"
import type { RingAddress, RingInspector, RingsShape } from "../../services/control/Rings.js"
import type { ProgressProbe } from "./BarrierRounds.js"

/** The probe's ids of stream rings start here: above any control ring's id. */
const STREAM_RING_IDS_FROM = 2 ** 31

/** This process's drain targets on `streams`: each of their rings it writes, at its leading sequence now. */
export const streamTargetsOf = (
  rings: RingsShape,
  streams: ReadonlyArray<FenceStream>
): Effect.Effect<ReadonlyArray<DrainTarget>> =>
  Effect.map(
    Effect.forEach(streams, ({ name, rings: addresses }) =>
      Effect.forEach(addresses, (address) =>
        rings.inspect(address).pipe(
          Effect.map((inspector): ReadonlyArray<DrainTarget> => {
            const writer = inspector.writer()
            return writer.pid === process.pid && writer.occurrence > 0 && !writer.closed
              ? [{
                ring: address.id,
                occurrence: writer.occurrence,
                sequence: writer.sequence,
                stream: { name, offset: address.offset, dataBytes: address.dataBytes, readerSlots: address.readerSlots }
              }]
              : []
          }),
          // A ring that cannot be read is none this process writes.
          Effect.orElseSucceed(() => [])
        ))),
    (perStream) =>
      perStream.flat(2)
  )

export interface StreamProbe {
  /** The control rings' probe, reading the stream rings admitted so far too. */
  readonly probe: ProgressProbe
  /** The arrival with its stream targets under the probe's ids, their rings inspected first (a ring that cannot be read drops its target, logged). */
  readonly admit: (arrive: BarrierArrive) => Effect.Effect<BarrierArrive>
}

const keyOf = (s: StreamRing, ring: number) => `${s.name}\0${ring}\0${s.offset}\0${s.dataBytes}\0${s.readerSlots}`

export const withStreamRings = (rings: RingsShape, base: ProgressProbe): StreamProbe => {
  const ids = new Map<string, number>()
  const streams = new Map<number, { readonly address: RingAddress; readonly inspector: RingInspector }>()
  const idOf = (target: DrainTarget & { readonly stream: StreamRing }) =>
    Effect.suspend(() => {
      const key = keyOf(target.stream, target.ring)
      const known = ids.get(key)
      if (known !== undefined) return Effect.succeed(known)
      const { dataBytes, offset, readerSlots } = target.stream
      const address: RingAddress = { id: target.ring, offset, dataBytes, readerSlots }
      return Effect.map(rings.inspect(address), (inspector) => {
        const id = STREAM_RING_IDS_FROM + ids.size
        ids.set(key, id)
        streams.set(id, { address, inspector })
        return id
      })
    })
  const attached = (inspector: RingInspector) => inspector.readers().filter((r) => r.state === "attached")
  const probe: ProgressProbe = {
    writerOccurrence: (ring) =>
      ring < STREAM_RING_IDS_FROM
        ? base.writerOccurrence(ring)
        : streams.get(ring)?.inspector.writer().occurrence ?? -1,
    readers: (ring) => {
      if (ring < STREAM_RING_IDS_FROM) return base.readers(ring)
      const stream = streams.get(ring)
      return stream === undefined ? [] : attached(stream.inspector)
    },
    reader: (ring, slot) => {
      if (ring < STREAM_RING_IDS_FROM) {
        return base.reader !== undefined ? base.reader(ring, slot) : base.readers(ring).find((r) => r.slot === slot)
      }
      const stream = streams.get(ring)
      if (stream === undefined || slot < 0 || slot >= stream.address.readerSlots) return undefined
      const reader = stream.inspector.reader(slot)
      return reader.state === "attached" ? reader : undefined
    },
    // A stream ring is read by the group's processes, never by the coordinator alone.
    isRequestRing: (ring) => ring < STREAM_RING_IDS_FROM && base.isRequestRing(ring),
    awaitProgress: (ring, target, reached, timeoutMs) => {
      if (ring < STREAM_RING_IDS_FROM) {
        return base.awaitProgress !== undefined
          ? base.awaitProgress(ring, target, reached, timeoutMs)
          : Effect.as(Effect.sleep(Math.min(timeoutMs, 1)), reached())
      }
      const stream = streams.get(ring)
      return stream === undefined
        ? Effect.as(Effect.sleep(timeoutMs), false)
        : rings.awaitProgress(stream.address, target, reached, timeoutMs).pipe(Effect.orDie)
    }
  }
  const admit = (arrive: BarrierArrive): Effect.Effect<BarrierArrive> =>
    Effect.map(
      Effect.forEach(arrive.drainTargets, (target): Effect.Effect<ReadonlyArray<DrainTarget>> => {
        const { stream } = target
        if (stream === undefined) return Effect.succeed([target])
        return idOf({ ...target, stream }).pipe(
          Effect.map((ring) => [{ ring, occurrence: target.occurrence, sequence: target.sequence }]),
          Effect.catchAll((e) =>
            Effect.as(
              Effect.logWarning(
                `[barrier] name=${arrive.barrier} stream=${stream.name} ring=${target.ring} not drained: ${e.message}`
              ),
              []
            )
          )
        )
      }),
      (targets) => ({ ...arrive, drainTargets: targets.flat() })
    )
  return { probe, admit }
}
