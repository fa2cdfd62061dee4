/**
 * The doorbell layer over CxlMemory (live or fake): one set of waiters per process, served
 * from callbacks — it spins briefly (while recent waits say spinning pays and the machine is
 * not oversubscribed), then parks on the event loop until a wake; see
 * services/region/Doorbell.ts.
 *
 * Over a live region a parked process is woken through its wake FIFO, which libuv watches on
 * the process's own loop: one kernel wake of the JS thread per wake, no pool thread, and the
 * FIFO's data callback resumes the satisfied waiters itself; a ringer keeps the write ends it
 * opened, so a wake costs it one write(2). Over the in-process fake (and for a target in this
 * same process) a ring calls that callback directly.
 */
import { Effect, Layer, type Scope } from "effect"
import { createHash } from "node:crypto"
import { closeSync, constants, fstatSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, unlinkSync, writeSync } from "node:fs"
import { type OnReadOpts, Socket, type SocketConstructorOpts } from "node:net"
import { availableParallelism, loadavg, tmpdir } from "node:os"
import { join } from "node:path"
import { doorbellParks } from "../../Metrics.js"
import { loadAddonSync } from "../../native/Native.js"
import { CxlMemory, type CxlMemoryShape, type RegionOutOfBounds } from "../../services/region/CxlMemory.js"
import { Doorbell, DOORBELL_BYTES, type DoorbellShape, WakeFifoUnavailable } from "../../services/region/Doorbell.js"

export interface DoorbellOptions {
  /** Region offset of this process's doorbell line (64-byte aligned). */
  readonly offset: number
  /**
   * Longest spin on the JS thread before parking; 0 parks at once. Default 50 µs, or 0 on a
   * single CPU, where a spin only delays the process it waits for.
   */
  readonly spinMicros?: number
  /** `adaptive` (default) spins only while recent waits say it pays; `fixed` always spins `spinMicros`. */
  readonly spinPolicy?: "adaptive" | "fixed"
  /**
   * Upper bound of one park (default 1 s): every waiter's condition is re-checked at least this
   * often even without a wake. Waits end at their own deadlines regardless; this is only the
   * safety net for a condition that changes without a ring, so idle processes wake rarely.
   */
  readonly parkMillis?: number
}

/** How long the next spin may last, learnt from how recent waits ended. */
export interface SpinPolicy {
  /** The next spin's budget in ms (0: park at once). */
  readonly budgetMs: () => number
  /** A spin ended: `satisfied` if a waiter's condition came true after `spentMs`. */
  readonly spun: (satisfied: boolean, spentMs: number) => void
  /** A park ended after `parkedMs`: `satisfied` if a waiter's condition had come true. */
  readonly parked: (satisfied: boolean, parkedMs: number) => void
}

/** Below this a spin is not worth starting. */
const MIN_SPIN_MS = 0.001

/**
 * Adaptive spinning: a spin that ends empty-handed halves the budget (down to none); a spin
 * or a park that ended satisfied within `maxMs` raises it to twice what that wait took, so a
 * peer that answers quickly gets spun for and a busy or descheduled one does not — on an
 * oversubscribed machine a spin steals the CPU from the very process we wait for.
 */
export const adaptiveSpin = (maxMs: number): SpinPolicy => {
  let budget = maxMs
  const learn = (satisfied: boolean, tookMs: number) => {
    if (satisfied && tookMs < maxMs) budget = Math.min(maxMs, Math.max(budget, 2 * tookMs, MIN_SPIN_MS))
  }
  return {
    budgetMs: () => budget,
    spun: (satisfied, spentMs) => {
      if (satisfied) learn(true, spentMs)
      else budget = budget / 2 < MIN_SPIN_MS ? 0 : budget / 2
    },
    parked: learn
  }
}

/** Always spins `maxMs`: the policy before adaptive spinning, kept for comparison in benches. */
export const fixedSpin = (maxMs: number): SpinPolicy => ({ budgetMs: () => maxMs, spun: () => {}, parked: () => {} })

const defaultSpinMicros = () => (availableParallelism() > 1 ? 50 : 0)

/** Runnable tasks on the machine now: the 4th field of Linux's /proc/loadavg, else the 1-minute load average. */
const runnableTasks = (): number => {
  try {
    const runnable = Number(readFileSync("/proc/loadavg", "latin1").split(" ")[3]?.split("/")[0])
    if (Number.isFinite(runnable)) return runnable
  } catch {
    // Not Linux: fall through to the load average.
  }
  return loadavg()[0] ?? 0
}

