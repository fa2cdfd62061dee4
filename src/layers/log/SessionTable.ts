/**
 * One topic's session table: an open-addressing hash of 128-byte session lines (linear
 * probing; the second 64 bytes a bitmap of batches ordered above the frontier, orders 0/2/4:
 * SessionAhead.ts)
 * plus the topic's registry line. The same code runs over the region (live layers) and over a
 * private buffer (the in-memory fakes).
 *
 * - A broker registers a session: it takes a place in `live` (refused past 7/8 of the
 *   slots, so a probe for an unknown key always meets an empty line), draws the next epoch
 *   from `epochs` (so a session's identity never depends on the client's choice), and
 *   claims the first free (empty, released or lapsed) line on the key's probe path by
 *   compare-and-swap of its state word.
 * - From then on only the sequencer writes the line: frontiers each round, then `release`
 *   when the session closes or idles out (`lapse` for one with batches ordered above a gap).
 *   A released line keeps its key and frontier, so a late lookup still learns where the
 *   session ended, until a registration reuses it; no lookup finds a lapsed one.
 * - Every read is a seqlock read that checks the key, because released lines are reused.
 */
import { LINE_BYTES } from "../../services/region/CxlMemory.js"
import { SESSION_LINE_BYTES } from "./Layout.js"
import type { SessionState as SessionStateCode } from "./Records.js"
import { SessionState } from "./Records.js"
import { type RecordWords, RegistryLineView, SessionLineView } from "./RecordViews.js"
import { AHEAD_WORDS, aheadWords, readAhead } from "./SessionAhead.js"
import type { SessionFields } from "./SessionFields.js"

/** The typed arrays and coherence hooks the table works on (a `CxlMemoryShape` is one). */
export interface LineView extends RecordWords {
  readonly publish: (offset: number, length: number) => void
  readonly invalidate: (offset: number, length: number) => void
}

export type LineState = (typeof SessionStateCode)[keyof typeof SessionStateCode]

/** Sessions fill the table up to 7/8, so a probe for an unknown key always ends at an empty line. */
export const sessionCapacity = (slots: number): number => slots - Math.max(1, slots >> 3)

export const sessionHash = (clientId: number, sessionEpoch: number, slots: number): number =>
  ((Math.imul(clientId, 0x9e3779b1) ^ Math.imul(sessionEpoch + 0x7f4a7c15, 0x85ebca77)) >>> 0) & (slots - 1)

/** What a reader learns of a session's line. */
export interface SessionRecord {
  readonly slot: number
  readonly state: "active" | "fenced" | "released"
  /** Batches 0..next-1 are in the total order. */
  readonly next: number
  /** Batches 0..durable-1 are on disk, payload and place in the order (topics with replication factor 2). */
  readonly durable: number
  /** The durable tier froze `durable` for good: batches of the session past it may never have reached the disk. */
  readonly durableFrozen: boolean
}

/** A registration that could not take a line: every place of the table is in use. */
export interface TableFull {
  readonly full: true
  readonly capacity: number
}

/** Reads of a line whose writer stays inside its seqlock this long give up on it for now. */
const STABLE_READ_ATTEMPTS = 10_000

/**
 * A lookup that met a line its writer held inside the seqlock past the read's bound (a writer
 * preempted mid-write): the line may hold the key, so absence cannot be concluded. Read again later.
 */
export const UNSETTLED = "unsettled" as const

export class SessionTable {
  readonly capacity: number
  private readonly mask: number
  private readonly lines: SessionLineView
  private readonly registryLine: RegistryLineView

  constructor(
    private readonly view: LineView,
    /** Offset of line 0. */
    private readonly table: number,
    /** Offset of the registry line. */
    private readonly registry: number,
    readonly slots: number
  ) {
    this.capacity = sessionCapacity(slots)
    this.mask = slots - 1
    this.lines = new SessionLineView(view)
    this.registryLine = new RegistryLineView(view)
  }

