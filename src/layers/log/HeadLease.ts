/**
 * Whether the head is alive, judged once for every reader of the sequencer lease line: a waiter
 * watching the head (HeadWatch.ts), a standby deciding to take over (programs/Head.ts) and a
 * sequencer trying to acquire the lease (SequencerLease.ts). Invalidating the line before
 * reading it stays with the caller.
 */
import { isPidAlive } from "../region/ProcessInfo.js"
import { Offsets } from "../region/Superblock.js"
import type { LeaseLineView } from "./RecordViews.js"

/** The sequencer lease line as read at one moment, and what it says of its holder. */
export interface HeadLease {
  /** The holder's occurrence (its claim); 0 while nobody holds the lease. */
  readonly holder: number
  /** The holder's pid, published after its claim (0 until then, and once released). */
  readonly pid: number
  readonly epoch: number
  readonly expiresAtMs: number
  /**
   * Whether the holder's process runs: its pid names a live process (a zombie is gone), or a
   * holder that claimed a moment ago has not published its pid yet.
   */
  readonly running: boolean
  /** A holder has the lease, it has not expired at `nowMs`, and its process runs: the head is alive. */
  readonly held: boolean
}

export const readHeadLease = (lines: LeaseLineView, nowMs: number): HeadLease => {
  const at = Offsets.sequencerLease
  const holder = lines.occurrence(at)
  const pid = lines.pid(at)
  const expiresAtMs = lines.expiresAtMs(at)
  const running = pid > 0 ? isPidAlive(pid) : holder !== 0
  return {
    holder,
    pid,
    epoch: lines.epoch(at),
    expiresAtMs,
    running,
    held: holder !== 0 && nowMs <= expiresAtMs && running
  }
}
