/**
 * The file operations the segment engine (SegmentLog.ts) needs, as promises: the live layer's
 * are node:fs/promises (run on libuv's pool, so the JS thread never waits for the disk), the
 * fake's an in-process disk (SegmentsMemory.ts).
 */
import * as fs from "node:fs/promises"
import { constants, readSync } from "node:fs"
import { isProcessAlive, ownStartTag } from "../region/ProcessInfo.js"

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
  readonly close: () => Promise<void>
}

/** Reads into `into` from `position` until it is full or the file ends; resolves to the bytes read. */
export const readFully = async (file: Pick<SegmentFile, "read">, into: Uint8Array, position: number): Promise<number> => {
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
  /** Makes the directory's entries (a created or removed file) durable. */
  readonly syncDirectory: (dir: string) => Promise<void>
  /** Now, ms since the epoch, on the clock `modifiedAt` uses. */
  readonly now: () => number
  /**
   * Takes the directory's lock for this process: resolves to a release function, or to the pid
   * of the live process holding it. A lock whose holder is gone is taken over.
   */
  readonly lock: (dir: string) => Promise<(() => Promise<void>) | number>
}

const fileOver = (handle: fs.FileHandle): SegmentFile => ({
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
  create: async (path) => fileOver(await fs.open(path, constants.O_RDWR | constants.O_CREAT | constants.O_EXCL, 0o600)),
  open: async (path) => fileOver(await fs.open(path, constants.O_RDWR)),
  size: async (path) => (await fs.stat(path)).size,
  modifiedAt: async (path) => (await fs.stat(path)).mtimeMs,
  unlink: (path) => fs.unlink(path),
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
    // Written whole under a private name, then linked into place: a LOCK is never seen half-written.
    const mine = `${dir}/LOCK.${process.pid}.${Math.random().toString(16).slice(2)}`
    // The pid and its start tag: a later process that reuses the pid is not the holder.
    await fs.writeFile(mine, `${process.pid} ${ownStartTag()}\n`, { mode: 0o600 })
    try {
      for (let attempt = 0; attempt < 3; attempt++) {
        try {
          await fs.link(mine, path)
          heldLocks.add(path)
          return () => {
            heldLocks.delete(path)
            return fs.unlink(path).catch(() => undefined)
          }
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e
        }
        const [holder = 0, tag = 0] = (await fs.readFile(path, "utf8").catch(() => "")).trim().split(" ").map(Number)
        // Our own pid holds it only if this process took it; else an earlier process with our pid (a restarted container) left it.
        // A zombie (killed, not yet reaped) writes nothing: gone (isProcessAlive judges so). A lock without a
        // tag (an older build's) is judged by its pid alone.
        const held = holder === process.pid
          ? heldLocks.has(path)
          : Number.isInteger(holder) && holder > 0 && isProcessAlive(holder, Number.isInteger(tag) && tag > 0 ? tag : 0)
        if (held) return holder
        // Its holder is gone: take it over.
        await fs.unlink(path).catch(() => undefined)
      }
      throw Object.assign(new Error(`could not take ${path}`), { code: "EBUSY" })
    } finally {
      await fs.unlink(mine).catch(() => undefined)
    }
  }
}

/** The stream locks this process holds (a LOCK naming our pid that is not here was left by an earlier process). */
const heldLocks = new Set<string>()
