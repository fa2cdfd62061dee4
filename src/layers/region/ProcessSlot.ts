/**
 * The process table in the region and this process's claim on one of its slots.
 *
 * Slot line 0 is the owner's (SlotLine.ts): its pid is claimed by compare-and-swap, so two
 * claimers can never both win. Slot line 1 is the owner's doorbell. A slot names its owner by
 * pid and start time, so a pid reused by a later process does not keep a dead owner's slot.
 */
import { type ConfigError, Context, Effect, Layer, type Scope } from "effect"
import { CxlMemory, type CxlMemoryShape, LINE_BYTES, type RegionOutOfBounds } from "../../services/region/CxlMemory.js"
import { Doorbell, type WakeFifoUnavailable } from "../../services/region/Doorbell.js"
import {
  PROCESS_SLOT_BYTES,
  type ProcessLabel,
  ProcessSlot,
  type ProcessSlotShape,
  ProcessTableFull,
  type ProcessTableLocation,
  type Role,
  ROLES,
  type SlotInfo
} from "../../services/region/ProcessSlot.js"
import { SUPERVISED_SETTINGS } from "../../services/region/SupervisedSettings.js"
import { settingsConfig } from "../../Settings.js"
import { CADENCE_MS, everyTick } from "./Cadence.js"
import * as DoorbellLayers from "./Doorbell.js"
import { isPidAlive, isProcessAlive, ownStartTag } from "./ProcessInfo.js"
import { slotLines } from "./SlotLine.js"

/** On the shared cadence: an idle process wakes for it once per tick, with its other timers. */
const DEFAULT_HEARTBEAT_MS = CADENCE_MS

export const processTableBytes = (slots: number) => slots * PROCESS_SLOT_BYTES
export const slotOffset = (table: ProcessTableLocation, slot: number) => table.offset + slot * PROCESS_SLOT_BYTES
export const doorbellOffsetOf = (table: ProcessTableLocation, slot: number) => slotOffset(table, slot) + LINE_BYTES

export const readSlot = (region: CxlMemoryShape, table: ProcessTableLocation, slot: number): SlotInfo => {
  const lines = slotLines(region)
  const at = slotOffset(table, slot)
  const pid = lines.owner(at)
  const ready = lines.ready(at)
  return {
    slot,
    state: pid === 0 ? 0 : ready === 0 ? 1 : 2,
    pid,
    occurrence: lines.occurrence(at),
    role: ROLES[lines.role(at)] ?? "worker",
    heartbeatMs: lines.heartbeatMs(at),
    startTag: lines.startTag(at)
  }
}

/** The label slot `slot`'s owner wrote (read once the slot is ready); undefined when no supervisor started it. */
export const readLabel = (
  region: CxlMemoryShape,
  table: ProcessTableLocation,
  slot: number
): ProcessLabel | undefined => {
  const lines = slotLines(region)
  const at = slotOffset(table, slot)
  const supervisor = lines.supervisor(at)
  return supervisor === 0 ? undefined : { name: lines.name(at), supervisor, restarts: lines.restarts(at) }
}

/** This process's label, from what its supervisor set in its environment (none when it was not started by one). */
export const supervisedLabel: Effect.Effect<ProcessLabel | undefined, ConfigError.ConfigError> = Effect.map(
  settingsConfig(SUPERVISED_SETTINGS.settings),
  (
    { name, restarts, supervisor }
  ) => (supervisor === undefined ? undefined : { name: name ?? "", supervisor, restarts })
)

/** Stamps slot `slot`'s heartbeat with `nowMs` (its owner's write). */
export const writeHeartbeat = (
  region: CxlMemoryShape,
  table: ProcessTableLocation,
  slot: number,
  nowMs: number
): void => {
  slotLines(region).setHeartbeatMs(slotOffset(table, slot), nowMs)
}

/** Whether the process that holds the slot still runs (its pid, not another process under it, once the slot is ready). */
export const isOwnerAlive = (
  info: SlotInfo
): boolean => (info.state === 2 ? isProcessAlive(info.pid, info.startTag) : isPidAlive(info.pid))

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
  /** Who started this process, for every process to read: by default its supervisor's, from the environment (`supervisedLabel`). */
  readonly label?: ProcessLabel
}

/** Claims a free slot, or one whose owner process is gone, and heartbeats until the scope closes. */
export const make = (
  options: ProcessSlotOptions
): Effect.Effect<
  ProcessSlotShape,
  ProcessTableFull | RegionOutOfBounds | ConfigError.ConfigError,
  CxlMemory | Scope.Scope
> =>
  Effect.gen(function*() {
    const region = yield* CxlMemory
    const { table, role } = options
    const label = options.label ?? (yield* supervisedLabel)
    yield* region.check(table.offset, processTableBytes(table.slots))
    const pid = process.pid
    const order = Array.from({ length: table.slots }, (_, i) => (i + (options.preferredSlot ?? 0)) % table.slots)
    const lines = slotLines(region)
    // One compare-and-swap takes the owner and clears `ready`: a dead owner's slot is never seen
    // as ready under its new owner's pid with the old owner's start time.
    const claim = () => {
      for (const slot of order) {
        const at = slotOffset(table, slot)
        const current = lines.claimWord(at)
        if (current !== 0n && isOwnerAlive(readSlot(region, table, slot))) continue
        if (lines.claim(at, current, pid)) return slot
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
          const at = slotOffset(table, slot)
          lines.storeReady(at, 0)
          lines.release(at, pid)
        })
    )
    const at = slotOffset(table, slot)
    const occurrence = lines.occurrence(at) + 1
    lines.setOccurrence(at, occurrence)
    lines.setRole(at, ROLES.indexOf(role))
    writeHeartbeat(region, table, slot, Date.now())
    lines.setStartedMs(at, Date.now())
    lines.setStartTag(at, ownStartTag())
    // Before `ready`, like the rest: whoever sees this occurrence sees its label (a slot's last owner's is cleared).
    lines.setLabel(at, label?.supervisor ?? 0, label?.restarts ?? 0, label?.name ?? "")
    region.publish(at, LINE_BYTES)
    lines.storeReady(at, occurrence)
    const heartbeatMs = options.heartbeatMillis ?? DEFAULT_HEARTBEAT_MS
    yield* everyTick(() => heartbeatMs, Effect.sync(() => writeHeartbeat(region, table, slot, Date.now()))).pipe(
      Effect.forkScoped
    )
    return { slot, occurrence, pid, role, doorbellOffset: doorbellOffsetOf(table, slot) }
  })

/** This process's slot and, on its second line, its Doorbell. */
export const layer = (
  options: ProcessSlotOptions
): Layer.Layer<
  ProcessSlot | Doorbell,
  ProcessTableFull | RegionOutOfBounds | WakeFifoUnavailable | ConfigError.ConfigError,
  CxlMemory
> =>
  Layer.flatMap(Layer.scoped(ProcessSlot, make(options)), (context) =>
    DoorbellLayers.layer({
      offset: Context.get(context, ProcessSlot).doorbellOffset,
      ...(options.spinMicros === undefined ? {} : { spinMicros: options.spinMicros })
    }).pipe(Layer.merge(Layer.succeedContext(context))))
