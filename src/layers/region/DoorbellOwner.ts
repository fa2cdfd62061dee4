/**
 * Who waits on a doorbell line, so that two processes never do. Each owner's wake FIFO has the
 * line's one path: a second owner's FIFO would take the first's place, and every wake of the
 * first would be lost to its park bound (a second apart) without a word. The owner's pid is kept
 * in the line (+12); a line is taken only when that process is gone or no longer holds the
 * line's FIFO open (a pid reused since, an owner that closed its doorbell).
 */
import { readdirSync, readlinkSync } from "node:fs"
import { isPidAlive } from "./ProcessInfo.js"

/** The owner's pid, in the line's fourth word (DOORBELL_BYTES: the first three are the bell's). */
export const ownerWord = (offset: number): number => offset / 4 + 3

/** Whether process `pid` holds the FIFO at `path` open (its fds, as /proc shows them to this user). */
const holdsOpen = (pid: number, path: string): boolean => {
  try {
    const dir = `/proc/${pid}/fd`
    return readdirSync(dir).some((fd) => {
      try {
        return readlinkSync(`${dir}/${fd}`) === path
      } catch {
        return false
      }
    })
  } catch {
    return false
  }
}

/** The live process that waits on the line whose wake FIFO is `path`, if any. */
export const liveOwner = (i32: Int32Array, offset: number, path: string): number | undefined => {
  const pid = Atomics.load(i32, ownerWord(offset))
  return pid > 0 && isPidAlive(pid) && holdsOpen(pid, path) ? pid : undefined
}
