/**
 * The process table in the region and this process's claim on one of its slots.
 *
 * Slot line 0 is the owner's (`SlotLine`): its pid is claimed by compare-and-swap, so two
 * claimers can never both win. Slot line 1 is the owner's doorbell. A slot names its owner by
 * pid and start time, so a pid reused by a later process does not keep a dead owner's slot.
 */
import { Context, Effect, Layer, type Scope } from "effect"
import { CxlMemory, type CxlMemoryShape, type RegionOutOfBounds } from "../../services/region/CxlMemory.js"
import { Doorbell, type WakeFifoUnavailable } from "../../services/region/Doorbell.js"
import {
  PROCESS_SLOT_BYTES,
  ProcessSlot,
  type ProcessSlotShape,
  ProcessTableFull,
  type Role,
  ROLES,
  type SlotInfo
} from "../../services/region/ProcessSlot.js"
import { CADENCE_MS, everyTick } from "./Cadence.js"
import * as DoorbellLayers from "./Doorbell.js"
import { isPidAlive, isProcessAlive, ownStartTag } from "./ProcessInfo.js"
import { pairWord, wordsOver } from "./Words64.js"

/** On the shared cadence: an idle process wakes for it once per tick, with its other timers. */
const DEFAULT_HEARTBEAT_MS = CADENCE_MS

export interface ProcessTableLocation {
  readonly offset: number
  readonly slots: number
}

/** Byte offsets in a slot's owner line. */
const SlotLine = {
  owner: 0, // i32 pid, 0 = free; with `ready`, the 64-bit claim word
  ready: 4, // i32 occurrence once ready, 0 while claiming
  occurrence: 8, // i32
  role: 12, // i32 index in ROLES
  heartbeat: 16, // f64 ms since the epoch
  started: 24, // f64 ms since the epoch
  startTag: 32 // u32 the owner's start tag (`startTag`, 0 where unknown); set before `ready`
} as const

export const processTableBytes = (slots: number) => slots * PROCESS_SLOT_BYTES
export const slotOffset = (table: ProcessTableLocation, slot: number) => table.offset + slot * PROCESS_SLOT_BYTES
export const doorbellOffsetOf = (table: ProcessTableLocation, slot: number) => slotOffset(table, slot) + 64

export const readSlot = (region: CxlMemoryShape, table: ProcessTableLocation, slot: number): SlotInfo => {
  const base = slotOffset(table, slot)
  const pid = Atomics.load(region.i32, (base + SlotLine.owner) / 4)
  const ready = Atomics.load(region.i32, (base + SlotLine.ready) / 4)
  const role = ROLES[region.i32[(base + SlotLine.role) / 4]!] ?? "worker"
  return {
    slot,
    state: pid === 0 ? 0 : ready === 0 ? 1 : 2,
    pid,
    occurrence: region.i32[(base + SlotLine.occurrence) / 4]!,
    role,
    heartbeatMs: region.f64[(base + SlotLine.heartbeat) / 8]!,
    startTag: region.u32[(base + SlotLine.startTag) / 4]!
  }
}

/** Stamps slot `slot`'s heartbeat with `nowMs` (its owner's write). */
export const writeHeartbeat = (region: CxlMemoryShape, table: ProcessTableLocation, slot: number, nowMs: number): void => {
  region.f64[(slotOffset(table, slot) + SlotLine.heartbeat) / 8] = nowMs
}

/** Whether the process that holds the slot still runs (its pid, not another process under it, once the slot is ready). */
export const isOwnerAlive = (info: SlotInfo): boolean => (info.state === 2 ? isProcessAlive(info.pid, info.startTag) : isPidAlive(info.pid))

/** A slot whose owner is running and has heartbeated within `staleMs`. */
export const isSlotLive = (info: SlotInfo, nowMs: number, staleMs: number): boolean =>
  info.state === 2 && isOwnerAlive(info) && nowMs - info.heartbeatMs <= staleMs

export interface ProcessSlotOptions {
  readonly table: ProcessTableLocation
  readonly role: Role
  /** How often the slot's heartbeat is written (default 500 ms, a quarter of the coordinator's 2 s stale bound). */
  readonly heartbeatMillis?: number
  /** Try this slot first (the head takes slot 0). */
  readonly preferredSlot?: number
  readonly spinMicros?: number
}

/** Claims a free slot, or one whose owner process is gone, and heartbeats until the scope closes. */
export const make = (options: ProcessSlotOptions): Effect.Effect<ProcessSlotShape, ProcessTableFull | RegionOutOfBounds, CxlMemory | Scope.Scope> =>
  Effect.gen(function*() {
    const region = yield* CxlMemory
    const { table, role } = options
    yield* region.check(table.offset, processTableBytes(table.slots))
    const pid = process.pid
    const order = Array.from({ length: table.slots }, (_, i) => (i + (options.preferredSlot ?? 0)) % table.slots)
    const words = wordsOver(region.u32)
    // One compare-and-swap takes the owner and clears `ready`: a dead owner's slot is never seen
    // as ready under its new owner's pid with the old owner's start time.
    const claim = () => {
      for (const slot of order) {
        const index = (slotOffset(table, slot) + SlotLine.owner) / 8
        const current = Atomics.load(words, index)
        if (current !== 0n && isOwnerAlive(readSlot(region, table, slot))) continue
        if (Atomics.compareExchange(words, index, current, pairWord(pid, 0)) === current) return slot
      }
      return -1
    }
    const slot = yield* Effect.acquireRelease(
      Effect.suspend(() => {
        const slot = claim()
        return slot < 0 ? Effect.fail(new ProcessTableFull({ slots: table.slots })) : Effect.succeed(slot)
      }),
      (slot) =>
        Effect.sync(() => {
          const base = slotOffset(table, slot)
          Atomics.store(region.i32, (base + SlotLine.ready) / 4, 0)
          Atomics.compareExchange(region.i32, (base + SlotLine.owner) / 4, pid, 0)
        })
    )
    const base = slotOffset(table, slot)
    const occurrence = region.i32[(base + SlotLine.occurrence) / 4]! + 1
    region.i32[(base + SlotLine.occurrence) / 4] = occurrence
    region.i32[(base + SlotLine.role) / 4] = ROLES.indexOf(role)
    writeHeartbeat(region, table, slot, Date.now())
    region.f64[(base + SlotLine.started) / 8] = Date.now()
    region.u32[(base + SlotLine.startTag) / 4] = ownStartTag()
    region.publish(base, 64)
    Atomics.store(region.i32, (base + SlotLine.ready) / 4, occurrence)
    const heartbeatMs = options.heartbeatMillis ?? DEFAULT_HEARTBEAT_MS
    yield* everyTick(() => heartbeatMs, Effect.sync(() => writeHeartbeat(region, table, slot, Date.now()))).pipe(Effect.forkScoped)
    return { slot, occurrence, pid, role, doorbellOffset: doorbellOffsetOf(table, slot) }
  })

/** This process's slot and, on its second line, its Doorbell. */
export const layer = (
  options: ProcessSlotOptions
): Layer.Layer<ProcessSlot | Doorbell, ProcessTableFull | RegionOutOfBounds | WakeFifoUnavailable, CxlMemory> =>
  Layer.flatMap(Layer.scoped(ProcessSlot, make(options)), (context) =>
    DoorbellLayers.layer({
      offset: Context.get(context, ProcessSlot).doorbellOffset,
      ...(options.spinMicros === undefined ? {} : { spinMicros: options.spinMicros })
    }).pipe(Layer.merge(Layer.succeedContext(context))))
