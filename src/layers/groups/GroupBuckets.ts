/**
 * byKey: a group's key buckets. A message's key hashes to one of `KEY_BUCKETS` buckets (a message
 * without a key to its offset's), each owned by one live member (its reference in the bucket's
 * owner word, taken by compare-and-swap), which alone hands out the bucket's messages, in offset
 * order, moving the bucket's frontier past each one as it claims it.
 *
 * Ownership moves without two members ever holding a key's messages at once:
 * - a member takes free buckets (and a dead member's, handed back first) up to its fair share,
 *   ⌈buckets / live members⌉;
 * - a member over its share **drains** the excess: it raises each one's frontier to where it has
 *   scanned (every message of its buckets before that was handed out), marks it draining (bit 31
 *   of the owner word), hands out none of its messages any more, and frees it once none of its
 *   messages it handed out is unsettled — the next owner starts at the frontier;
 * - a dead member's buckets are handed back by whoever notices: each frontier raised to where the
 *   dead member had scanned (not for buckets it was draining: it stopped handing those out), the
 *   owner word cleared. Its pending entries go to the bucket's next owner, who delivers them again
 *   before any later message of the bucket.
 */
import type { GroupLayout } from "./GroupLayout.js"
import type { GroupWords } from "./GroupWords.js"

/** Bit 31 of an owner word: its member is handing the bucket back. */
const DRAINING = 0x80000000
/** The member reference an owner word names (0: none). */
export const ownerRef = (word: number): number => (word & ~DRAINING) >>> 0
export const isDraining = (word: number): boolean => (word & DRAINING) !== 0

/** FNV-1a over a key's bytes, as the bucket's index. */
export const bucketOf = (key: Uint8Array | undefined, offset: number, buckets: number): number => {
  if (key === undefined) return offset % buckets
  let hash = 0x811c9dc5
  for (let i = 0; i < key.length; i++) {
    hash ^= key[i]!
    hash = Math.imul(hash, 0x01000193)
  }
  return (hash >>> 0) % buckets
}

/** The buckets one member owns: those it hands out, and those it is handing back. */
export interface Owned {
  readonly mine: Array<number>
  readonly draining: Array<number>
}

export class GroupBuckets {
  private readonly start: number
  constructor(private readonly words: GroupWords, private readonly layout: GroupLayout) {
    this.start = layout.config.startOffset
  }

  get count(): number {
    return this.layout.config.buckets
  }
  ownerWord(bucket: number): number {
    return this.words.load32(this.layout.bucketOwner(bucket))
  }
  /** The first offset of the bucket not handed out yet (absolute). */
  frontier(bucket: number): number {
    return this.start + this.words.number64(this.layout.bucketFrontier(bucket))
  }
  /** Every message of the bucket before `offset` was handed out. */
  raiseFrontier(bucket: number, offset: number): void {
    if (offset > this.start) this.words.raise64(this.layout.bucketFrontier(bucket), offset - this.start)
  }

  /** What `ref` owns now. */
  owned(ref: number): Owned {
    const owned: Owned = { mine: [], draining: [] }
    for (let b = 0; b < this.count; b++) {
      const word = this.ownerWord(b)
      if (ownerRef(word) !== ref) continue
      if (!isDraining(word)) owned.mine.push(b)
      else owned.draining.push(b)
    }
    return owned
  }

  /** How many buckets each owner holds (draining ones included), by reference; free ones under 0. */
  counts(): Map<number, number> {
    const counts = new Map<number, number>()
    for (let b = 0; b < this.count; b++) {
      const ref = ownerRef(this.ownerWord(b))
      counts.set(ref, (counts.get(ref) ?? 0) + 1)
    }
    return counts
  }

  /** Hands back every bucket of the member `ref` that is gone, which had scanned up to `scanned`. */
  handBack(ref: number, scanned: number): void {
    for (let b = 0; b < this.count; b++) {
      const word = this.ownerWord(b)
      if (ownerRef(word) !== ref) continue
      if (!isDraining(word)) this.raiseFrontier(b, scanned)
      this.words.cas32(this.layout.bucketOwner(b), word, 0)
    }
  }

  /** Takes a free bucket for `ref`; false if another member was first. */
  take(bucket: number, ref: number): boolean {
    return this.words.cas32(this.layout.bucketOwner(bucket), 0, ref)
  }

  /** `ref` stops handing out the bucket's messages, all of them before `scanned` handed out. */
  drain(bucket: number, ref: number, scanned: number): void {
    this.raiseFrontier(bucket, scanned)
    this.words.cas32(this.layout.bucketOwner(bucket), ref, (ref | DRAINING) >>> 0)
  }

  /** Frees a bucket `ref` drained (or, leaving, one it hands out: every message of it before `scanned` handed out). */
  release(bucket: number, ref: number, scanned: number): void {
    const word = this.ownerWord(bucket)
    if (ownerRef(word) !== ref) return
    if (!isDraining(word)) this.raiseFrontier(bucket, scanned)
    this.words.cas32(this.layout.bucketOwner(bucket), word, 0)
  }

  /** The lowest frontier of the group's buckets: where its dispatch stands as a whole. */
  lowestFrontier(): number {
    let lowest = Infinity
    for (let b = 0; b < this.count; b++) lowest = Math.min(lowest, this.frontier(b))
    return lowest === Infinity ? this.start : lowest
  }
}