  private line(slot: number): number {
    return this.table + slot * SESSION_LINE_BYTES
  }

  /** Lines in use (registered, fenced, or mid-claim). */
  liveCount(): number {
    this.view.invalidate(this.registry, LINE_BYTES)
    return this.registryLine.live(this.registry)
  }

  /** Broker side: registers a new session of `clientId` and returns its epoch, or why not. */
  register(clientId: number, nowMs: number): { readonly sessionEpoch: number; readonly slot: number } | TableFull {
    if (!this.reserve()) return { full: true, capacity: this.capacity }
    let sessionEpoch = 0
    // Epoch 0 is never handed out: it would look like a client's own default.
    while (sessionEpoch === 0) sessionEpoch = (this.registryLine.addEpoch(this.registry) + 1) >>> 0
    return this.claim(clientId, sessionEpoch, nowMs)
  }

  /**
   * Registers a session under an epoch the caller already has (rebuilding a log, and test
   * fixtures); the caller guarantees no other session of the topic has it. Or why not.
   */
  registerAs(
    clientId: number,
    sessionEpoch: number,
    nowMs: number
  ): { readonly sessionEpoch: number; readonly slot: number } | TableFull {
    return this.reserve() ? this.claim(clientId, sessionEpoch, nowMs) : { full: true, capacity: this.capacity }
  }

  /**
   * Rebuilding a log: epochs up to `sessionEpoch` are taken, so a registration never draws one
   * a recovered session holds.
   */
  reserveEpochsThrough(sessionEpoch: number): void {
    while (((this.registryLine.addEpoch(this.registry) + 1) >>> 0) < sessionEpoch);
  }

  /** Takes a place in `live`, unless the table is at capacity. */
  private reserve(): boolean {
    if (this.registryLine.addLive(this.registry, 1) + 1 <= this.capacity) return true
    this.registryLine.addLive(this.registry, -1)
    return false
  }

  /** Claims the first free line on the key's probe path (a place in `live` is reserved). */
  private claim(
    clientId: number,
    sessionEpoch: number,
    nowMs: number
  ): { readonly sessionEpoch: number; readonly slot: number } | TableFull {
    const { lines } = this
    let slot = sessionHash(clientId, sessionEpoch, this.slots)
    // `live` ≤ capacity < slots guarantees a free line; lost races only move the probe on.
    for (let probes = 0; probes < 4 * this.slots; probes++, slot = (slot + 1) & this.mask) {
      const line = this.line(slot)
      this.view.invalidate(line, LINE_BYTES)
      const state = lines.state(line)
      if (state !== SessionState.empty && state !== SessionState.released && state !== SessionState.lapsed) continue
      if (!lines.swapState(line, state, SessionState.claiming)) continue
      // A reused line must not show its last session's durable frontier.
      lines.setDurable(line, 0)
      this.write(slot, clientId, sessionEpoch, {
        next: 0,
        orderedMessages: 0,
        duplicates: 0,
        held: 0,
        lastActivityMs: nowMs,
        fenced: false
      }, SessionState.claiming)
      // Active only once the line is whole, so an active line with an odd version is always a sequencer's write cut short.
      lines.storeState(line, SessionState.active)
      this.view.publish(line, 8)
      return { sessionEpoch, slot }
    }
    this.registryLine.addLive(this.registry, -1)
    return { full: true, capacity: this.capacity }
  }

  /**
   * The session's line, read consistently, or undefined when no line holds the key. `hint`
   * is a slot where it was found before (lines are reused, so the key is checked again).
   */
  lookup(clientId: number, sessionEpoch: number, hint = -1): SessionRecord | typeof UNSETTLED | undefined {
    if (hint >= 0) {
      const found = this.readSlot(hint, clientId, sessionEpoch)
      if (found !== undefined && found !== "other") return found
    }
    let unsettled = false
    let slot = sessionHash(clientId, sessionEpoch, this.slots)
    for (let probes = 0; probes < this.slots; probes++, slot = (slot + 1) & this.mask) {
      const found = this.readSlot(slot, clientId, sessionEpoch)
      if (found === undefined) break
      if (found === UNSETTLED) unsettled = true
      else if (found !== "other") return found
    }
    return unsettled ? UNSETTLED : undefined
  }

