/**
 * Segments fake: the same segment engine (SegmentLog.ts) over an in-process disk. The disk
 * remembers which bytes of each file an fdatasync covered, so a test can `crash` it (every
 * file loses what was written after its last sync, and every operation fails until `restart`),
 * give it a `capacity` (writes past it fail with ENOSPC after writing what fits), hold its
 * syncs at a gate, move its clock, and count or watch its syncs.
 */
import { Effect, Layer } from "effect"
import { dirname } from "node:path"
import { Segments, type SegmentsShape } from "../../../services/log/Segments.js"
import type { SegmentFile, SegmentFiles } from "./SegmentFiles.js"
import { segmentsOver } from "./SegmentLog.js"

export interface MemoryFile {
  data: Uint8Array
  size: number
  /** Bytes an fdatasync covered: what survives a crash. */
  syncedSize: number
  modifiedAt: number
}

export interface MemoryDisk {
  readonly files: Map<string, MemoryFile>
  readonly dirs: Set<string>
  /** Total bytes the disk holds; a write past it fails with ENOSPC. */
  capacity: number
  /** The disk's clock (ms), for retention by age. */
  clock: number
  /** fdatasyncs that returned. */
  datasyncs: number
  /** Called when an fdatasync returns, before the caller sees it return. */
  onSync: ((path: string) => void) | undefined
  /** While set, an fdatasync waits for it before it syncs anything. */
  gate: Promise<void> | undefined
  /** After `crash`, until `restart`: every operation fails with EIO (the process that used the disk is gone). */
  crashed: boolean
  /** Stream directories open now (a crash releases them: their process is gone). */
  readonly locks: Set<string>
}

export const makeMemoryDisk = (options: { readonly capacity?: number } = {}): MemoryDisk => ({
  files: new Map(),
  dirs: new Set(),
  capacity: options.capacity ?? Number.POSITIVE_INFINITY,
  clock: 1_000_000,
  datasyncs: 0,
  onSync: undefined,
  gate: undefined,
  crashed: false,
  locks: new Set()
})

/** Every file loses the bytes written after its last sync, as after a power cut; the disk fails every operation until `restart`. */
export const crash = (disk: MemoryDisk): void => {
  for (const file of disk.files.values()) file.size = Math.min(file.size, file.syncedSize)
  disk.crashed = true
  disk.locks.clear()
}

export const restart = (disk: MemoryDisk): void => {
  disk.crashed = false
}

const errno = (code: string, path: string) => Object.assign(new Error(`${code}: ${path}`), { code })

const used = (disk: MemoryDisk) => {
  let n = 0
  for (const f of disk.files.values()) n += f.size
  return n
}

/** An open file: like a descriptor, it keeps the file it was opened on, also once that is removed or moved. */
const fileOn = (disk: MemoryDisk, path: string): SegmentFile => {
  const opened = disk.files.get(path)
  const get = () => {
    if (disk.crashed) throw errno("EIO", path)
    if (opened === undefined) throw errno("ENOENT", path)
    return opened
  }
  const readNow = (into: Uint8Array, position: number) => {
    const f = get()
    const n = Math.max(0, Math.min(into.length, f.size - position))
    into.set(f.data.subarray(position, position + n))
    return n
  }
  return {
    write: async (buffers, position) => {
      const f = get()
      let at = position
      for (const b of buffers) {
        const room = disk.capacity - used(disk) + Math.max(0, f.size - at)
        const n = Math.min(b.length, Math.max(0, room))
        if (at + n > f.data.length) {
          const grown = new Uint8Array(Math.max(at + n, f.data.length * 2))
          grown.set(f.data.subarray(0, f.size))
          f.data = grown
        }
        f.data.set(b.subarray(0, n), at)
        at += n
        f.size = Math.max(f.size, at)
        f.modifiedAt = disk.clock
        if (n < b.length) throw errno("ENOSPC", path)
      }
    },
    datasync: async () => {
      if (disk.gate !== undefined) await disk.gate
      const f = get()
      f.syncedSize = f.size
      disk.datasyncs++
      disk.onSync?.(path)
    },
    truncate: async (length) => {
      const f = get()
      f.size = Math.min(f.size, length)
      f.syncedSize = Math.min(f.syncedSize, length)
    },
    read: async (into, position) => readNow(into, position),
    readSync: (into, position) => readNow(into, position),
    stillNamed: async () => disk.files.get(path) === get(),
    close: async () => undefined
  }
}

/** The disk as file operations. */
export const memorySegmentFiles = (disk: MemoryDisk): SegmentFiles => ({
  mkdir: async (dir) => {
    for (let d = dir; !disk.dirs.has(d) && d !== dirname(d); d = dirname(d)) disk.dirs.add(d)
  },
  list: async (dir) =>
    [...disk.files.keys()].filter((p) => dirname(p) === dir).map((p) => p.slice(dir.length + 1))
      .concat([...disk.dirs].filter((d) => dirname(d) === dir).map((d) => d.slice(dir.length + 1))),
  create: async (path) => {
    if (disk.files.has(path)) throw errno("EEXIST", path)
    disk.files.set(path, { data: new Uint8Array(4096), size: 0, syncedSize: 0, modifiedAt: disk.clock })
    return fileOn(disk, path)
  },
  open: async (path) => {
    if (!disk.files.has(path)) throw errno("ENOENT", path)
    return fileOn(disk, path)
  },
  size: async (path) => {
    const f = disk.files.get(path)
    if (f === undefined) throw errno("ENOENT", path)
    return f.size
  },
  modifiedAt: async (path) => {
    const f = disk.files.get(path)
    if (f === undefined) throw errno("ENOENT", path)
    return f.modifiedAt
  },
  unlink: async (path) => {
    if (!disk.files.delete(path)) throw errno("ENOENT", path)
  },
  rename: async (from, to) => {
    if (disk.crashed) throw errno("EIO", from)
    if (disk.dirs.has(to) || disk.files.has(to)) throw errno("EEXIST", to)
    if (disk.files.has(from)) {
      disk.files.set(to, disk.files.get(from)!)
      disk.files.delete(from)
      return
    }
    if (!disk.dirs.has(from)) throw errno("ENOENT", from)
    for (const path of [...disk.files.keys()].filter((p) => p.startsWith(`${from}/`))) {
      disk.files.set(`${to}${path.slice(from.length)}`, disk.files.get(path)!)
      disk.files.delete(path)
    }
    for (const dir of [...disk.dirs].filter((d) => d === from || d.startsWith(`${from}/`))) {
      disk.dirs.delete(dir)
      disk.dirs.add(`${to}${dir.slice(from.length)}`)
    }
  },
  removeTree: async (dir) => {
    if (disk.crashed) throw errno("EIO", dir)
    for (const path of [...disk.files.keys()]) if (path.startsWith(`${dir}/`)) disk.files.delete(path)
    for (const d of [...disk.dirs]) if (d === dir || d.startsWith(`${dir}/`)) disk.dirs.delete(d)
  },
  syncDirectory: async () => undefined,
  now: () => disk.clock,
  lock: async (dir) => {
    if (disk.locks.has(dir)) return process.pid
    disk.locks.add(dir)
    return async () => void disk.locks.delete(dir)
  }
})

export const makeMemory = (disk: MemoryDisk, directory = "/data"): Effect.Effect<SegmentsShape> =>
  Effect.sync(() => segmentsOver(memorySegmentFiles(disk), directory))

export const layerMemory = (disk: MemoryDisk, directory = "/data"): Layer.Layer<Segments> =>
  Layer.effect(Segments, makeMemory(disk, directory))
