/**
 * Who won each claim of a group without keys. Members claim new messages from one frontier by
 * compare-and-swap, and a member killed between writing its claiming entries and learning
 * whether its swap won leaves entries nobody could judge by the frontier alone: the frontier
 * moved past their offsets either way (its own swap, or a rival's for the same offsets). So
 * the frontier word carries a claim number beside the offset — each swap moves it on by one, so
 * exactly one swap leaves each number — and the winner of claim number k writes its reference
 * into record k of a ring at once. A claiming entry names the claim number it was written for,
 * and is judged:
 * - the frontier's number is still k: its swap has not happened — not handed out (freed);
 * - record k names its owner: handed out (delivered again); another member: it lost (freed);
 * - record k not written yet (its winner between its swap and its record) or written over (the
 *   ring went round): looked at again later, and taken once its deadline passed — a message
 *   may then be delivered twice (at least once), never lost.
 */
import { highHalf, lowHalf, pairWord } from "../region/Words64.js"
import { CLAIM_RECORDS, type GroupLayout } from "./GroupLayout.js"
import type { GroupWords } from "./GroupWords.js"

const OFFSET_BITS = 40n
const OFFSET_MASK = (1n << OFFSET_BITS) - 1n
const CLAIM_MASK = (1 << 24) - 1

/** The frontier word: the next offset to hand out (less the start offset) and the number of the next claim. */
const frontierWord = (relative: number, claim: number): bigint =>
  BigInt(relative) | (BigInt(claim & CLAIM_MASK) << OFFSET_BITS)

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

  read(): Frontier {
    const word = this.words.load64(this.layout.frontier)
    return { word, offset: this.start + Number(word & OFFSET_MASK), claim: Number(word >> OFFSET_BITS) }
  }

  /** Moves the frontier from `from` past `count` offsets for `ref`, recording it the winner; false if another was first. */
  claim(from: Frontier, count: number, ref: number): boolean {
    const next = frontierWord(from.offset - this.start + count, from.claim + 1)
    if (!this.words.cas64(this.layout.frontier, from.word, next)) return false
    // Numbered from 1: a record never written (0) names no claim.
    this.words.store64(this.layout.claimRecord(from.claim % CLAIM_RECORDS), pairWord(from.claim + 1, ref))
    return true
  }

  /** Whether claim number `claim` of the dead member `ref` was handed out. */
  judge(claim: number, ref: number): ClaimVerdict {
    const now = this.read().claim
    const since = (now - claim) & CLAIM_MASK
    if (since === 0) return "not-handed-out"
    if (since > CLAIM_RECORDS) return "unknown"
    const record = this.words.load64(this.layout.claimRecord(claim % CLAIM_RECORDS))
    if (lowHalf(record) !== claim + 1) return "unknown"
    return highHalf(record) === ref ? "handed-out" : "not-handed-out"
  }
}