/**
 * Whether the machine is oversubscribed (more runnable tasks than cores), sampled at most
 * once per `refreshMs` and only when a spin is about to start, so an idle process reads
 * nothing. Runnable tasks count every busy process, cxlog's included: a spin then would
 * steal the core the awaited process needs.
 */
export const oversubscribed = (cores: number, sample: () => number = runnableTasks, refreshMs = 100): () => boolean => {
  let sampledAt = -Infinity
  let over = false
  return () => {
    const now = performance.now()
    if (now - sampledAt >= refreshMs) {
      sampledAt = now
      over = sample() > cores
    }
    return over
  }
}

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
export const wakeFifoPath = (name: string, offset: number): string => join(wakeDirectory(), `${fifoPrefix(name)}${offset}`)

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

const ONE_BYTE = new Uint8Array([1])

/** Open write ends kept per ringer: more than a process rings in practice; past it the least recently opened is closed. */
export const WAKE_FD_CACHE = 64

/**
 * The identity of a wake FIFO as its owner publishes it in its doorbell line (+8): the low 32
 * bits of the inode, never 0. A ringer's open fd is still the owner's FIFO while the two agree;
 * the ringer holds its fd open, so the inode cannot be reused meanwhile.
 */
const fifoIdentity = (ino: number) => (ino % 2 ** 32 | 0) || 1

