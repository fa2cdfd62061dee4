/**
 * The two ends of doorbells' wake FIFOs: the owner's read end, watched by libuv on the owner's
 * loop (a byte written is one kernel wake of its JS thread), and a ringer's write ends, opened
 * on the first paid wake and kept, so a wake costs the ringer one write(2).
 */
import { Effect } from "effect"
import { closeSync, constants, fstatSync, lstatSync, openSync, unlinkSync, writeSync } from "node:fs"
import { type OnReadOpts, Socket, type SocketConstructorOpts } from "node:net"
import { loadAddonSync } from "../../native/Native.js"
import { WakeFifoUnavailable } from "../../services/region/Doorbell.js"
import { privateDirectory, wakeDirectory } from "./WakeFifoPaths.js"

const ONE_BYTE = new Uint8Array([1])

/** Open write ends kept per ringer: more than a process rings in practice; past it the least recently opened is closed. */
export const WAKE_FD_CACHE = 64

/**
 * The identity of a wake FIFO as its owner publishes it in its doorbell line (+8): the low 32
 * bits of the inode, never 0. A ringer's open fd is still the owner's FIFO while the two agree;
 * the ringer holds its fd open, so the inode cannot be reused meanwhile.
 */
export const fifoIdentity = (ino: number): number => (ino % 2 ** 32 | 0) || 1

interface WakeFd {
  readonly fd: number
  readonly identity: number
}

/** A ringer's write ends of owners' wake FIFOs (`wakeFds`). */
export interface WakeFds {
  /** Writes one wake into the FIFO at `path`, if it is still the one whose owner published `identity`. */
  readonly signal: (path: string, identity: number) => void
  readonly close: () => void
}

/**
 * Write ends of owners' wake FIFOs, opened on the first paid wake and kept, so a ring costs
 * one write(2). An fd is trusted only while its FIFO's identity matches the one the owner
 * published before it parked (a restarted owner made a new FIFO at the same path: reopened).
 * EPIPE on write means the FIFO's owner died: the fd is closed. A missing FIFO (ENOENT) or one
 * nobody reads (ENXIO) is a dead owner: skipped, nothing kept. EAGAIN means a wake is already
 * pending. Any other failure is skipped too: a ring must never fail the commit that rang, and
 * the owner re-checks at its park bound.
 */
export const wakeFds = (): WakeFds => {
  const open = new Map<string, WakeFd>()
  const drop = (path: string, entry: WakeFd) => {
    open.delete(path)
    try {
      closeSync(entry.fd)
    } catch {
      // Already closed.
    }
  }
  const opened = (path: string): WakeFd | undefined => {
    let fd: number
    try {
      fd = openSync(path, constants.O_WRONLY | constants.O_NONBLOCK)
    } catch {
      return undefined
    }
    const entry = { fd, identity: fifoIdentity(fstatSync(fd).ino) }
    if (open.size >= WAKE_FD_CACHE) {
      const [oldest, old] = open.entries().next().value as [string, WakeFd]
      drop(oldest, old)
    }
    open.set(path, entry)
    return entry
  }
  return {
    signal: (path, identity) => {
      let entry = open.get(path)
      if (entry !== undefined && entry.identity !== identity) {
        drop(path, entry)
        entry = undefined
      }
      entry ??= opened(path)
      if (entry === undefined) return
      try {
        writeSync(entry.fd, ONE_BYTE)
      } catch (error) {
        // EAGAIN: the FIFO already holds an unread wake. EPIPE: its owner is gone.
        if ((error as NodeJS.ErrnoException).code !== "EAGAIN") drop(path, entry)
      }
    },
    close: () => {
      for (const [path, entry] of open) drop(path, entry)
    }
  }
}

/** Bytes one read of a wake FIFO drains: pending wakes beyond it are read by the next callback. */
const WAKE_READ_BYTES = 64

/**
 * This process's wake FIFO, watched by libuv on this loop: created (replacing one a previous
 * owner of the bell left), opened read-write so it never reports EOF, and wrapped in a socket
 * that reads into one buffer of its own (`onread`): a wake costs one read(2) and the callback,
 * with no stream buffering, Buffer or tick per wake. Unlinked (if still ours) and closed with the scope.
 */
export const wakeFifo = (path: string, onWake: () => void) =>
  Effect.acquireRelease(
    Effect.try({
      try: () => {
        privateDirectory(wakeDirectory())
        loadAddonSync().mkfifo(path, 0o600)
        const fd = openSync(path, constants.O_RDWR | constants.O_NONBLOCK)
        const inode = fstatSync(fd).ino
        // Every byte is a wake and its value means nothing: one re-check covers however many arrived.
        const onread: OnReadOpts = {
          buffer: Buffer.allocUnsafe(WAKE_READ_BYTES),
          callback: () => {
            onWake()
            return true
          }
        }
        // Node's Socket constructor takes `onread` (its typings list it for connect only).
        const socket = new Socket({ fd, readable: true, writable: false, onread } as SocketConstructorOpts)
        // A read error leaves the park bound as the wake; it must not crash the process.
        socket.on("error", () => {})
        socket.unref()
        return { socket, inode }
      },
      catch: (error) =>
        new WakeFifoUnavailable({ path, reason: error instanceof Error ? error.message : String(error) })
    }),
    ({ inode, socket }) =>
      Effect.sync(() => {
        try {
          if (lstatSync(path).ino === inode) unlinkSync(path)
        } catch {
          // Already gone.
        }
        socket.destroy()
      })
  )
