/**
 * The region's directory: named objects (topics, consumer groups, channels, services) and the
 * extents of free space they hold, allocated as the application runs. Any process that maps the
 * region looks a name up in place, with no round trip (`Directory`); one process writes — the
 * head, under its lease, so a standby takes it over with the rest (`DirectoryWriter`). A process
 * that uses an object's bytes pins it first (`Directory.hold`): a deleted object's extents are
 * reused only once no live pin can still be reading or writing them. docs/region.md has the design.
 */
import { Context, type Effect, Schema, type Scope } from "effect"

/** What a name stands for; each kind has its own names (a topic and a channel may both be `orders`). */
export const ObjectKind = Schema.Literal("topic", "group", "channel", "service")
export type ObjectKind = typeof ObjectKind.Type
const isObjectKind = Schema.is(ObjectKind)

/** The most UTF-8 bytes a name may have. */
export const MAX_NAME_BYTES = 128
/**
 * A UTF-16 code unit of a surrogate pair with no partner: in unicode mode a whole pair is one code
 * point, so only a lone half matches (`String.prototype.isWellFormed`, which ES2022's lib lacks).
 */
const LONE_SURROGATE = /[\ud800-\udfff]/u

/**
 * Why `name` cannot name an object, or undefined: checked where a name is written and before a
 * create is sent to the head, so a bad name is refused as itself, not as a bad request. A name
 * with a lone surrogate has no UTF-8 of its own (it would be stored as U+FFFD, and two names
 * would stand for one object).
 */
export const objectNameProblem = (name: string): string | undefined => {
  const bytes = Buffer.byteLength(name, "utf8")
  return bytes === 0
    ? "a name has at least one character"
    : LONE_SURROGATE.test(name)
    ? "a name is well-formed Unicode (this one has half of a surrogate pair alone)"
    : bytes > MAX_NAME_BYTES
    ? `a name has at most ${MAX_NAME_BYTES} bytes of UTF-8 (this one has ${bytes})`
    // eslint-disable-next-line no-control-regex
    : /[\u0000-\u001f\u007f]/.test(name)
    ? "a name has no control characters"
    : undefined
}

/**
 * Why `name` cannot name an object when it is no string (a JavaScript caller's `open(42)`), or
 * undefined: looked at before anything reads the name, since the errors that name it take strings.
 */
export const nameNotText = (name: unknown): string | undefined =>
  typeof name === "string" ? undefined : `a name is a string, not a ${name === null ? "null" : typeof name}`

/** The most numbers an object keeps beside its name (its kind's parameters: a topic's order, retention, …). */
export const MAX_OBJECT_PARAMS = 8

/** A part of the heap an object holds: its main extent, or one it added later (a writer's lane). */
export interface Extent {
  /** Offset from the region's base; a multiple of 4096. */
  readonly offset: number
  /** A power of two times 4096: what was asked for, rounded up (the holder may use all of it). */
  readonly bytes: number
}

/** A named object as the directory holds it; `slot` and `generation` name this very object, not a later one of the same name. */
export interface DirectoryEntry {
  readonly slot: number
  readonly generation: number
  readonly kind: ObjectKind
  readonly name: string
  readonly extent: Extent
  readonly params: ReadonlyArray<number>
  readonly createdAtMs: number
}

export interface ObjectSpec {
  readonly kind: ObjectKind
  readonly name: string
  /** Bytes of the object's main extent (rounded up to a power of two of 4 KiB pages). */
  readonly bytes: number
  readonly params?: ReadonlyArray<number>
}

/**
 * A holder of space: an object (by kind and name); deleted objects' extents waiting for the live
 * processes whose pins keep them (`deleted`), of which `damaged`: those of objects whose directory
 * entries could not be read, deleted by a head taking the directory over, which processes that opened
 * them before the damage may still use; a live entry that cannot be read (`unreadable`: its fields out
 * of range, so it names no object a listing shows); or the blocks of a create or delete the writer has
 * not finished (`unfinished`: under way, or cut short when its head stopped).
 */
