/**
 * A group's pending entries: one 64-byte line per message handed out and not yet settled — its
 * offset, its owner (a member reference), how many times it was delivered, and its deadline. The
 * one word processes race on is the entry's control word: the owner's reference in its low half,
 * and in its high half the entry's state and a version that every change moves on, so a
 * compare-and-swap against the word a process read fails if anything changed since. Fields are
 * written only while the writer holds the entry in a state no one else changes (reserved,
 * updating), then published by the control word's store: one writer per line, commit word last.
 *
 * How an entry lives (docs/consumers.md, "How a message is handed out"):
 * - free → reserved (a member is about to claim a new message; no offset yet) → claiming (its
 *   offset written, its claim not yet won) → delivered (the claim won: the member has it, until
 *   its deadline).
 * - delivered → free: acked (or dead-lettered). delivered → waiting: nak'd, due again at its
 *   deadline. delivered → updating → delivered: its deadline moved (`inProgress`), or another
 *   member took it over.
 * - Any member takes over an entry whose owner is dead (its reference no longer live), one
 *   delivered past its deadline, or one waiting that is due. A dead owner's reserved entry held
 *   no message and is freed; its claiming one is delivered again if its claim won it, else freed
 *   (nobody won the message yet, or a rival's claim did): GroupClaims.ts (no keys: the claim's
 *   record) and GroupBuckets.ts (byKey, one claimer per bucket: its frontier) tell which.
 */
import type { ClaimVerdict } from "./GroupClaims.js"
import { type GroupLayout, PendingEntry } from "./GroupLayout.js"
import type { GroupMembers } from "./GroupMembers.js"
import type { GroupWords } from "./GroupWords.js"

export const EntryState = { free: 0, reserved: 1, claiming: 2, delivered: 3, waiting: 4, updating: 5 } as const
export type EntryState = keyof typeof EntryState
const STATE_NAMES: ReadonlyArray<EntryState> = ["free", "reserved", "claiming", "delivered", "waiting", "updating"]
const VERSION_MASK = (1 << 29) - 1

/**
 * Control words are made and taken apart through one 64-bit scratch word and its two 32-bit
 * halves (little-endian, as the region's words: the owner is the low half): one 64-bit value
 * made per word, none to read a field, where shifts and masks of 64-bit values make several —
 * a member makes and reads a few control words per message.
 */
const scratch = new BigUint64Array(1)
const halves = new Uint32Array(scratch.buffer)
const highOf = (control: bigint): number => {
  scratch[0] = control
  return halves[1]!
}
const controlWord = (owner: number, version: number, state: number): bigint => {
  halves[0] = owner
  halves[1] = ((version & VERSION_MASK) << 3) | state
  return scratch[0]!
}
export const stateOf = (control: bigint): number => highOf(control) & 7
export const ownerOf = (control: bigint): number => {
  scratch[0] = control
  return halves[0]!
}
const versionOf = (control: bigint): number => highOf(control) >>> 3
/** The control word after `control`: the next version, with this owner and state. */
const after = (control: bigint, owner: number, state: number): bigint =>
  controlWord(owner, versionOf(control) + 1, state)

/** What a member looking at an entry may do with it now. */
export type Verdict =
  | { readonly kind: "none" }
  /** Nothing yet; it may be taken at `dueMs`. */
  | { readonly kind: "later"; readonly dueMs: number }
  /** Free it: a dead owner's entry that holds no message handed out. */
  | { readonly kind: "release"; readonly observed: bigint }
  /** Take it over and deliver its message again. */
  | { readonly kind: "take"; readonly observed: bigint; readonly why: "dead" | "expired" | "due" }

const NOTHING: Verdict = { kind: "none" }

/** A dead owner's claiming entry, as its claim is judged. */
export interface Claiming {
  readonly offset: number
  readonly lane: number
  readonly owner: number
}

/** An entry as `cxlog groups pending` shows it. */
export interface EntryView {
  readonly slot: number
  readonly state: EntryState
  readonly owner: number
  readonly offset: number
  readonly deliveries: number
  readonly deadlineMs: number
  readonly firstDeliveredAtMs: number
  readonly lane: number
}

/** The message a member took over: where its entry now stands. */
export interface TakenEntry {
  readonly control: bigint
  readonly offset: number
  readonly lane: number
  readonly deliveries: number
}

