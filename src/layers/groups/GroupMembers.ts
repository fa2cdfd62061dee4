/**
 * A group's member table: one 64-byte line per member, claimed by compare-and-swap of its claim
 * word (the member's pid and 32-bit start tag, as the directory's holder lines and the log's
 * participant lines name their processes: a later process under the pid is another), written
 * only by its member. Every claim bumps the line's generation, and a member is known elsewhere by
 * its **reference** — slot and generation in one 32-bit word — which pending entries and bucket
 * owners hold: a reference whose line was freed or claimed again, or whose process is gone, is
 * dead at once, so whatever it held is free for the others on their next look.
 *
 * Several members of one process are told apart by the lines this process holds (`heldMembers`):
 * a line naming this pid that no live member here holds is a leftover, as dead as a gone pid's.
 */
import type { CxlMemoryShape } from "../../services/region/CxlMemory.js"
import { isProcessAlive, ownStartTag } from "../region/ProcessInfo.js"
import { highHalf, lowHalf, pairWord } from "../region/Words64.js"
import { type GroupLayout, MemberLine } from "./GroupLayout.js"
import type { GroupWords } from "./GroupWords.js"

const SLOT_BITS = 10
const SLOT_MASK = (1 << SLOT_BITS) - 1
/** Generations kept in a reference: 21 bits, so a reference never sets bit 31 (a bucket owner's draining mark). */
const GENERATION_MASK = (1 << 21) - 1
const ACTIVE = 1

export const memberRef = (slot: number, generation: number): number => ((generation << SLOT_BITS) | slot) >>> 0
export const refSlot = (ref: number): number => ref & SLOT_MASK
const refGeneration = (ref: number): number => ref >>> SLOT_BITS
/** A line's claim count as the generation its references carry (never 0: a reference is never 0). */
const generationOf = (claims: number): number => (claims & GENERATION_MASK) || GENERATION_MASK

/**
 * Member lines of each region this process holds, shared by every group over the region — by
 * the region's name for one other processes map (this process may map it more than once: each
 * mapping must see the members of the others as this process's live ones), by its bytes for a
 * private one.
 */
const heldByName = new Map<string, Set<number>>()
const heldByBytes = new WeakMap<ArrayBuffer, Set<number>>()
export const heldMembers = (region: CxlMemoryShape): Set<number> => {
  const found = region.crossProcess ? heldByName.get(region.name) : heldByBytes.get(region.buffer)
  if (found !== undefined) return found
  const held = new Set<number>()
  if (region.crossProcess) heldByName.set(region.name, held)
  else heldByBytes.set(region.buffer, held)
  return held
}

/** A live member as its line says. */
export interface MemberSnapshot {
  readonly slot: number
  readonly ref: number
  readonly pid: number
  readonly joinedAtMs: number
  readonly maxInFlight: number
  readonly delivered: number
  readonly acked: number
}

/**
 * Whether claims' processes run. /proc is read at most once per `aliveForMs` for a claim found
 * alive; a claim found dead stays dead (a pid and start tag never come back).
 */
export class ClaimLiveness {
  private readonly checked = new Map<bigint, number>()
  private readonly dead = new Set<bigint>()
  constructor(private readonly aliveForMs: number) {}

  isAlive(claim: bigint): boolean {
    if (this.dead.has(claim)) return false
    const at = this.checked.get(claim)
    const now = performance.now()
    if (at !== undefined && now - at < this.aliveForMs) return true
    if (isProcessAlive(lowHalf(claim), highHalf(claim), 32)) {
      this.checked.set(claim, now)
      return true
    }
    this.checked.delete(claim)
    // Bounded: a dead claim is looked up only while its line still shows it.
    if (this.dead.size > 4096) this.dead.clear()
    this.dead.add(claim)
    return false
  }
}

export class GroupMembers {
  private readonly held: Set<number>
  readonly ownClaim = pairWord(process.pid, ownStartTag())
  constructor(
    private readonly words: GroupWords,
    private readonly layout: GroupLayout,
    private readonly liveness: ClaimLiveness
  ) {
    this.held = heldMembers(words.region)
  }

  private at(slot: number, field: keyof typeof MemberLine): number {
    return this.layout.member(slot) + MemberLine[field]
  }

  private claimAlive(slot: number, claim: bigint): boolean {
    if (claim === 0n) return false
    if (lowHalf(claim) === process.pid) return claim === this.ownClaim && this.held.has(this.layout.member(slot))
    return this.liveness.isAlive(claim)
  }

  /** The reference the member now in `slot` has (whether or not one is there). */
  refAt(slot: number): number {
    return memberRef(slot, generationOf(this.words.load32(this.at(slot, "generation"))))
  }