export interface SpaceHolder {
  readonly kind: ObjectKind | "deleted" | "damaged" | "unreadable" | "unfinished"
  /**
   * An object's name; `objects` for deleted and damaged ones; for `unreadable`, the name its entry
   * still says ("" when that cannot be read either); for `unfinished`, which change: `create` or `delete`.
   */
  readonly name: string
  readonly bytes: number
  /** For deleted objects' extents: the live processes whose pins keep them (none: freed at the writer's next tick). */
  readonly pinnedBy: ReadonlyArray<number>
  /** For `unreadable` and `unfinished`: the directory entry slot the blocks belong to. */
  readonly slot?: number
  /** For `unreadable`: the kind its name's hash says, when its name can be read (what deletes it). */
  readonly objectKind?: ObjectKind
}

export interface DirectoryUsage {
  readonly heapBytes: number
  readonly freeBytes: number
  /** The largest extent one allocation can get now. */
  readonly largestFreeBytes: number
  readonly usedBytes: number
  /** Deleted objects' extents waiting for the pins that may still touch them. */
  readonly retiredBytes: number
  readonly objects: number
  readonly entrySlots: number
  readonly holderLines: number
}

export interface DirectoryShape {
  /** The live object of that kind and name; no round trip, no lock (a torn read retries). */
  readonly lookup: (kind: ObjectKind, name: string) => Effect.Effect<DirectoryEntry, ObjectNotFound>
  /** Every live object, or every one of a kind. */
  readonly list: (kind?: ObjectKind) => Effect.Effect<ReadonlyArray<DirectoryEntry>>
  /** Whether `entry` still names a live object (not deleted, its slot not reused). */
  readonly isCurrent: (entry: DirectoryEntry) => boolean
  /**
   * Pins `entry` for the scope: its extents are not reused before the scope closes, even if the
   * object is deleted meanwhile. Fails with ObjectDeleted when it is gone already.
   */
  readonly hold: (
    entry: DirectoryEntry
  ) => Effect.Effect<void, ObjectDeleted | HolderLinesFull, Scope.Scope>
  readonly usage: Effect.Effect<DirectoryUsage>
  /** Who holds the heap's space, largest first. */
  readonly holders: Effect.Effect<ReadonlyArray<SpaceHolder>>
}

/** The directory as every process reads it. */
export class Directory extends Context.Tag("cxlog/Directory")<Directory, DirectoryShape>() {}

export interface DirectoryWriterShape {
  /**
   * Creates an object with its main extent (zeroed). `initialize` writes (and publishes) the object's
   * own records into the extent before the entry is published, so no reader finds the name before them.
   */
  readonly create: (
    spec: ObjectSpec,
    initialize?: (extent: Extent) => void
  ) => Effect.Effect<DirectoryEntry, NameTaken | DirectoryFull | RegionFull | InvalidObjectName | NotDirectoryWriter>
  /** Another extent for a live object (zeroed), freed with it. */
  readonly allocate: (
    entry: DirectoryEntry,
    bytes: number
  ) => Effect.Effect<Extent, ObjectDeleted | RegionFull | NotDirectoryWriter>
  /**
   * Deletes the object: its name is free at once; its extents are freed (zeroed) once no live pin
   * can touch them, by `reclaim` — which the writer's layer runs at every tick while any wait —
   * or by an allocation that finds no room.
   */
  readonly remove: (entry: DirectoryEntry) => Effect.Effect<void, ObjectDeleted | NotDirectoryWriter>
  /** Frees every deleted object's extents that no live pin holds any more; returns the bytes freed. */
  readonly reclaim: Effect.Effect<number>
}

/** The directory's one writer: the head, under its lease (a standby takes over with its epoch). */
export class DirectoryWriter extends Context.Tag("cxlog/DirectoryWriter")<DirectoryWriter, DirectoryWriterShape>() {}

export class ObjectNotFound extends Schema.TaggedError<ObjectNotFound>()("ObjectNotFound", {
  kind: ObjectKind,
  name: Schema.String
}) {
  override get message() {
    return `no ${this.kind} named ${JSON.stringify(this.name)}`
  }
}