export class GroupPending {
  private hint = 0
  constructor(
    private readonly words: GroupWords,
    private readonly layout: GroupLayout,
    private readonly members: GroupMembers
  ) {}

  private at(slot: number, field: keyof typeof PendingEntry): number {
    return this.layout.entry(slot) + PendingEntry[field]
  }
  control(slot: number): bigint {
    return this.words.load64(this.at(slot, "control"))
  }
  /**
   * The entry's state alone, from the control word's high half (no 64-bit value made): for
   * scans that pass over most entries. Whatever is then done with the entry swaps the whole word.
   */
  private stateAt(slot: number): number {
    return this.words.load32(this.at(slot, "control") + 4) & 7
  }
  /** Whether the entry holds (or is being made to hold) a message: not free. */
  inUse(slot: number): boolean {
    return this.stateAt(slot) !== EntryState.free
  }
  offset(slot: number): number {
    return this.words.f64(this.at(slot, "offset"))
  }
  /**
   * The lowest offset of the entries handed out and not settled (claiming, delivered, waiting, or
   * being updated), Infinity with none: a scan of the state words alone, most entries free.
   */
  lowestOffset(): number {
    let lowest = Infinity
    for (let slot = 0; slot < this.layout.config.pendingSlots; slot++) {
      if (this.stateAt(slot) > EntryState.reserved) lowest = Math.min(lowest, this.offset(slot))
    }
    return lowest
  }
  lane(slot: number): number {
    return this.words.load32(this.at(slot, "lane"))
  }

  /** A free entry reserved for `owner`'s next claim (no offset yet); undefined when every entry is in use. */
  reserve(owner: number): number | undefined {
    const slots = this.layout.config.pendingSlots
    for (let n = 0; n < slots; n++) {
      const slot = (this.hint + n) % slots
      if (this.stateAt(slot) !== EntryState.free) continue
      const control = this.control(slot)
      if (stateOf(control) !== EntryState.free) continue
      if (this.words.cas64(this.at(slot, "control"), control, after(control, owner, EntryState.reserved))) {
        this.hint = (slot + 1) % slots
        return slot
      }
    }
    return undefined
  }

  /**
   * The reserved entry names the message it claims, and its lane: the key bucket (byKey) or the
   * number of the claim it is written for (GroupClaims.ts). From now on a dead owner's claim is
   * judged by its lane; one that cannot be judged is taken once `deadlineMs` passed. Its control
   * word now, which `deliver` swaps from.
   */
  fill(slot: number, owner: number, offset: number, lane: number, deadlineMs: number): bigint {
    this.words.setF64(this.at(slot, "offset"), offset)
    this.words.store32(this.at(slot, "lane"), lane)
    this.words.setF64(this.at(slot, "deadlineMs"), deadlineMs)
    this.words.setF64(this.at(slot, "firstDeliveredAtMs"), 0)
    this.words.store32(this.at(slot, "deliveries"), 0)
    const claiming = after(this.control(slot), owner, EntryState.claiming)
    this.words.store64(this.at(slot, "control"), claiming)
    return claiming
  }

  /**
   * A claim's run of entries at once: free entries reserved for `owner` into `slots` until it
   * holds `wanted` (fewer when the table has no more free); how many it holds.
   */
  reserveRun(owner: number, slots: Int32Array, wanted: number): number {
    let held = 0
    while (held < wanted) {
      const slot = this.reserve(owner)
      if (slot === undefined) break
      slots[held++] = slot
    }
    return held
  }

  /**
   * `fill` for the run of reserved entries `slots[0..count)`, naming the offsets from `first` on,
   * each for claim number `claim`: its claiming control word goes to `controls` (what
   * `deliverRun` swaps from).
   */
  fillRun(
    slots: Int32Array,
    count: number,
    owner: number,
    first: number,
    claim: number,
    deadlineMs: number,
    controls: Array<bigint>
  ): void {
    const words = this.words
    for (let i = 0; i < count; i++) {
      const at = this.layout.entry(slots[i]!)
      words.setF64(at + PendingEntry.offset, first + i)
      words.store32(at + PendingEntry.lane, claim)
      words.setF64(at + PendingEntry.deadlineMs, deadlineMs)
      words.setF64(at + PendingEntry.firstDeliveredAtMs, 0)
      words.store32(at + PendingEntry.deliveries, 0)
      const claiming = after(words.load64(at + PendingEntry.control), owner, EntryState.claiming)
      words.store64(at + PendingEntry.control, claiming)
      controls[i] = claiming
    }
  }

