/**
 * The identity a process claims a region line with, beside its pid: log participant lines
 * (log/Participants.ts) and the directory's holder lines (DirectoryHolders.ts). The claim is the
 * (occurrence, pid) pair; the occurrence carries 16 bits of the claimer's start time, so a line
 * whose pid a later process reuses is still judged its dead owner's.
 */
import { randomInt } from "node:crypto"
import { isProcessAlive, ownStartTag, shortStartTag } from "./ProcessInfo.js"

/** Low bits of an occurrence that count this process's claims; the 16 above them are its start tag's. */
export const CLAIM_COUNT_BITS = 15
const CLAIM_COUNT_MASK = (1 << CLAIM_COUNT_BITS) - 1
let claims = randomInt(0, CLAIM_COUNT_MASK + 1)

/**
 * A fresh claim identity (positive, below 2^31): distinguishes 2^15 - 1 claims in a row by one
 * process, and names the process by 16 bits of its start tag (`shortStartTag`) above them: a line
 * claimed with it is its claimer's only while its pid still names that process, not a later one
 * (pids are reused). With no start time known (off Linux) those bits are 0 and the pid alone decides.
 */
export const newOccurrence = (): number => {
  claims = (claims + 1) & CLAIM_COUNT_MASK || 1
  return (shortStartTag(ownStartTag()) << CLAIM_COUNT_BITS) | claims
}

/** Whether the process that claimed a line with `occurrence` still runs as `pid` (a later process under the pid is another). */
export const isLineOwnerAlive = (pid: number, occurrence: number): boolean =>
  isProcessAlive(pid, occurrence >>> CLAIM_COUNT_BITS, 16)