  /** One line: the record if it holds the key, "other" if it holds something else, undefined if empty. */
  private readSlot(
    slot: number,
    clientId: number,
    sessionEpoch: number
  ): SessionRecord | "other" | typeof UNSETTLED | undefined {
    const { lines } = this
    const line = this.line(slot)
    for (let attempt = 0; attempt < STABLE_READ_ATTEMPTS; attempt++) {
      this.view.invalidate(line, LINE_BYTES)
      const before = lines.version(line)
      if ((before & 1) !== 0) continue
      const state = lines.state(line)
      const matches = lines.clientId(line) === clientId && lines.sessionEpoch(line) === sessionEpoch
      const next = lines.next(line)
      const durable = lines.durable(line)
      const durableFrozen = lines.durableFrozen(line)
      if (lines.version(line) !== before) continue
      if (state === SessionState.empty) return undefined
      if (
        !matches || state === SessionState.claiming || state === SessionState.lapsed || !Number.isSafeInteger(next) ||
        next < 0
      ) return "other"
      return {
        slot,
        state: state === SessionState.active ? "active" : state === SessionState.fenced ? "fenced" : "released",
        next,
        durable,
        durableFrozen
      }
    }
    return UNSETTLED
  }

  /**
   * Sequencer side: the registered session with this key (active or fenced), its slot and what
   * its line says, or undefined. Read by the process inside a round (the round marker's holder),
   * the only writer of the line's sequencer words then, so the fields are those its last round
   * published: a fresh registration's zeros, or where another process's round left them.
   */
  find(clientId: number, sessionEpoch: number): { readonly slot: number; readonly fields: SessionFields } | undefined {
    // Batches follow their registration's WELCOME, so a line still mid-write cannot be this session's claim.
    const found = this.lookup(clientId, sessionEpoch)
    if (found === undefined || found === UNSETTLED || found.state === "released") return undefined
    const line = this.line(found.slot)
    this.view.invalidate(line, SESSION_LINE_BYTES)
    return { slot: found.slot, fields: this.fieldsAt(line, found.state === "fenced") }
  }

  /** A line's sequencer fields as they stand. */
  private fieldsAt(line: number, fenced: boolean): SessionFields {
    const { lines } = this
    const next = lines.next(line)
    return {
      next,
      orderedMessages: lines.orderedMessages(line),
      duplicates: lines.duplicates(line),
      held: lines.held(line),
      lastActivityMs: lines.lastActivityMs(line),
      fenced,
      ahead: readAhead(lines, line, next)
    }
  }

  /** Sequencer side: publishes a session's state (a seqlock write). */
  publish(slot: number, clientId: number, sessionEpoch: number, fields: SessionFields): void {
    this.write(slot, clientId, sessionEpoch, fields)
  }

  /**
   * The head's durable tier (in the sequencer's process, so never between a sequencer write's
   * halves): batches 0..durable-1 of the session are on disk. A seqlock write of that word
   * alone; a frontier never moves back, nor once frozen, and a released line (its session
   * over, the line claimable by a broker) is left alone. False when no active or fenced line
   * holds the key.
   */
  setDurable(clientId: number, sessionEpoch: number, durable: number): boolean {
    const found = this.lookup(clientId, sessionEpoch)
    if (found === undefined || found === UNSETTLED || found.state === "released") return false
    if (durable <= found.durable || found.durableFrozen) return true
    this.writeDurable(found.slot, (lines, line) => lines.setDurable(line, durable))
    return true
  }

