/**
 * Where doorbells' wake FIFOs live and what they are named: every process of a region derives
 * a doorbell's FIFO from the region's name and the doorbell's offset. Also the removal of FIFOs
 * whose owners are gone (a process killed with SIGKILL cannot remove its own).
 */
import { Data } from "effect"
import { createHash } from "node:crypto"
import { closeSync, constants, lstatSync, mkdirSync, openSync, readdirSync, unlinkSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"

/** This user's wake FIFOs: a private directory under the temp dir (not /dev/shm, which holds regions). */
export const wakeDirectory = (): string => join(tmpdir(), `cxlog-wake-${process.getuid?.() ?? 0}`)

/** Longest encoded region name kept whole in a FIFO's file name (a file name holds 255 bytes). */
const MAX_ENCODED_NAME = 200

/**
 * The FIFO file name's region part: one per region name (injective), so two regions never share
 * FIFOs — the file region `/tmp/x/r` and the shm region `tmp_x_r` once did, and one's `mkfifo`
 * replaced the other's live FIFO. Every byte outside `[A-Za-z0-9.-]` (`_` and `/` included) is
 * `_` and two hex digits; a name too long for a file name keeps its first part and a SHA-256 of
 * the whole after a `~`, which no encoded name contains.
 */
const fifoPrefix = (name: string) => {
  let encoded = ""
  for (const byte of Buffer.from(name, "utf8")) {
    const c = String.fromCharCode(byte)
    encoded += /[A-Za-z0-9.-]/.test(c) ? c : `_${byte.toString(16).padStart(2, "0")}`
  }
  if (encoded.length > MAX_ENCODED_NAME) {
    encoded = `${encoded.slice(0, 100)}~${createHash("sha256").update(name).digest("hex")}`
  }
  return `${encoded}.`
}

/** The wake FIFO of the doorbell at `offset` of region `name`: every process of the region derives it from those two. */
export const wakeFifoPath = (name: string, offset: number): string =>
  join(wakeDirectory(), `${fifoPrefix(name)}${offset}`)

/** The wake directory is there but another user owns it or may write into it: a FIFO in it could be swapped. */
export class WakeDirectoryNotPrivate extends Data.TaggedError("WakeDirectoryNotPrivate")<{ readonly dir: string }> {
  override get message() {
    return `${this.dir} is not a directory private to this user (owner only, mode 0700)`
  }
}

/** Makes the wake directory if needed and refuses one that another user could write into (`WakeDirectoryNotPrivate`). */
export const privateDirectory = (dir: string): void => {
  try {
    mkdirSync(dir, { mode: 0o700 })
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error
  }
  const stat = lstatSync(dir)
  const uid = process.getuid?.()
  if (!stat.isDirectory() || (uid !== undefined && stat.uid !== uid) || (stat.mode & 0o077) !== 0) {
    throw new WakeDirectoryNotPrivate({ dir })
  }
}

/**
 * Removes every wake FIFO of region `name`, for whoever retires the region once none of its
 * processes runs: a process killed with SIGKILL cannot remove its own. Returns how many.
 */
export const removeWakeFifos = (name: string): number => {
  const prefix = fifoPrefix(name)
  let removed = 0
  let entries: Array<string>
  try {
    entries = readdirSync(wakeDirectory())
  } catch {
    return 0
  }
  for (const entry of entries) {
    if (!entry.startsWith(prefix) || !/^\d+$/.test(entry.slice(prefix.length))) continue
    const path = join(wakeDirectory(), entry)
    try {
      if (lstatSync(path).isFIFO()) {
        unlinkSync(path)
        removed++
      }
    } catch {
      // Removed meanwhile.
    }
  }
  return removed
}

/**
 * Removes wake FIFOs that no process has open for reading (their owners are gone: a region
 * removed while one of its processes still made its FIFO, or a process killed after its region's
 * cleanup) and that are older than `minAgeMs` (so a FIFO just made, not yet opened, stays).
 * A FIFO with a reader is live: opening it for writing without blocking succeeds. Returns how many.
 */
export const removeOrphanedWakeFifos = (minAgeMs = 60_000, directory = wakeDirectory()): number => {
  let entries: Array<string>
  try {
    entries = readdirSync(directory)
  } catch {
    return 0
  }
  let removed = 0
  for (const entry of entries) {
    const path = join(directory, entry)
    try {
      const stat = lstatSync(path)
      if (!stat.isFIFO() || Date.now() - stat.ctimeMs < minAgeMs) continue
      closeSync(openSync(path, constants.O_WRONLY | constants.O_NONBLOCK))
    } catch (error) {
      // ENXIO: nobody reads it. (Anything else, a FIFO removed meanwhile included, leaves it be.)
      if ((error as NodeJS.ErrnoException).code !== "ENXIO") continue
      try {
        unlinkSync(path)
        removed++
      } catch {
        // Removed meanwhile.
      }
    }
  }
  return removed
}