  /** Whether `ref` names a member that is still in the group and whose process runs. */
  isLive(ref: number): boolean {
    const slot = refSlot(ref)
    if (slot >= this.layout.config.memberSlots) return false
    return this.words.load32(this.at(slot, "state")) === ACTIVE &&
      generationOf(this.words.load32(this.at(slot, "generation"))) === refGeneration(ref) &&
      this.claimAlive(slot, this.words.load64(this.at(slot, "claim")))
  }

  /** Slots claimed by a process that is gone (or by no live member of this one): their members are dead. */
  deadSlots(): Array<number> {
    const dead: Array<number> = []
    for (let slot = 0; slot < this.layout.config.memberSlots; slot++) {
      const claim = this.words.load64(this.at(slot, "claim"))
      if (claim !== 0n && !this.claimAlive(slot, claim)) dead.push(slot)
    }
    return dead
  }

  /** Frees a dead member's line (after what it held was handed back); false if it changed meanwhile. */
  free(slot: number): boolean {
    const claim = this.words.load64(this.at(slot, "claim"))
    if (claim === 0n || this.claimAlive(slot, claim)) return false
    if (!this.words.cas64(this.at(slot, "claim"), claim, 0n)) return false
    this.words.add64(this.layout.counter("membership"), 1)
    return true
  }

  /**
   * Claims a free line (or a dead member's, after `beforeTakingDead` handed back what it held) for
   * a new member of this process; its reference, or undefined when every line has a live member.
   */
  join(maxInFlight: number, nowMs: number, beforeTakingDead: (slot: number) => void): number | undefined {
    for (let slot = 0; slot < this.layout.config.memberSlots; slot++) {
      const claimAt = this.at(slot, "claim")
      const claim = this.words.load64(claimAt)
      if (claim !== 0n) {
        if (this.claimAlive(slot, claim)) continue
        beforeTakingDead(slot)
      }
      if (!this.words.cas64(claimAt, claim, this.ownClaim)) continue
      this.held.add(this.layout.member(slot))
      let claims = this.words.add32(this.at(slot, "generation"), 1) + 1
      if ((claims & GENERATION_MASK) === 0) claims = this.words.add32(this.at(slot, "generation"), 1) + 1
      this.words.setF64(this.at(slot, "joinedAtMs"), nowMs)
      this.words.setF64(this.at(slot, "scanned"), 0)
      this.words.setF64(this.at(slot, "delivered"), 0)
      this.words.setF64(this.at(slot, "acked"), 0)
      this.words.store32(this.at(slot, "maxInFlight"), maxInFlight)
      this.words.store32(this.at(slot, "state"), ACTIVE)
      this.words.add64(this.layout.counter("membership"), 1)
      return memberRef(slot, generationOf(claims))
    }
    return undefined
  }

  /** The member `ref` of this process leaves: its line is free, and what it held is the others' at once. */
  leave(ref: number): void {
    const slot = refSlot(ref)
    this.words.store32(this.at(slot, "state"), 0)
    this.words.cas64(this.at(slot, "claim"), this.ownClaim, 0n)
    this.held.delete(this.layout.member(slot))
    this.words.add64(this.layout.counter("membership"), 1)
  }

  /** Every live member, from the lines. */
  live(): Array<MemberSnapshot> {
    const members: Array<MemberSnapshot> = []
    for (let slot = 0; slot < this.layout.config.memberSlots; slot++) {
      const ref = this.refAt(slot)
      if (!this.isLive(ref)) continue
      members.push({
        slot,
        ref,
        pid: lowHalf(this.words.load64(this.at(slot, "claim"))),
        joinedAtMs: this.words.f64(this.at(slot, "joinedAtMs")),
        maxInFlight: this.words.load32(this.at(slot, "maxInFlight")),
        delivered: this.words.f64(this.at(slot, "delivered")),
        acked: this.words.f64(this.at(slot, "acked"))
      })
    }
    return members
  }

  /** byKey: every message of the member's buckets before `offset` was dispatched (its line's own word). */
  setScanned(ref: number, offset: number): void {
    this.words.setF64(this.at(refSlot(ref), "scanned"), offset)
  }
  scanned(slot: number): number {
    return this.words.f64(this.at(slot, "scanned"))
  }

  /** The member's own counts, written only by it. */
  countDelivered(ref: number, n: number): void {
    const at = this.at(refSlot(ref), "delivered")
    this.words.setF64(at, this.words.f64(at) + n)
  }
  countAcked(ref: number, n: number): void {
    const at = this.at(refSlot(ref), "acked")
    this.words.setF64(at, this.words.f64(at) + n)
  }
}