  /**
   * The durable tier: the session's frontier stays where it is for good (it may have had
   * batches in a stretch the region recycled before they reached the disk). Kept in the line,
   * so a durable tier restarted on the region knows it too. False as for `setDurable`.
   */
  freezeDurable(clientId: number, sessionEpoch: number): boolean {
    const found = this.lookup(clientId, sessionEpoch)
    if (found === undefined || found === UNSETTLED || found.state === "released") return false
    if (!found.durableFrozen) this.writeDurable(found.slot, (lines, line) => lines.freezeDurable(line))
    return true
  }

  /** A seqlock write of the durable word alone. */
  private writeDurable(slot: number, write: (lines: SessionLineView, line: number) => void): void {
    const { lines } = this
    const line = this.line(slot)
    const version = lines.version(line) & ~1
    lines.storeVersion(line, version + 1)
    write(lines, line)
    this.view.publish(line, LINE_BYTES)
    lines.storeVersion(line, version + 2)
    this.view.publish(line, 4)
  }

  /** Sequencer side: the session is over; its line keeps key and frontier until reused, and leaves `live`. */
  release(slot: number, clientId: number, sessionEpoch: number, fields: SessionFields): void {
    this.write(slot, clientId, sessionEpoch, fields, SessionState.released)
    this.registryLine.addLive(this.registry, -1)
  }

  /**
   * Sequencer side: the session ended with batches ordered above a gap (orders 0/2/4). Its line
   * is freed as by `release`, but no lookup finds the key any more: its publisher learns the
   * session is unknown (and, with batches unacknowledged, fails) instead of a frontier below
   * batches already ordered, from which it would replay them in a new session.
   */
  lapse(slot: number, clientId: number, sessionEpoch: number, fields: SessionFields): void {
    this.write(slot, clientId, sessionEpoch, fields, SessionState.lapsed)
    this.registryLine.addLive(this.registry, -1)
  }

  /** Lines seen mid-claim by the previous `releaseDeadClaims`. */
  private readonly claimsSeen = new Set<number>()

  /**
   * Sequencer side, called at most every second or so: a line still mid-claim since the
   * previous call belongs to a registration whose process died between its compare-and-swap
   * and its write (a live one takes microseconds); it is freed as lapsed, never released: it
   * may still hold the key and frontier of the session it was claimed from (a lapsed one, which
   * no lookup may find again), or half of the claimer's. Returns how many.
   */
  releaseDeadClaims(): number {
    let released = 0
    const { lines } = this
    for (let slot = 0; slot < this.slots; slot++) {
      const line = this.line(slot)
      this.view.invalidate(line, LINE_BYTES)
      if (lines.state(line) !== SessionState.claiming) {
        this.claimsSeen.delete(slot)
        continue
      }
      if (!this.claimsSeen.has(slot)) {
        this.claimsSeen.add(slot)
        continue
      }
      this.claimsSeen.delete(slot)
      lines.storeVersion(line, (lines.version(line) | 1) + 1)
      lines.storeState(line, SessionState.lapsed)
      this.registryLine.addLive(this.registry, -1)
      this.view.publish(line, LINE_BYTES)
      released++
    }
    return released
  }

  /**
   * Sequencer side, with its sweep: releases every active line the sequencer has no session
   * for (`known`) whose last activity — its registration — is `idleMs` old. The engine learns
   * of a session only from its first batch or close marker, so without this a session whose
   * publisher died (or gave up on a late WELCOME and registered again) before its first batch
   * would hold its line until the head restarts. A line registered less than `idleMs` ago is
   * left alone: its first batch may be on its way. Returns how many.
   */
  releaseUnadopted(nowMs: number, idleMs: number, known: (clientId: number, sessionEpoch: number) => boolean): number {
    let released = 0
    const { lines } = this
    for (let slot = 0; slot < this.slots; slot++) {
      const line = this.line(slot)
      this.view.invalidate(line, LINE_BYTES)
      if (lines.state(line) !== SessionState.active) continue
      // A registration still finishing its write is looked at in a later sweep.
      const version = lines.version(line)
      if ((version & 1) !== 0) continue
      const clientId = lines.clientId(line)
      const sessionEpoch = lines.sessionEpoch(line)
      const lastActivityMs = lines.lastActivityMs(line)
      if (lines.version(line) !== version || lines.state(line) !== SessionState.active) continue
      if (!(nowMs - lastActivityMs >= idleMs) || known(clientId, sessionEpoch)) continue
      this.release(slot, clientId, sessionEpoch, {
        next: lines.next(line),
        orderedMessages: lines.orderedMessages(line),
        duplicates: lines.duplicates(line),
        held: 0,
        lastActivityMs,
        fenced: false
      })
      released++
    }
    return released
  }