export class ObjectDeleted extends Schema.TaggedError<ObjectDeleted>()("ObjectDeleted", {
  kind: ObjectKind,
  name: Schema.String
}) {
  override get message() {
    return `${this.kind} ${JSON.stringify(this.name)} was deleted`
  }
}

export class NameTaken extends Schema.TaggedError<NameTaken>()("NameTaken", {
  kind: ObjectKind,
  name: Schema.String
}) {
  override get message() {
    return `a ${this.kind} named ${JSON.stringify(this.name)} exists already`
  }
}

export class InvalidObjectName extends Schema.TaggedError<InvalidObjectName>()("InvalidObjectName", {
  name: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `invalid name ${JSON.stringify(this.name)}: ${this.reason}`
  }
}

/** How an object of each kind is deleted, so a full region's error says what frees its room. */
const DELETED_BY: Record<ObjectKind, string> = {
  topic: "a topic with cxlog topics delete NAME",
  group: "a group with cxlog groups delete NAME",
  channel: "a channel with Channels.remove(name)",
  service: "a service with Services.remove(name)"
}

export class DirectoryFull extends Schema.TaggedError<DirectoryFull>()("DirectoryFull", {
  entrySlots: Schema.Int,
  objects: Schema.Int,
  /** How many of the objects are of each kind (the kinds there are). */
  kinds: Schema.optional(Schema.Array(Schema.Struct({ kind: ObjectKind, objects: Schema.Int }))),
  /** How many of the objects' entries cannot be read (their fields out of range), so have no kind to count. */
  unreadable: Schema.optionalWith(Schema.Int, { exact: true })
}) {
  override get message() {
    const kinds = this.kinds ?? []
    const unreadable = this.unreadable ?? 0
    const held = [
      ...kinds.map((k) => `${k.objects} ${k.kind}${k.objects === 1 ? "" : "s"}`),
      ...(unreadable === 0 ? [] : [`${unreadable} ${unreadable === 1 ? "entry" : "entries"} that cannot be read`])
    ].join(", ")
    const deleting = [
      ...kinds.map((k) => DELETED_BY[k.kind]),
      ...(unreadable === 0 ? [] : [
        "an entry that cannot be read with cxlog topics delete NAME when it still says a topic's name, else by " +
        "restarting the head (its takeover deletes it)"
      ])
    ].join("; ")
    return `the region's directory is full (${this.objects} objects in ${this.entrySlots} slots${
      held === "" ? "" : `: ${held}`
    }): delete objects${
      deleting === "" ? "" : ` (${deleting})`
    }, or create the region with more (CXLOG_DIRECTORY_ENTRIES)`
  }
}

const SpaceHolderSchema = Schema.Struct({
  kind: Schema.Union(ObjectKind, Schema.Literal("deleted", "damaged", "unreadable", "unfinished")),
  name: Schema.String,
  bytes: Schema.Number,
  pinnedBy: Schema.Array(Schema.Int),
  slot: Schema.optionalWith(Schema.Int, { exact: true }),
  objectKind: Schema.optionalWith(ObjectKind, { exact: true })
})

