/**
 * The file operations the segment engine (SegmentLog.ts) needs, as promises: the live layer's
 * are node:fs/promises (run on libuv's pool, so the JS thread never waits for the disk; the
 * stream's lock, taken once per open, is region/PidLockFile's few metadata calls), the fake's an
 * in-process disk (SegmentsMemory.ts).
 */
import { constants, readSync } from "node:fs"
import * as fs from "node:fs/promises"
import { tryLock } from "../../region/PidLockFile.js"

export interface SegmentFile {
  /** Writes all of `buffers`, in order, at `position` (a short write is retried; an error rejects). */
  readonly write: (buffers: ReadonlyArray<Uint8Array>, position: number) => Promise<void>
  readonly datasync: () => Promise<void>
  readonly truncate: (length: number) => Promise<void>
  /** Reads into `into` from `position`; resolves to the bytes read (fewer at the end of the file). */
  readonly read: (into: Uint8Array, position: number) => Promise<number>
  /**
   * `read` on the calling thread. Only for reads too small to be worth a trip to the I/O pool
   * (a record's header, where the next position depends on the one before): one waits on the JS
   * thread for a page-cache copy of a few KiB, where a pool trip takes tens of microseconds.
   */
  readonly readSync: (into: Uint8Array, position: number) => number
  /**
   * Whether the path it was opened by still names this file. A file removed (`rm -r` of the data
   * directory) or moved away while open takes writes and fdatasyncs as before, but they reach
   * nothing the directory holds: no restart or recovery would find them.
   */
  readonly stillNamed: () => Promise<boolean>
  readonly close: () => Promise<void>
}

/** Reads into `into` from `position` until it is full or the file ends; resolves to the bytes read. */
export const readFully = async (
  file: Pick<SegmentFile, "read">,
  into: Uint8Array,
  position: number
): Promise<number> => {
  let got = 0
  while (got < into.length) {
    const n = await file.read(into.subarray(got), position + got)
    if (n <= 0) break
    got += n
  }
  return got
}

export interface SegmentFiles {
  /** Makes the directory and its parents. */
  readonly mkdir: (dir: string) => Promise<void>
  /** Names in the directory ([] when it does not exist). */
  readonly list: (dir: string) => Promise<ReadonlyArray<string>>
  /** Creates a new, empty file (failing if it exists). */
  readonly create: (path: string) => Promise<SegmentFile>
  /** Opens an existing file to read and write. */
  readonly open: (path: string) => Promise<SegmentFile>
  readonly size: (path: string) => Promise<number>
  /** Last modification, ms since the epoch. */
  readonly modifiedAt: (path: string) => Promise<number>
  readonly unlink: (path: string) => Promise<void>
  /** Renames a file or directory (atomic within the file system; fails if `to` exists). */
  readonly rename: (from: string, to: string) => Promise<void>
  /** Removes a directory and everything in it (nothing when it does not exist). */
  readonly removeTree: (dir: string) => Promise<void>
  /** Makes the directory's entries (a created or removed file) durable. */
  readonly syncDirectory: (dir: string) => Promise<void>
  /** Now, ms since the epoch, on the clock `modifiedAt` uses. */
  readonly now: () => number
  /**
   * Takes the directory's lock for this process: resolves to a release function, or to the pid
   * of the live process holding it. A lock whose holder is gone is taken over (region/PidLockFile.ts).
   */
  readonly lock: (dir: string) => Promise<(() => Promise<void>) | number>
}

/** The stat of `path`; undefined when nothing is there (ENOENT, or ENOTDIR: a parent is a file now). */
const statIfThere = async (path: string) => {
  try {
    return await fs.stat(path)
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code
    if (code === "ENOENT" || code === "ENOTDIR") return undefined
    throw e
  }
}

const fileOver = (handle: fs.FileHandle, path: string): SegmentFile => ({
  write: async (buffers, position) => {
    let rest = buffers.filter((b) => b.length > 0)
    let at = position
    while (rest.length > 0) {
      const { bytesWritten } = await handle.writev(rest as Array<Uint8Array>, at)
      at += bytesWritten
      let skip = bytesWritten
      while (rest.length > 0 && skip >= rest[0]!.length) {
        skip -= rest[0]!.length
        rest = rest.slice(1)
      }
      if (skip > 0) rest = [rest[0]!.subarray(skip), ...rest.slice(1)]
    }
  },
  datasync: () => handle.datasync(),
  truncate: (length) => handle.truncate(length),
  read: async (into, position) => (await handle.read(into, 0, into.length, position)).bytesRead,
  readSync: (into, position) => readSync(handle.fd, into, 0, into.length, position),
  stillNamed: async () => {
    const [mine, named] = await Promise.all([handle.stat(), statIfThere(path)])
    return named !== undefined && named.ino === mine.ino && named.dev === mine.dev
  },
  close: () => handle.close()
})

/** A directory's entries; none when it does not exist (yet). */
export const listDirectory = async (dir: string): Promise<Array<string>> => {
  try {
    return await fs.readdir(dir)
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return []
    throw e
  }
}

/** node:fs/promises. */
export const nodeSegmentFiles: SegmentFiles = {
  mkdir: async (dir) => {
    await fs.mkdir(dir, { recursive: true, mode: 0o700 })
  },
  list: listDirectory,
  create: async (path) =>
    fileOver(await fs.open(path, constants.O_RDWR | constants.O_CREAT | constants.O_EXCL, 0o600), path),
  open: async (path) => fileOver(await fs.open(path, constants.O_RDWR), path),
  size: async (path) => (await fs.stat(path)).size,
  modifiedAt: async (path) => (await fs.stat(path)).mtimeMs,
  unlink: (path) => fs.unlink(path),
  rename: (from, to) => fs.rename(from, to),
  removeTree: (dir) => fs.rm(dir, { recursive: true, force: true }),
  syncDirectory: async (dir) => {
    const handle = await fs.open(dir, constants.O_RDONLY)
    try {
      await handle.sync()
    } finally {
      await handle.close()
    }
  },
  now: () => Date.now(),
  lock: async (dir) => {
    const path = `${dir}/LOCK`
    const attempt = tryLock(path, {})
    if (attempt.taken) return async () => attempt.release()
    const holder = attempt.holder
    if (holder !== undefined && !holder.gone && holder.unreadable === undefined) return holder.pid
    throw Object.assign(new Error(`could not take ${path}`), { code: "EBUSY" })
  }
}
