/**
 * byKey: a member's share of the key buckets, looked at on every look (GroupMember.ts). It hands
 * back the buckets it drained once none of their messages it handed out is unsettled, drains what
 * it holds over ⌈buckets / live members⌉ while another live member is short of that, and takes
 * free buckets up to it. A bucket taken whose frontier lies behind where it reads sends its reader
 * back there (GroupBuckets.ts tells why no key is ever handed out by two members at once).
 */
import { ownerRef } from "./GroupBuckets.js"
import type { MemberState } from "./GroupMemberState.js"
import { scanPosition } from "./GroupMemberState.js"
import type { GroupObject } from "./GroupObject.js"

/**
 * Dead member `ref`'s claims that never handed their message out (it died after writing the
 * entry, before moving the bucket's frontier past it) are freed while the buckets are still its,
 * so no other member can have moved those frontiers: judged later, once the next owner had handed
 * such a message out itself and moved the frontier past it, the entry would read as handed out and
 * its message be delivered a second time.
 */
const releaseUnhanded = (group: GroupObject, ref: number): void => {
  const { buckets, pending } = group
  pending.releaseClaimsOf(ref, (offset, bucket) => offset < buckets.frontier(bucket))
}

/**
 * A dead member's buckets handed back: its claims that handed nothing out freed first, then each
 * bucket's frontier raised to where it had scanned (`scanned`: every message of its buckets
 * before that was handed out, so the raise leaves those claims' judgement as it was).
 */
export const handBackDead = (group: GroupObject, ref: number, scanned: number): void => {
  releaseUnhanded(group, ref)
  group.buckets.handBack(ref, scanned)
}

export const shareKeys = (m: MemberState): void => {
  const { buckets, members } = m.group
  const live = members.live()
  const share = Math.ceil(buckets.count / Math.max(1, live.length))
  const owned = buckets.owned(m.ref)
  const scanned = scanPosition(m)

  for (const bucket of owned.draining) {
    if ((m.byLane.get(bucket) ?? 0) === 0) buckets.release(bucket, m.ref, scanned)
  }
  const mine = owned.mine
  if (mine.length > share) {
    const counts = buckets.counts()
    const short = live.some((member) => member.ref !== m.ref && (counts.get(member.ref) ?? 0) < share)
    if (short) {
      for (const bucket of mine.splice(share)) buckets.drain(bucket, m.ref, scanned)
    }
  }

  const taken: Array<number> = []
  // Dead owners whose claims were freed this look: each one's are looked for once, not per bucket.
  const freed = new Set<number>()
  // Each member starts looking at its own place, so members joining together rarely race for one bucket.
  const first = (m.ref & 1023) * 97
  for (let n = 0; n < buckets.count && mine.length + taken.length < share; n++) {
    const bucket = (first + n) % buckets.count
    const word = buckets.ownerWord(bucket)
    if (word !== 0) {
      // A dead owner whose line was taken again before anyone handed its buckets back: freed here,
      // its frontier as it stands (messages past it may be handed out twice, none lost), its claims
      // that handed nothing out freed first.
      const dead = ownerRef(word)
      if (members.isLive(dead)) continue
      if (!freed.has(dead)) {
        releaseUnhanded(m.group, dead)
        freed.add(dead)
      }
      if (!m.group.words.cas32(m.group.layout.bucketOwner(bucket), word, 0)) continue
    }
    if (buckets.take(bucket, m.ref)) taken.push(bucket)
  }

  m.owned = new Set([...mine, ...taken])
  m.draining = new Set(buckets.owned(m.ref).draining)
  if (taken.length > 0) {
    // Not reading yet (it owned nothing): it starts at the lowest of them.
    const back = Math.min(...taken.map((bucket) => buckets.frontier(bucket)))
    if (!m.reader.isOpen() || back < scanPosition(m)) m.seekTo = Math.min(back, m.seekTo ?? Infinity)
  }
  members.setScanned(m.ref, scanPosition(m))
}