export const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(bytes % 2 ** 20 === 0 ? 0 : 2)} MiB`

/** What a head taking the region over does to an entry it cannot read, and when its memory comes back. */
export const TAKEOVER_DELETES =
  "a head taking the region over (a restart of the head) deletes it, and its memory comes back " +
  "once no process that opened it holds it"

/** Who keeps deleted (or damaged) objects' extents, and what frees them; `since`: what they opened them before. */
const pinnedText = (pids: ReadonlyArray<number>, since: string) => {
  if (pids.length === 0) return "held by no live process (freed at the head's next tick)"
  const one = pids.length === 1
  return `pinned by pid ${pids.join(", ")} (freed once ${one ? "it closes" : "they close"} what ${
    one ? "it" : "they"
  } opened before the ${since}, or ${one ? "exits" : "exit"})`
}

/** One holder as a `RegionFull` names it, with what frees what it holds where that is not deleting it by its kind. */
const holderText = (h: Schema.Schema.Type<typeof SpaceHolderSchema>): string => {
  const bytes = mib(h.bytes)
  const entry = `directory entry ${h.slot ?? "?"}`
  switch (h.kind) {
    case "deleted":
      return `${bytes} of deleted ${h.name}, ${pinnedText(h.pinnedBy, "deletion")}`
    case "damaged":
      return `${bytes} of ${h.name} whose directory entries could not be read, deleted when the head took the ` +
        `region over, ${pinnedText(h.pinnedBy, "damage")}`
    case "unreadable": {
      if (h.objectKind === "topic" && h.name !== "") {
        return `${bytes} by topic ${h.name}, whose ${entry} cannot be read (damaged): cxlog topics delete ${h.name} ` +
          `deletes it, as ${TAKEOVER_DELETES}`
      }
      const says = h.name === ""
        ? "its name neither"
        : `it says ${h.objectKind === undefined ? "" : `${h.objectKind} `}${JSON.stringify(h.name)}`
      return `${bytes} by the object of ${entry}, which cannot be read (damaged; ${says}): ${TAKEOVER_DELETES}`
    }
    case "unfinished":
      return `${bytes} of a ${h.name} the head has not finished (${entry}): under way, or cut short when its head ` +
        `stopped, and then a head taking the region over (a restart of the head) frees it`
    default:
      return `${bytes} by ${h.kind} ${h.name}`
  }
}

export class RegionFull extends Schema.TaggedError<RegionFull>()("RegionFull", {
  requested: Schema.Number,
  largestFreeBytes: Schema.Number,
  freeBytes: Schema.Number,
  heapBytes: Schema.Number,
  /** The largest holders, largest first. */
  holders: Schema.Array(SpaceHolderSchema),
  /** The holders past those named: how many, and the bytes they hold together. */
  others: Schema.optional(Schema.Struct({ holders: Schema.Int, bytes: Schema.Number })),
  /** Why the host could not back an extent the heap had room for (the filesystem holding the region is full). */
  unbacked: Schema.optional(Schema.String)
}) {
  override get message() {
    if (this.unbacked !== undefined) {
      return `the region's heap has an extent of ${
        mib(this.requested)
      } free, but ${this.unbacked}: make room on that filesystem (df names what it holds) or delete objects`
    }
    const held = this.holders.map(holderText)
    if (this.others !== undefined && this.others.holders > 0) {
      held.push(
        `${mib(this.others.bytes)} by ${this.others.holders} other object${this.others.holders === 1 ? "" : "s"}`
      )
    }
    // The others say what frees them in their own words.
    const kinds = [...new Set(this.holders.flatMap((h) => (isObjectKind(h.kind) ? [h.kind] : [])))]
    const freeing = kinds.length === 0
      ? ""
      : ` Delete what holds it (${kinds.map((k) => DELETED_BY[k]).join("; ")}),`
    return `the region has no free extent of ${mib(this.requested)} (largest free ${mib(this.largestFreeBytes)}, ${
      mib(this.freeBytes)
    } free of ${mib(this.heapBytes)}); held: ${held.length === 0 ? "nothing" : held.join("; ")}.${
      freeing === "" ? " Delete objects," : freeing
    } or create the region with a larger heap (CXLOG_HEAP_BYTES)`
  }
}

export class HolderLinesFull extends Schema.TaggedError<HolderLinesFull>()("HolderLinesFull", {
  holderLines: Schema.Int
}) {
  override get message() {
    return `all ${this.holderLines} holder lines of the region's directory are taken by live processes (create the region with more: CXLOG_DIRECTORY_HOLDERS)`
  }
}

export class NotDirectoryWriter extends Schema.TaggedError<NotDirectoryWriter>()("NotDirectoryWriter", {
  epoch: Schema.Int,
  writerEpoch: Schema.Int
}) {
  override get message() {
    return this.epoch === 0
      ? "this process does not write the region's directory: its head does (create topics through it: cxlog create-topic, or the Coordinator)"
      : `this process (epoch ${this.epoch}) no longer writes the directory: a head of epoch ${this.writerEpoch} took it over`
  }
}