interface WakeFd {
  readonly fd: number
  readonly identity: number
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
const wakeFds = () => {
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
    signal: (path: string, identity: number) => {
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

/** Makes the wake directory if needed and refuses one that another user could write into. */
const privateDirectory = (dir: string) => {
  try {
    mkdirSync(dir, { mode: 0o700 })
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error
  }
  const stat = lstatSync(dir)
  const uid = process.getuid?.()
  if (!stat.isDirectory() || (uid !== undefined && stat.uid !== uid) || (stat.mode & 0o077) !== 0) {
    throw new Error(`${dir} is not a directory private to this user (owner only, mode 0700)`)
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
const wakeFifo = (path: string, onWake: () => void) =>
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
      catch: (error) => new WakeFifoUnavailable({ path, reason: error instanceof Error ? error.message : String(error) })
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

/** Wakes of doorbells owned by this process, by region bytes and offset: a ring of one needs no system call. */
const localWakes = new WeakMap<ArrayBuffer, Map<number, () => void>>()

interface Waiter {
  readonly condition: () => boolean
  deadline: number
  readonly resume: (satisfied: boolean) => void
  /** A standing watch (`watch`): stays registered when it fires, and its deadline moves on by this many ms each time. */
  readonly every?: () => number
}

/** Introspection for tests: how this doorbell's waits were settled. */
export interface DoorbellInternals {
  /** Waits settled by a sweep that ran in a wake's own callback (a FIFO wake, a local ring, a poke). */
  readonly settledByWake: () => number
  /** Waits settled by the bound timer (timed out, or found satisfied when it fired). */
  readonly settledByTimer: () => number
}

const internals = new WeakMap<DoorbellShape, DoorbellInternals>()

/** The introspection counters of a doorbell made by `make` (tests). */
export const internalsOf = (doorbell: DoorbellShape): DoorbellInternals | undefined => internals.get(doorbell)

const succeedTrue = Effect.succeed(true)
const succeedFalse = Effect.succeed(false)

/**
 * The waiting machinery runs in callbacks, not in a fiber: a wake's callback (the FIFO's data
 * event, a ring from this process) re-checks every waiter and resumes the satisfied ones' fibers
 * directly — the kernel wake reaches the waiting fiber with no hop through another fiber. A
 * park step (spin briefly if that pays, publish `parked`, re-check) runs from `setImmediate`, once
 * the fibers that the last wake resumed have run (they often commit what the next waiter wants).
 * One timer, kept across wakes, bounds every wait (its deadline, and `parkMillis`); it is ref'd
 * only while a fiber waits, so a process with nothing waiting can exit.
 */
export const make = (
  options: DoorbellOptions
): Effect.Effect<DoorbellShape, RegionOutOfBounds | WakeFifoUnavailable, CxlMemory | Scope.Scope> =>
  Effect.gen(function*() {
    const region: CxlMemoryShape = yield* CxlMemory
    const { offset } = options
    yield* region.check(offset, DOORBELL_BYTES)
    const spinMs = (options.spinMicros ?? defaultSpinMicros()) / 1000
    const adaptive = options.spinPolicy !== "fixed"
    const policy = adaptive ? adaptiveSpin(spinMs) : fixedSpin(spinMs)
    const overloaded = oversubscribed(availableParallelism())
    const parkMillis = options.parkMillis ?? 1_000
    const word = offset / 4
    const parkedFlag = word + 1
    const identityWord = word + 2
    const i32 = region.i32
    const waiters = new Set<Waiter>()
    let closed = false
    /** Waiters the last sweep resumed with a satisfied condition. */
    let satisfied = 0
    /** `parked` is published and every waiter was re-checked after it (or a wake is on its way). */
    let parked = false
    let parkedAt = 0
    /** A park step is queued. */
    let parkStep: NodeJS.Immediate | undefined
    /** The bound timer and when it fires. */
    let timer: NodeJS.Timeout | undefined
    let timerAt = Infinity
    let timerRefd = false
    let byWake = 0
    let byTimer = 0

    /** Settles every waiter whose condition holds or whose deadline passed; returns how many. */
    const sweep = (now: number) => {
      let settled = 0
      satisfied = 0
      for (const waiter of waiters) {
        if (waiter.every !== undefined) {
          const ready = waiter.condition()
          if (ready || now >= waiter.deadline) {
            waiter.deadline = now + waiter.every()
            waiter.resume(ready)
            settled++
            if (ready) satisfied++
          }
          continue
        }
        if (waiter.condition()) {
          waiters.delete(waiter)
          waiter.resume(true)
          settled++
          satisfied++
        } else if (now >= waiter.deadline) {
          waiters.delete(waiter)
          waiter.resume(false)
          settled++
        }
      }
      if (waiters.size === 0) idle()
      return settled
    }

    /** Nobody waits: ringers need not pay to wake us, and the timer must not keep the process alive. */
    const idle = () => {
      if (parked) {
        parked = false
        Atomics.store(i32, parkedFlag, 0)
      }
      if (timer !== undefined && timerRefd) {
        timer.unref()
        timerRefd = false
      }
    }

    const nearestDeadline = () => {
      let nearest = Infinity
      for (const waiter of waiters) nearest = Math.min(nearest, waiter.deadline)
      return nearest
    }

    /** Makes the timer fire by `due` (kept when it already does: firing early only costs a re-check). */
    const armTimer = (due: number) => {
      if (timer !== undefined && timerAt <= due) {
        if (!timerRefd) {
          timer.ref()
          timerRefd = true
        }
        return
      }
      if (timer !== undefined) clearTimeout(timer)
      timerAt = due
      timerRefd = true
      timer = setTimeout(onTimer, Math.max(0, due - performance.now()))
    }

    /** A wake (or the timer): `parked` was cleared by the ringer; re-check everyone, resume the satisfied, park again later. */
    const wake = (byTimerNow: boolean) => {
      if (closed) return
      const wasParked = parked
      if (parked) {
        parked = false
        Atomics.store(i32, parkedFlag, 0)
      }
      const now = performance.now()
      const settled = sweep(now)
      if (byTimerNow) byTimer += settled
      else byWake += settled
      if (wasParked) policy.parked(satisfied > 0, now - parkedAt)
      schedulePark()
    }
    const onWake = () => wake(false)
    const onTimer = () => {
      timer = undefined
      timerAt = Infinity
      timerRefd = false
      wake(true)
    }

    const schedulePark = () => {
      if (parkStep === undefined && !parked && waiters.size > 0 && !closed) parkStep = setImmediate(parkNow)
    }

    /** Spins up to the policy's budget, never on an oversubscribed machine; true if it settled a waiter. */
    const spin = () => {
      const budget = policy.budgetMs()
      if (budget <= 0 || (adaptive && overloaded())) return false
      const started = performance.now()
      let now = started
      let settled = 0
      do {
        now = performance.now()
        settled = sweep(now)
      } while (settled === 0 && waiters.size > 0 && now - started < budget)
      policy.spun(satisfied > 0, now - started)
      return settled > 0
    }

    // Dekker handshake with ringers: publish `parked` (sequentially consistent), then re-check
    // every condition, then return to the loop. A ringer commits before it reads `parked`, so
    // either the re-check sees its commit or it sees `parked` and wakes us: no wake can be lost.
    // A waiter added while parked is checked as it registers, after `parked` was published.
    const parkNow = () => {
      parkStep = undefined
      if (closed || parked || waiters.size === 0) return
      // A spin that settled someone lets the resumed fibers run before we spin or park again.
      if (spin()) return schedulePark()
      Atomics.store(i32, parkedFlag, 1)
      parked = true
      const now = performance.now()
      parkedAt = now
      sweep(now)
      if (!parked) return
      doorbellParks.unsafeUpdate(1, [])
      armTimer(Math.min(nearestDeadline(), now + parkMillis))
    }

    const fifo = region.crossProcess ? yield* wakeFifo(wakeFifoPath(region.name, offset), onWake) : undefined
    // Published before this process ever parks, so a ringer that saw `parked` sees this FIFO's identity.
    if (fifo !== undefined) Atomics.store(i32, identityWord, fifoIdentity(fifo.inode))
    const fds = wakeFds()
    yield* Effect.addFinalizer(() => Effect.sync(fds.close))
    const owned = localWakes.get(region.buffer) ?? new Map<number, () => void>()
    localWakes.set(region.buffer, owned)
    owned.set(offset, onWake)
    yield* Effect.addFinalizer(() => Effect.sync(() => void (owned.get(offset) === onWake && owned.delete(offset))))

    // A ring of our own bell (a local commit) needs no wake at all: one sweep after the
    // committing code has run settles whoever it satisfied.
    let localSweepScheduled = false
    const localSweep = () => {
      localSweepScheduled = false
      if (!closed && waiters.size > 0) byWake += sweep(performance.now())
    }

    const fifoPaths = new Map<number, string>()
    const fifoOf = (bell: number) => {
      let path = fifoPaths.get(bell)
      if (path === undefined) fifoPaths.set(bell, path = wakeFifoPath(region.name, bell))
      return path
    }

    const ring = (bell: number) => {
      if (bell === offset) {
        if (!localSweepScheduled) {
          localSweepScheduled = true
          queueMicrotask(localSweep)
        }
        return
      }
      // Only the ringer that clears `parked` pays for the wake: the owner re-checks every
      // condition after waking and before it parks again, so later rings are covered. The
      // wake count records each paid wake (diagnostics and tests).
      if (Atomics.load(i32, bell / 4 + 1) !== 0 && Atomics.compareExchange(i32, bell / 4 + 1, 1, 0) === 1) {
        Atomics.add(i32, bell / 4, 1)
        const local = owned.get(bell)
        if (local !== undefined) local()
        else if (region.crossProcess) fds.signal(fifoOf(bell), Atomics.load(i32, bell / 4 + 2))
      }
    }

    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        closed = true
        if (parkStep !== undefined) clearImmediate(parkStep)
        if (timer !== undefined) clearTimeout(timer)
        for (const waiter of waiters) if (waiter.every === undefined) waiter.resume(false)
        waiters.clear()
        parked = false
        Atomics.store(i32, parkedFlag, 0)
      })
    )

    const doorbell: DoorbellShape = {
      offset,
      await: (condition, timeoutMs) =>
        Effect.suspend(() => {
          if (condition()) return succeedTrue
          if (closed) return succeedFalse
          return Effect.async<boolean>((resume) => {
            // A condition that throws ends its own wait as a defect; the others must keep being
            // served (and timed out).
            let thrown: { readonly cause: unknown } | undefined
            const guarded = () => {
              try {
                return condition()
              } catch (cause) {
                thrown = { cause }
                return true
              }
            }
            const waiter: Waiter = {
              condition: guarded,
              deadline: performance.now() + timeoutMs,
              resume: (ok) => resume(thrown === undefined ? (ok ? succeedTrue : succeedFalse) : Effect.die(thrown.cause))
            }
            // Checked again as it registers: while parked, this check is the re-check after `parked`.
            if (closed || guarded()) return waiter.resume(!closed)
            waiters.add(waiter)
            if (parked) armTimer(waiter.deadline)
            else schedulePark()
            return Effect.sync(() => {
              if (waiters.delete(waiter) && waiters.size === 0) idle()
            })
          })
        }),
      watch: (condition, onReady, everyMs) => {
        if (closed) return () => {}
        const waiter: Waiter = { condition, deadline: performance.now() + everyMs(), resume: onReady, every: everyMs }
        waiters.add(waiter)
        // Not checked here (the caller checks once it holds the stop function): while parked,
        // that check is the re-check after `parked`.
        if (parked) armTimer(waiter.deadline)
        else schedulePark()
        return () => {
          if (waiters.delete(waiter) && waiters.size === 0) idle()
        }
      },
      ring,
      poke: () => ring(offset)
    }
    internals.set(doorbell, { settledByWake: () => byWake, settledByTimer: () => byTimer })
    return doorbell
  })

export const layer = (options: DoorbellOptions): Layer.Layer<Doorbell, RegionOutOfBounds | WakeFifoUnavailable, CxlMemory> =>
  Layer.scoped(Doorbell, make(options))
