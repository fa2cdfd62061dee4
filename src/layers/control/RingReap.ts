/** Looking at a ring from outside (`inspector`) and freeing the reader slots of processes that are gone. */
import type { ReaderProgress, RingInspector } from "../../services/control/Rings.js"
import type { CxlMemoryShape } from "../../services/region/CxlMemory.js"
import type { DoorbellShape } from "../../services/region/Doorbell.js"
import { isPidAlive, isProcessAlive } from "../region/ProcessInfo.js"
import { type Lines, ringLineViews, validBell } from "./RingLines.js"
import { attachedOf, claimerOf, FREE, isAttached, isClaim, OBSERVING, stateName } from "./RingSlotStates.js"

export const inspector = (region: CxlMemoryShape, l: Lines): RingInspector => {
  const { control, reader: readerLine } = ringLineViews(region)
  const reader = (slot: number): ReaderProgress => {
    if (!Number.isInteger(slot) || slot < 0 || slot >= l.address.readerSlots) {
      throw new RangeError(`ring ${l.address.id} has no reader slot ${slot}`)
    }
    const line = l.line(slot)
    const state = readerLine.state(line)
    return {
      slot,
      state: stateName(state),
      occurrence: readerLine.occurrence(line),
      pid: isClaim(state) ? claimerOf(state) : readerLine.pid(line),
      start: isClaim(state) ? 0 : readerLine.start(line),
      delivered: readerLine.delivered(line),
      processed: readerLine.processed(line),
      heartbeatMs: readerLine.heartbeatMs(line)
    }
  }
  return {
    address: l.address,
    writer: () => {
      const owner = control.writer(l.control)
      return {
        sequence: control.head(l.control),
        occurrence: control.occurrence(l.control),
        pid: owner.pid,
        start: owner.start,
        closed: control.closed(l.control)
      }
    },
    reader,
    readers: () => Array.from({ length: l.address.readerSlots }, (_, slot) => reader(slot))
  }
}

/**
 * Frees `slot` (only if its process is gone when `onlyIfDead`: the claimer's, for a slot being
 * claimed; only if the reader of `occurrence` holds it, when given), then rings the writer if it
 * waits for space and the reader so a live one notices. True if a slot was freed.
 */
export const reapSlot = (
  region: CxlMemoryShape,
  doorbell: DoorbellShape,
  l: Lines,
  slot: number,
  onlyIfDead: boolean,
  occurrence?: number
): boolean => {
  const { control, reader } = ringLineViews(region)
  const line = l.line(slot)
  const state = reader.state(line)
  if (state === FREE) return false
  if (occurrence !== undefined && state !== attachedOf(occurrence)) return false
  if (onlyIfDead) {
    // A claim names its claimer's pid only; an attached reader or an observer (whose identity
    // sits where a reader's does), its pid and start tag.
    const alive = isClaim(state)
      ? isPidAlive(claimerOf(state))
      : isAttached(state) || state === OBSERVING
      ? isProcessAlive(reader.pid(line), reader.start(line))
      : true
    if (alive) return false
  }
  if (!reader.swapState(line, state, FREE)) return false
  for (const bell of [control.bell(l.control), reader.bell(line)]) {
    if (validBell(region, l, bell)) doorbell.ring(bell)
  }
  return true
}

export const reapDeadSlots = (region: CxlMemoryShape, doorbell: DoorbellShape, l: Lines): Array<number> => {
  const reaped: Array<number> = []
  for (let slot = 0; slot < l.address.readerSlots; slot++) {
    if (reapSlot(region, doorbell, l, slot, true)) reaped.push(slot)
  }
  return reaped
}