  /**
   * `deliver` for the run `fillRun` wrote, its claim won: each entry delivered (its deadline is
   * the one `fillRun` wrote). Each one's control word to settle it with replaces its claiming one
   * in `controls`, or 0n when the entry is no longer as claiming (it is not this member's).
   */
  deliverRun(slots: Int32Array, count: number, controls: Array<bigint>, nowMs: number): void {
    const words = this.words
    for (let i = 0; i < count; i++) {
      const at = this.layout.entry(slots[i]!)
      const claiming = controls[i]!
      words.setF64(at + PendingEntry.firstDeliveredAtMs, nowMs)
      words.store32(at + PendingEntry.deliveries, 1)
      const delivered = after(claiming, ownerOf(claiming), EntryState.delivered)
      controls[i] = words.cas64(at + PendingEntry.control, claiming, delivered) ? delivered : 0n
    }
  }

  /** A reserved or claiming entry of `owner` that claimed nothing: free again. */
  unreserve(slot: number, owner: number): void {
    const control = this.control(slot)
    if (ownerOf(control) === owner) this.words.cas64(this.at(slot, "control"), control, after(control, 0, 0))
  }

  /**
   * The frontier moved past the claimed message: its owner has it until `deadlineMs`. The control
   * word to settle it with; undefined when the entry is no longer as `claiming` (what `fill` made).
   * Nobody else writes a live owner's claiming entry, so its fields are written before the swap.
   */
  deliver(slot: number, claiming: bigint, nowMs: number, deadlineMs: number): bigint | undefined {
    this.words.setF64(this.at(slot, "deadlineMs"), deadlineMs)
    this.words.setF64(this.at(slot, "firstDeliveredAtMs"), nowMs)
    this.words.store32(this.at(slot, "deliveries"), 1)
    const delivered = after(claiming, ownerOf(claiming), EntryState.delivered)
    return this.words.cas64(this.at(slot, "control"), claiming, delivered) ? delivered : undefined
  }

  /** Settles the owner's entry (ack, or a dead letter written): free. False when it is no longer as `expected` (taken over). */
  settle(slot: number, expected: bigint): boolean {
    return this.words.cas64(this.at(slot, "control"), expected, after(expected, 0, EntryState.free))
  }

  /**
   * The owner rewrites the entry's deadline, holding it as `updating` meanwhile: delivered again
   * with the new deadline (`inProgress`), or waiting until it (a nak). The new control word, or
   * undefined when the entry is no longer as `expected`.
   */
  reschedule(slot: number, expected: bigint, deadlineMs: number, state: "delivered" | "waiting"): bigint | undefined {
    const owner = ownerOf(expected)
    const updating = after(expected, owner, EntryState.updating)
    if (!this.words.cas64(this.at(slot, "control"), expected, updating)) return undefined
    this.words.setF64(this.at(slot, "deadlineMs"), deadlineMs)
    const next = after(updating, state === "waiting" ? 0 : owner, EntryState[state])
    this.words.store64(this.at(slot, "control"), next)
    return next
  }

  /**
   * The owner hands its delivered entry back unseen (its member never handed it to the code that
   * works on it): waiting, due at once, and this delivery not counted — the next member's take
   * counts it as the delivery it then is. A message so never delivered has no first delivery
   * either: the next take's is its first. False when the entry is no longer as `expected`.
   */
  giveBack(slot: number, expected: bigint): boolean {
    const updating = after(expected, ownerOf(expected), EntryState.updating)
    if (!this.words.cas64(this.at(slot, "control"), expected, updating)) return false
    const deliveries = Math.max(0, this.words.load32(this.at(slot, "deliveries")) - 1)
    this.words.store32(this.at(slot, "deliveries"), deliveries)
    if (deliveries === 0) this.words.setF64(this.at(slot, "firstDeliveredAtMs"), 0)
    this.words.setF64(this.at(slot, "deadlineMs"), 0)
    this.words.store64(this.at(slot, "control"), after(updating, 0, EntryState.waiting))
    return true
  }

