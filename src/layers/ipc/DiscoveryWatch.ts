/**
 * What discovery sees of the region at each look, as events: plain code over the region's bytes,
 * no effect per look. Objects come from the directory's change journal (one DirectoryFollower per
 * kind: one atomic load each while nothing changed); processes from the process table (one owner
 * line per slot). A process's end is told once: `ProcessLeft` when it gave its slot back,
 * `ProcessCrashed` when it was found dead holding it or its slot was taken by a new occurrence
 * (a slot given back and taken again between two looks reads as the latter).
 */
import {
  type DiscoveredObject,
  type DiscoveredProcess,
  DiscoveryEvent,
  type ProcessExit
} from "../../services/ipc/Discovery.js"
import type { CxlMemoryShape } from "../../services/region/CxlMemory.js"
import type { DirectoryEntry } from "../../services/region/Directory.js"
import type { ProcessTableLocation, SlotInfo } from "../../services/region/ProcessSlot.js"
import { DirectoryFollower } from "../region/DirectoryFollower.js"
import type { DirectoryArea } from "../region/DirectoryRecords.js"
import { DirectoryTable, OBJECT_KINDS } from "../region/DirectoryTable.js"
import { isOwnerAlive, readLabel, readSlot, slotOffset } from "../region/ProcessSlot.js"
import { slotLines } from "../region/SlotLine.js"

/** The most children a process remembers names and exits of (the oldest is forgotten first). */
const MAX_CHILDREN = 1024

/** Processes this process started (a supervisor's children): their names, and their exits once known. */
export class ChildRecords {
  private readonly children = new Map<number, { name: string; exit: ProcessExit | undefined }>()
  adopt(pid: number, name: string): void {
    this.children.delete(pid)
    this.children.set(pid, { name, exit: undefined })
    if (this.children.size > MAX_CHILDREN) this.children.delete(this.children.keys().next().value!)
  }
  exited(pid: number, exit: ProcessExit): void {
    const child = this.children.get(pid)
    if (child !== undefined) child.exit = exit
  }
  nameOf(pid: number): string | undefined {
    return this.children.get(pid)?.name
  }
  isChild(pid: number): boolean {
    return this.children.has(pid)
  }
  exitOf(pid: number): ProcessExit | undefined {
    return this.children.get(pid)?.exit
  }
  /** Its end was told: nothing more to remember. */
  forget(pid: number): void {
    this.children.delete(pid)
  }
}

export const objectOf = (entry: DirectoryEntry): DiscoveredObject => ({
  kind: entry.kind,
  name: entry.name,
  slot: entry.slot,
  generation: entry.generation,
  createdAtMs: entry.createdAtMs
})

/** Slot `slot`'s process as discovery tells it, named by its slot's label, or in full by this process if it started it. */
const processOf = (
  region: CxlMemoryShape,
  table: ProcessTableLocation,
  info: SlotInfo,
  children: ChildRecords
): DiscoveredProcess => {
  const label = readLabel(region, table, info.slot)
  const name = children.nameOf(info.pid) ?? (label === undefined || label.name === "" ? undefined : label.name)
  return {
    slot: info.slot,
    occurrence: info.occurrence,
    pid: info.pid,
    startTag: info.startTag,
    startedAtMs: slotLines(region).startedMs(slotOffset(table, info.slot)),
    role: info.role,
    ...(name === undefined ? {} : { name }),
    ...(label === undefined ? {} : { supervisor: label.supervisor, restarts: label.restarts })
  }
}

/** The live processes of the table now, named where a supervisor started them. */
export const liveProcesses = (
  region: CxlMemoryShape,
  table: ProcessTableLocation,
  children: ChildRecords
): ReadonlyArray<DiscoveredProcess> => {
  const live: Array<DiscoveredProcess> = []
  for (let slot = 0; slot < table.slots; slot++) {
    const info = readSlot(region, table, slot)
    if (info.state === 2 && isOwnerAlive(info)) live.push(processOf(region, table, info, children))
  }
  return live
}

/** A dead child's end, held back until its exit is known (or the wait's bound passes). */
interface PendingEnd {
  readonly process: DiscoveredProcess
  readonly sinceMs: number
}

