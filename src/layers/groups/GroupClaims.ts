/**
 * Who won each claim of a group without keys. Members claim new messages from one frontier, and a
 * member killed anywhere in its claim leaves claiming entries the others must judge: were their
 * messages handed out? The frontier alone cannot tell (it moves past their offsets whether this
 * member's claim won or a rival's did for the same offsets), and neither can a record the winner
 * writes after its swap (it may die between the two). So a claim is won by a swap that names
 * its winner:
 * - the frontier word carries the number k of the next claim beside the offset;
 * - a member claiming writes its count into its own member line (its intent for claim k), then
 *   swaps record k mod CLAIM_RECORDS of the claims' ring from what claim k − CLAIM_RECORDS left
 *   there to (k, its reference): the one swap that lands wins claim k;
 * - the frontier then moves past the winner's count to claim k + 1, by the winner or by anyone
 *   reading the frontier after its win (`read` finishes a won claim before it answers).
 * A dead member's claiming entry for claim k is judged by record k: it names the dead member
 * (handed out), or another (a rival won: not handed out); a record of an older claim while the
 * frontier still has claim k means nobody won it, and a dead member never will (not handed out).
 * Only when the ring went round since (CLAIM_RECORDS claims) is it unknown: looked at again
 * later, and taken once its deadline passed (delivered at least once, never lost).
 */
import { highHalf, lowHalf, pairWord } from "../region/Words64.js"
import { CLAIM_RECORDS, type GroupLayout, MemberLine } from "./GroupLayout.js"
import { refSlot } from "./GroupMembers.js"
import type { GroupWords } from "./GroupWords.js"

const OFFSET_BITS = 40n
const OFFSET_MASK = (1n << OFFSET_BITS) - 1n
const CLAIM_MASK = (1 << 24) - 1

/** The frontier word: the next offset to hand out (less the start offset) and the number of the next claim. */
const frontierWord = (relative: number, claim: number): bigint =>
  BigInt(relative) | (BigInt(claim & CLAIM_MASK) << OFFSET_BITS)

/** Claim k as records and intents name it: from 1, so a word never written (0) names none. */
const tagOf = (claim: number): number => (claim & CLAIM_MASK) + 1

/** A frontier as a member read it: the offset, and the claim that moves it on. */
export interface Frontier {
  readonly word: bigint
  readonly offset: number
  readonly claim: number
}

/** How a dead member's claiming entry is judged. */
export type ClaimVerdict = "handed-out" | "not-handed-out" | "unknown"

export class GroupClaims {
  private readonly start: number
  constructor(private readonly words: GroupWords, private readonly layout: GroupLayout) {
    this.start = layout.config.startOffset
  }

  private frontierOf(word: bigint): Frontier {
    return { word, offset: this.start + Number(word & OFFSET_MASK), claim: Number(word >> OFFSET_BITS) }
  }

  /** The frontier, any claim of it already won moved past first. */
  read(): Frontier {
    for (;;) {
      const frontier = this.frontierOf(this.words.load64(this.layout.frontier))
      const record = this.words.load64(this.layout.claimRecord(frontier.claim % CLAIM_RECORDS))
      if (lowHalf(record) !== tagOf(frontier.claim)) return frontier
      this.moveOn(frontier, highHalf(record))
      // Unmoved, the winner's line names no count for the claim: a damaged group stays where it is.
      if (this.words.load64(this.layout.frontier) === frontier.word) return frontier
    }
  }

  /** Moves the frontier past claim `from.claim`, won by `winner`, by the count its intent names. */
  private moveOn(from: Frontier, winner: number): void {
    const intent = this.words.load64(this.layout.member(refSlot(winner)) + MemberLine.intent)
    // Another tag: the winner's line has moved on to a later claim, so the frontier has moved already.
    if (lowHalf(intent) === tagOf(from.claim)) this.advance(from, highHalf(intent))
  }

  /** The frontier from `from` past claim `from.claim`'s `count` offsets, unless another moved it first. */
  private advance(from: Frontier, count: number): void {
    this.words.cas64(this.layout.frontier, from.word, frontierWord(from.offset - this.start + count, from.claim + 1))
  }

  /**
   * Wins claim `from.claim` for `ref`, taking `count` offsets from `from.offset`: its intent
   * written, then the record swapped. False if another member won it (or `from` is stale); the
   * frontier is not moved yet (`claim` does, and so does anyone's `read`).
   */
  win(from: Frontier, count: number, ref: number): boolean {
    const at = this.layout.claimRecord(from.claim % CLAIM_RECORDS)
    const record = this.words.load64(at)
    // Still as the claim CLAIM_RECORDS before left it (or never written): claim k is open.
    if (record !== 0n && lowHalf(record) !== tagOf(from.claim - CLAIM_RECORDS)) return false
    this.words.store64(this.layout.member(refSlot(ref)) + MemberLine.intent, pairWord(tagOf(from.claim), count))
    return this.words.cas64(at, record, pairWord(tagOf(from.claim), ref))
  }

  /** Claims `count` offsets from `from` for `ref` and moves the frontier past them; false if another member's claim won. */
  claim(from: Frontier, count: number, ref: number): boolean {
    if (!this.win(from, count, ref)) return false
    this.advance(from, count)
    return true
  }

  /** Whether claim number `claim` of the dead member `ref` was handed out. */
  judge(claim: number, ref: number): ClaimVerdict {
    // The frontier first: still at claim k, a record read after it that does not name k means
    // nobody had won k, and a dead member never will. Past k, k was won: a record not naming it
    // was written over by a claim CLAIM_RECORDS later.
    const open = this.frontierOf(this.words.load64(this.layout.frontier)).claim === (claim & CLAIM_MASK)
    const record = this.words.load64(this.layout.claimRecord(claim % CLAIM_RECORDS))
    if (lowHalf(record) === tagOf(claim)) return highHalf(record) === ref ? "handed-out" : "not-handed-out"
    return open ? "not-handed-out" : "unknown"
  }
}
