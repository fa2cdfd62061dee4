/** What a reader slot's state word and a reader's waiting word hold. */
import type { ReaderSlotState } from "../../services/control/Rings.js"

export const FREE = 0
/**
 * A slot being claimed: ATTACHING in the state word's low two bits, the claimer's pid above
 * them (`claimOf`). The claim and the claimer's identity are one atomic step, so a claimer
 * killed before it wrote its line (pid, occurrence) leaves a claim whose owner can still be
 * tested, and the slot is reaped (`reapSlot`) rather than lost. Other states are bare values.
 */
const ATTACHING = 1
export const claimOf = (pid: number): number => (pid * 4 + ATTACHING) >>> 0
export const isClaim = (state: number): boolean => (state & 3) === ATTACHING
export const claimerOf = (state: number): number => state >>> 2
/**
 * An attached slot: ATTACHED in the state word's low two bits, the reader's occurrence (low 30
 * bits) above them (`attachedOf`), so the word names its owner: a reader's own check is one load,
 * and its detach (a compare-and-swap from that word) never frees a successor's slot.
 */
const ATTACHED = 2
export const attachedOf = (occurrence: number): number => ((occurrence & 0x3fffffff) * 4 + ATTACHED) >>> 0
export const isAttached = (state: number): boolean => (state & 3) === ATTACHED
/**
 * A reader's waiting word: its occurrence (low 31 bits) above the flag, set and cleared by
 * compare-and-swap from its own value, so a reaped reader never sets or clears a successor's.
 */
export const waitingOf = (occurrence: number, waiting: boolean): number =>
  ((occurrence & 0x7fffffff) * 2 + (waiting ? 1 : 0)) >>> 0
/** A reader slot taken by a process that watches the readers' progress (see `progressWatch`). */
export const OBSERVING = 3

/** The next occurrence after `previous` (never 0, which means none). */
export const nextOccurrence = (previous: number): number => ((previous + 1) >>> 0) || 1

const slotStates: ReadonlyArray<ReaderSlotState> = ["free", "attaching", "attached", "observing"]
export const stateName = (state: number): ReaderSlotState =>
  isClaim(state) ? "attaching" : isAttached(state) ? "attached" : slotStates[state] ?? "corrupt"
