/**
 * A region its creator never finished: a head killed between making the file and writing its
 * superblock leaves one of the full size, all zeros. No cxlog command could list, remove or
 * reuse it ("already exists"; "not initialised by its creator"). It is told from another
 * program's file by its first bytes being zero where the superblock goes, and from a region being
 * made right now by the processes that map it.
 */
import { closeSync, openSync, readdirSync, readFileSync, readSync, statSync } from "node:fs"
import { SUPERBLOCK_BYTES } from "../../layers/region/Superblock.js"

export interface UnfinishedRegion {
  readonly bytes: number
  readonly residentBytes: number
  /** Processes that map it (its creator, still making it); none: it was abandoned, or is not mapped yet. */
  readonly mappedBy: ReadonlyArray<number>
  /** When its file last changed (ms since the epoch): a creator sizes it just before it maps it. */
  readonly changedAtMs: number
}

/**
 * Whether the bytes where the superblock goes are all zero: the whole file when it is shorter (a
 * creator killed before it sized the file leaves it empty); an unreadable file is not.
 */
const zeroHeader = (path: string): boolean => {
  let fd: number | undefined
  try {
    fd = openSync(path, "r")
    const bytes = new Uint8Array(SUPERBLOCK_BYTES)
    const read = readSync(fd, bytes, 0, SUPERBLOCK_BYTES, 0)
    return (read === SUPERBLOCK_BYTES || read === statSync(path).size) && bytes.every((b) => b === 0)
  } catch {
    return false
  } finally {
    if (fd !== undefined) closeSync(fd)
  }
}

/** The processes whose memory maps `path` (those this user may look at: no other could map a 0600 region). */
const mappersOf = (path: string): Array<number> => {
  const pids: Array<number> = []
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue
    try {
      if (readFileSync(`/proc/${entry}/maps`, "utf8").includes(path)) pids.push(Number(entry))
    } catch {
      // Gone meanwhile, or another user's.
    }
  }
  return pids
}

/** The file at `path` as an unfinished region, or undefined when it is not one. */
export const unfinishedRegion = (path: string): UnfinishedRegion | undefined => {
  if (!zeroHeader(path)) return undefined
  try {
    const stat = statSync(path)
    return { bytes: stat.size, residentBytes: stat.blocks * 512, mappedBy: mappersOf(path), changedAtMs: stat.mtimeMs }
  } catch {
    return undefined
  }
}