  /**
   * Sequencer side (recovery): every line that holds a session, with what it says. `torn`: a
   * writer (the sequencer or the durable tier, as no other writes a line that is not mid-claim)
   * was killed inside the line's seqlock, so its words may mix two writes: a frontier with
   * the bitmap of another (batches read as ordered above it that were not, or not read that were).
   */
  forEachSession(
    visit: (
      slot: number,
      clientId: number,
      sessionEpoch: number,
      state: LineState,
      fields: SessionFields,
      torn: boolean
    ) => void
  ): void {
    const { lines } = this
    for (let slot = 0; slot < this.slots; slot++) {
      const line = this.line(slot)
      this.view.invalidate(line, SESSION_LINE_BYTES)
      const state = lines.state(line) as LineState
      if (state === SessionState.empty) continue
      const version = lines.version(line)
      const torn = state !== SessionState.claiming && (version & 1) !== 0
      // The sequencer is the writer now.
      if (torn) lines.storeVersion(line, version & ~1)
      visit(
        slot,
        lines.clientId(line),
        lines.sessionEpoch(line),
        state,
        this.fieldsAt(line, state === SessionState.fenced),
        torn
      )
    }
  }

  private write(
    slot: number,
    clientId: number,
    sessionEpoch: number,
    fields: SessionFields,
    /** The state stored last; by default active, or fenced. */
    state?: typeof SessionState.released | typeof SessionState.lapsed | typeof SessionState.claiming
  ): void {
    const { lines } = this
    const line = this.line(slot)
    const words = aheadWords(fields)
    const version = lines.version(line) & ~1
    lines.storeVersion(line, version + 1)
    lines.setClientId(line, clientId)
    lines.setSessionEpoch(line, sessionEpoch)
    lines.setNext(line, fields.next)
    lines.setOrderedMessages(line, fields.orderedMessages)
    lines.setDuplicates(line, fields.duplicates)
    lines.setHeld(line, fields.held)
    lines.setLastActivityMs(line, fields.lastActivityMs)
    // A claim clears every word whatever its view of them (it never read the bitmap's line); the
    // sequencer's view is the bitmap as it last wrote or restored it, so it writes only what changed.
    let bitmap = state === SessionState.claiming
    for (let w = 0; w < AHEAD_WORDS; w++) {
      const word = words?.[w] ?? 0
      if (!bitmap && word === 0 && lines.aheadWord(line, w) === 0) continue
      lines.writeAheadWord(line, w, word)
      bitmap = true
    }
    lines.storeState(line, state ?? (fields.fenced ? SessionState.fenced : SessionState.active))
    // The bitmap's line is written back only when the bitmap is or was not empty (never in order 5).
    this.view.publish(line, bitmap ? SESSION_LINE_BYTES : LINE_BYTES)
    lines.storeVersion(line, version + 2)
    this.view.publish(line, 4)
  }
}

/** A session table over a private buffer (the in-memory fakes): registry line, then the lines. */
export const memorySessionTable = (slots: number): SessionTable => {
  const buffer = new ArrayBuffer(LINE_BYTES + slots * SESSION_LINE_BYTES)
  const view: LineView = {
    i32: new Int32Array(buffer),
    u32: new Uint32Array(buffer),
    f64: new Float64Array(buffer),
    publish: () => {},
    invalidate: () => {}
  }
  return new SessionTable(view, LINE_BYTES, 0, slots)
}