export class RegionWatch {
  private readonly table: DirectoryTable
  private readonly followers: ReadonlyArray<DirectoryFollower>
  /** The live objects known, by directory slot (a slot holds one object of any kind). */
  private readonly objects = new Map<number, DiscoveredObject>()
  /** The live processes known, by process slot. */
  private readonly processes = new Map<number, DiscoveredProcess>()
  private pending: Array<PendingEnd> = []
  /** Slots whose owner was found dead, by the occurrence it held: a dead owner is told once. */
  private readonly deadSeen = new Map<number, number>()
  /** The first look only takes in what is there. */
  private telling = false

  constructor(
    private readonly region: CxlMemoryShape,
    directory: DirectoryArea,
    private readonly processTable: ProcessTableLocation,
    private readonly children: ChildRecords,
    /** How long a dead child's end waits for its exit (ms). */
    private readonly exitWaitMs: number
  ) {
    this.table = new DirectoryTable(region, directory)
    this.followers = OBJECT_KINDS.map((kind) => new DirectoryFollower(region, directory, kind))
  }

  /** Takes in what is there now, telling nothing: events are what changes after. */
  baseline(nowMs: number): void {
    this.objects.clear()
    this.processes.clear()
    this.pending = []
    this.deadSeen.clear()
    for (const follower of this.followers) follower.reset()
    this.telling = false
    this.look(nowMs)
    this.telling = true
  }

  /** What changed since the last look. */
  look(nowMs: number): ReadonlyArray<DiscoveryEvent> {
    const events: Array<DiscoveryEvent> = []
    this.lookAtObjects(events)
    this.lookAtProcesses(nowMs, events)
    return this.telling ? events : []
  }

  private lookAtObjects(events: Array<DiscoveryEvent>): void {
    for (const follower of this.followers) {
      const { created, deleted } = follower.changes()
      for (const gone of deleted) {
        const known = this.objects.get(gone.slot)
        if (known === undefined || known.generation !== gone.generation) continue
        this.objects.delete(gone.slot)
        events.push(DiscoveryEvent.ObjectWithdrawn({ object: known }))
      }
      for (const made of created) {
        const { entry } = this.table.read(made.slot)
        // Gone or replaced since the journal said so: the next look tells it.
        if (entry === undefined || entry.generation !== made.generation) continue
        const object = objectOf(entry)
        this.objects.set(made.slot, object)
        events.push(DiscoveryEvent.ObjectPublished({ object }))
      }
    }
  }

  private lookAtProcesses(nowMs: number, events: Array<DiscoveryEvent>): void {
    const waiting = this.pending
    this.pending = []
    for (const end of waiting) this.ended(end.process, false, end.sinceMs, nowMs, events)
    for (let slot = 0; slot < this.processTable.slots; slot++) {
      const info = readSlot(this.region, this.processTable, slot)
      const known = this.processes.get(slot)
      if (known !== undefined) {
        const same = info.pid === known.pid && info.occurrence === known.occurrence && info.state === 2
        if (same && isOwnerAlive(info)) continue
        this.processes.delete(slot)
        if (same) this.deadSeen.set(slot, info.occurrence)
        this.ended(known, info.pid === 0, nowMs, nowMs, events)
      }
      if (info.state !== 2) continue
      const process = processOf(this.region, this.processTable, info, this.children)
      if (isOwnerAlive(info)) {
        this.processes.set(slot, process)
        events.push(DiscoveryEvent.ProcessJoined({ process }))
      } else if (this.deadSeen.get(slot) !== info.occurrence) {
        // It joined and died between two looks (or was dead before the watch began: the baseline tells nothing).
        this.deadSeen.set(slot, info.occurrence)
        if (this.telling) this.ended(process, false, nowMs, nowMs, events)
      }
    }
  }

  /** Tells `process`'s end: left if it gave its slot back, else crashed (with its exit, when this process is its parent). */
  private ended(
    process: DiscoveredProcess,
    released: boolean,
    sinceMs: number,
    nowMs: number,
    events: Array<DiscoveryEvent>
  ): void {
    if (released) {
      this.children.forget(process.pid)
      events.push(DiscoveryEvent.ProcessLeft({ process }))
      return
    }
    const exit = this.children.exitOf(process.pid)
    if (exit === undefined && this.children.isChild(process.pid) && nowMs - sinceMs < this.exitWaitMs) {
      // Its parent here learns its exit from the kernel in a moment: the event waits for it, bounded.
      this.pending.push({ process, sinceMs })
      return
    }
    this.children.forget(process.pid)
    events.push(DiscoveryEvent.ProcessCrashed(exit === undefined ? { process } : { process, exit }))
  }
}
