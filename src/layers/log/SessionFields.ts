/**
 * A session line as the sequencer publishes it in the session table (SessionTable.ts), its ahead
 * bitmap included (SessionAhead.ts).
 */

/** The sequencer's published state of a session. */
export interface SessionFields {
  readonly next: number
  readonly orderedMessages: number
  readonly duplicates: number
  readonly held: number
  readonly lastActivityMs: number
  readonly fenced: boolean
  /** Orders 0/2/4: batch seqs ordered above `next` (each below next + 1 + AHEAD_WINDOW); none when absent. */
  readonly ahead?: ReadonlySet<number>
}
