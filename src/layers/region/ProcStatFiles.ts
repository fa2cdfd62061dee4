/**
 * /proc/PID/stat read through a file kept open per pid. An open /proc file stands for the
 * process it was opened on, not for the number: once that process is gone a read fails (ESRCH),
 * even after a later process took the pid. So a read that succeeds is of the process the pid
 * names now, and a kept file costs a liveness check one pread(2) where opening, reading and
 * closing the file took three system calls and a string decode: processes judge their peers
 * alive on every tick, and in an idle broker those checks were a sixth of its CPU.
 */
import { closeSync, openSync, readSync } from "node:fs"

/** Files kept at most: more pids than a region's processes, few enough to be no burden on the fd table. */
const KEPT_FILES = 64

/** Open stat files by pid, the least recently opened first. */
const kept = new Map<number, number>()

/** A /proc stat line fits in far less: 52 numeric fields and a command name of at most 64 bytes. */
const line = Buffer.alloc(4096)

const readFrom = (fd: number): string => line.toString("latin1", 0, readSync(fd, line, 0, line.length, 0))

const forget = (pid: number, fd: number): void => {
  kept.delete(pid)
  try {
    closeSync(fd)
  } catch {
    // Closed already: nothing is held.
  }
}

/** The text of /proc/`pid`/stat; undefined where no process has the pid now, or there is no /proc. */
export const readProcStat = (pid: number): string | undefined => {
  const fd = kept.get(pid)
  if (fd !== undefined) {
    try {
      return readFrom(fd)
    } catch {
      // Its process is gone; a later one may have the pid.
      forget(pid, fd)
    }
  }
  let opened: number
  try {
    opened = openSync(`/proc/${pid}/stat`, "r")
  } catch {
    return undefined
  }
  try {
    const text = readFrom(opened)
    if (kept.size >= KEPT_FILES) {
      const [oldest, oldestFd] = kept.entries().next().value!
      forget(oldest, oldestFd)
    }
    kept.set(pid, opened)
    return text
  } catch {
    closeSync(opened)
    return undefined
  }
}