  /**
   * What may be done with entry `slot` now; `handedOut` judges a dead owner's claiming entry by
   * its offset and lane: whether the claim it was written for moved its frontier past it.
   */
  inspect(slot: number, nowMs: number, handedOut: (claim: Claiming) => ClaimVerdict): Verdict {
    if (this.stateAt(slot) === EntryState.free) return NOTHING
    const observed = this.control(slot)
    const state = stateOf(observed)
    if (state === EntryState.free) return NOTHING
    if (state === EntryState.waiting) {
      const dueMs = this.words.f64(this.at(slot, "deadlineMs"))
      return nowMs >= dueMs ? { kind: "take", observed, why: "due" } : { kind: "later", dueMs }
    }
    const owner = ownerOf(observed)
    const alive = this.members.isLive(owner)
    if (state === EntryState.reserved) return alive ? NOTHING : { kind: "release", observed }
    if (state === EntryState.claiming) {
      if (alive) return NOTHING
      const verdict = handedOut({ offset: this.offset(slot), lane: this.lane(slot), owner })
      if (verdict === "handed-out") return { kind: "take", observed, why: "dead" }
      if (verdict === "not-handed-out") return { kind: "release", observed }
      const dueMs = this.words.f64(this.at(slot, "deadlineMs"))
      return nowMs >= dueMs ? { kind: "take", observed, why: "dead" } : { kind: "later", dueMs }
    }
    if (!alive) return { kind: "take", observed, why: "dead" }
    if (state !== EntryState.delivered) return NOTHING
    const dueMs = this.words.f64(this.at(slot, "deadlineMs"))
    return nowMs >= dueMs ? { kind: "take", observed, why: "expired" } : { kind: "later", dueMs }
  }

  /**
   * Frees the claiming entries of dead member `owner` whose message its claim never handed out
   * (`handedOut` false for its offset and lane): byKey, judged as its buckets are handed back,
   * while no other member can move their frontiers yet (GroupKeyShare.ts, `handBackDead`).
   */
  releaseClaimsOf(owner: number, handedOut: (offset: number, lane: number) => boolean): void {
    for (let slot = 0; slot < this.layout.config.pendingSlots; slot++) {
      if (this.stateAt(slot) !== EntryState.claiming) continue
      const observed = this.control(slot)
      if (ownerOf(observed) !== owner || stateOf(observed) !== EntryState.claiming) continue
      if (!handedOut(this.offset(slot), this.lane(slot))) this.release(slot, observed)
    }
  }

  /** Frees a dead owner's entry that held no message handed out; false if it changed since it was `observed`. */
  release(slot: number, observed: bigint): boolean {
    return this.words.cas64(this.at(slot, "control"), observed, after(observed, 0, EntryState.free))
  }

  /** Takes the entry `observed` over for `owner`, delivered once more until `deadlineMs`; undefined if another was first. */
  take(slot: number, observed: bigint, owner: number, nowMs: number, deadlineMs: number): TakenEntry | undefined {
    const updating = after(observed, owner, EntryState.updating)
    if (!this.words.cas64(this.at(slot, "control"), observed, updating)) return undefined
    const deliveries = this.words.load32(this.at(slot, "deliveries")) + 1
    this.words.store32(this.at(slot, "deliveries"), deliveries)
    this.words.setF64(this.at(slot, "deadlineMs"), deadlineMs)
    if (this.words.f64(this.at(slot, "firstDeliveredAtMs")) === 0) {
      this.words.setF64(this.at(slot, "firstDeliveredAtMs"), nowMs)
    }
    const control = after(updating, owner, EntryState.delivered)
    this.words.store64(this.at(slot, "control"), control)
    return { control, offset: this.offset(slot), lane: this.lane(slot), deliveries }
  }

  /** Entry `slot` as it reads now (a snapshot for reports; fields may move under it). */
  view(slot: number): EntryView {
    const control = this.control(slot)
    return {
      slot,
      state: STATE_NAMES[stateOf(control)] ?? "free",
      owner: ownerOf(control),
      offset: this.offset(slot),
      deliveries: this.words.load32(this.at(slot, "deliveries")),
      deadlineMs: this.words.f64(this.at(slot, "deadlineMs")),
      firstDeliveredAtMs: this.words.f64(this.at(slot, "firstDeliveredAtMs")),
      lane: this.lane(slot)
    }
  }
}
