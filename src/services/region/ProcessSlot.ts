/**
 * ProcessSlot: this process's row in the region's process table. A process claims a free
 * (or dead) slot, bumps its occurrence, and heartbeats until its scope closes. The slot's
 * second line is the process's doorbell.
 */
import { Context, Data } from "effect"
import { LINE_BYTES } from "./CxlMemory.js"

export type Role = "head" | "broker" | "client" | "worker"
export const ROLES: ReadonlyArray<Role> = ["head", "broker", "client", "worker"]

/** Bytes of one process-table slot: the owner's line, then its doorbell line. */
export const PROCESS_SLOT_BYTES = 2 * LINE_BYTES

export const SlotState = { free: 0, claiming: 1, active: 2 } as const

/** Where the process table lies in the region: its offset and how many slots it has. */
export interface ProcessTableLocation {
  readonly offset: number
  readonly slots: number
}

export interface SlotInfo {
  readonly slot: number
  readonly state: number
  readonly pid: number
  readonly occurrence: number
  readonly role: Role
  readonly heartbeatMs: number
  /** The owner's start tag (32 bits of its start time), 0 where unknown: with the pid, it names the process. */
  readonly startTag: number
}

/** Who started a process and under which name, as its slot carries it: a supervised child's. */
export interface ProcessLabel {
  /** The name its supervisor gave it (the first LABEL_NAME_BYTES bytes: 20). */
  readonly name: string
  /** Its supervisor's pid. */
  readonly supervisor: number
  /** How many times its supervisor had restarted it when it started this one. */
  readonly restarts: number
}

export interface ProcessSlotShape {
  readonly slot: number
  readonly occurrence: number
  readonly pid: number
  readonly role: Role
  /** Region offset of this process's doorbell line. */
  readonly doorbellOffset: number
}

export class ProcessSlot extends Context.Tag("cxlog/ProcessSlot")<ProcessSlot, ProcessSlotShape>() {}

export class ProcessTableFull extends Data.TaggedError("ProcessTableFull")<{ readonly slots: number }> {
  override get message() {
    return `all ${this.slots} process slots are taken by live processes: a region has as many as CXLOG_MAX_PROCESSES said when its head made it (each CxlogChannel.openWith and each runtime over Roles.ipcMember takes one)`
  }
}
