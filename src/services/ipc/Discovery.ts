/**
 * Discovery: what lives in the region, by name, and what happens to it. The named objects of
 * every kind (channels, services, consumer groups, topics: the region's directory), the processes
 * holding the region's process slots, a bounded wait for a name to appear, and a stream of events
 * (a process joined, left, crashed; an object published, withdrawn). It watches the region — the
 * directory's change count and the process table — not each object: docs/ipc.md has the design.
 */
import { Context, Data, type Effect, type Queue, Schema, type Scope, type Stream } from "effect"
import type { ObjectKind } from "../region/Directory.js"
import type { Role } from "../region/ProcessSlot.js"

/** A named object of the directory, as discovery tells it. */
export interface DiscoveredObject {
  readonly kind: ObjectKind
  readonly name: string
  /** Its directory slot and generation: this very object, not a later one of the same name. */
  readonly slot: number
  readonly generation: number
  readonly createdAtMs: number
}

/** A process holding a slot of the region's process table. */
export interface DiscoveredProcess {
  readonly slot: number
  /** Bumped each time the slot is taken: a restarted process holds a new occurrence. */
  readonly occurrence: number
  readonly pid: number
  /** 32 bits of its start time (0 where unknown): with the pid, it names the process. */
  readonly startTag: number
  /** When it took its slot (ms since the epoch). */
  readonly startedAtMs: number
  readonly role: Role
  /**
   * The name its supervisor gave it: carried by its process slot (the first 20 bytes), so every
   * process of the region sees it; in full when this process is its supervisor.
   */
  readonly name?: string
  /** The pid of the supervisor that started it, when one did. */
  readonly supervisor?: number
  /** How many times its supervisor had restarted it when it started this one. */
  readonly restarts?: number
}

/** How a process ended, as its parent saw it. */
export interface ProcessExit {
  readonly code: number | null
  readonly signal: string | null
}

export type DiscoveryEvent = Data.TaggedEnum<{
  /** A process took a slot of the process table (a restarted one with a new occurrence). */
  ProcessJoined: { readonly process: DiscoveredProcess }
  /** A process gave its slot back: it left cleanly. */
  ProcessLeft: { readonly process: DiscoveredProcess }
  /**
   * A process ended without giving its slot back: found dead under its pid and start time, or its
   * slot taken by a new occurrence. `exit` is told when this process is its parent (a supervisor here).
   */
  ProcessCrashed: { readonly process: DiscoveredProcess; readonly exit?: ProcessExit }
  /** A named object appeared in the directory. */
  ObjectPublished: { readonly object: DiscoveredObject }
  /** A named object left the directory (deleted; its name is free). */
  ObjectWithdrawn: { readonly object: DiscoveredObject }
}>
export const DiscoveryEvent = Data.taggedEnum<DiscoveryEvent>()

export interface DiscoveryShape {
  /** The live objects of the directory, of one kind or all, in creation order. */
  readonly objects: (kind?: ObjectKind) => Effect.Effect<ReadonlyArray<DiscoveredObject>>
  /** The processes holding the region's process slots now (their owners alive). */
  readonly processes: Effect.Effect<ReadonlyArray<DiscoveredProcess>>
  /** The object of that kind and name once it exists: at once if it does, else when it appears; `DiscoveryTimeout` after `timeoutMs`. */
  readonly waitFor: (
    kind: ObjectKind,
    name: string,
    timeoutMs: number
  ) => Effect.Effect<DiscoveredObject, DiscoveryTimeout>
  /** What happens from now on, for as long as the stream is read (the region is watched while anyone reads). */
  readonly events: Stream.Stream<DiscoveryEvent>
  /**
   * The same events as a queue open for the scope: whatever changes once this has returned is
   * told (the stream's start is as soon as it is first pulled).
   */
  readonly subscribe: Effect.Effect<Queue.Dequeue<DiscoveryEvent>, never, Scope.Scope>
  /**
   * For a parent (a supervisor): the process `pid` was started here under `name`, so it is listed
   * with its name, and its crash is told with its exit once `exited` is called.
   */
  readonly adopt: (pid: number, name: string) => Effect.Effect<void>
  /** For a parent: how its child `pid` ended (its crash event carries it). */
  readonly exited: (pid: number, exit: ProcessExit) => Effect.Effect<void>
}

export class Discovery extends Context.Tag("cxlog/Discovery")<Discovery, DiscoveryShape>() {}

export class DiscoveryTimeout extends Schema.TaggedError<DiscoveryTimeout>()("DiscoveryTimeout", {
  kind: Schema.String,
  name: Schema.String,
  timeoutMs: Schema.Number
}) {
  override get message() {
    return `no ${this.kind} named ${JSON.stringify(this.name)} appeared within ${this.timeoutMs} ms`
  }
}
