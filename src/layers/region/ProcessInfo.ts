/**
 * What the host says of a process named by its pid: whether it exists, and what /proc/PID/stat
 * gives (its state, CPU time and start time). Every process a region, a lock file or a run
 * names is judged through here.
 */
import { readdirSync, readFileSync } from "node:fs"
import { readProcStat } from "./ProcStatFiles.js"

/** Clock ticks per second of /proc/PID/stat's times (USER_HZ, 100 on every Linux ABI Node supports). */
export const USER_HZ = 100

/** Whether `pid` names a process table entry, a zombie's included (EPERM: another user's, still there). */
export const pidExists = (pid: number): boolean => {
  if (!Number.isInteger(pid) || pid <= 0) return false
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM"
  }
}

/**
 * True while `pid` names a running process (another user's too). A zombie, one that exited but
 * whose parent has not reaped it yet, is gone: it runs nothing and holds no mapping, and its
 * pid stays taken until the parent waits, which for an orphan adopted by a slow init (a killed
 * `cxlog run`'s roles) takes seconds.
 */
export const isPidAlive = (pid: number): boolean => {
  if (pid === process.pid) return true
  const stat = procStat(pid)
  // No stat: no such process, or no /proc (then the pid alone decides).
  return stat === undefined ? pidExists(pid) : stat.state !== "Z"
}

export interface ProcStat {
  /** The state letter: R, S, D, Z (zombie), T (stopped), t (traced), … */
  readonly state: string
  /** The process that started it (1, or a subreaper, once that one is gone). */
  readonly parentPid: number
  /** User and system time, in clock ticks. */
  readonly cpuTicks: number
  /** When it started, in clock ticks after boot: with the pid, it names one process (a reused pid has another). */
  readonly startTicks: number
}

/** The fields of a /proc `stat` line after the command name (which may hold spaces and parentheses), from the state on. */
const fieldsOf = (stat: string): ReadonlyArray<string> => stat.slice(stat.lastIndexOf(")") + 2).split(" ")

/** User and system time of a `fieldsOf` line, in clock ticks. */
const cpuTicksOf = (fields: ReadonlyArray<string>) => Number(fields[11]) + Number(fields[12])

/**
 * /proc/PID/stat of `pid`, read through a file kept open (ProcStatFiles.ts); undefined where
 * there is no such process, or no /proc.
 */
export const procStat = (pid: number): ProcStat | undefined => {
  const stat = readProcStat(pid)
  if (stat === undefined) return undefined
  const fields = fieldsOf(stat)
  return {
    state: fields[0]!,
    parentPid: Number(fields[1]),
    cpuTicks: cpuTicksOf(fields),
    startTicks: Number(fields[19])
  }
}

/** A process's main thread: the one its JavaScript runs on (in Node), beside V8's and libuv's. */
export interface ThreadStat {
  /** User and system time, in clock ticks. */
  readonly cpuTicks: number
  /** Times it went to sleep of its own accord (voluntary context switches): each ended in a wake. */
  readonly sleeps: number
}

/** /proc/PID/task/PID of `pid`; undefined where there is no such process, or no /proc. */
export const mainThreadStat = (pid: number): ThreadStat | undefined => {
  try {
    const cpuTicks = cpuTicksOf(fieldsOf(readFileSync(`/proc/${pid}/task/${pid}/stat`, "utf8")))
    const sleeps = /^voluntary_ctxt_switches:\s+(\d+)$/m.exec(readFileSync(`/proc/${pid}/task/${pid}/status`, "utf8"))
    return { cpuTicks, sleeps: sleeps === null ? 0 : Number(sleeps[1]) }
  } catch {
    return undefined
  }
}

/** Whether process `pid` is stopped (SIGSTOP, or a debugger's trace stop). */
export const isPidStopped = (pid: number): boolean => {
  const state = procStat(pid)?.state
  return state === "T" || state === "t"
}

/** A start time /proc gave, or 0 (not known). */
const known = (
  ticks: number | undefined
): number => (ticks !== undefined && Number.isFinite(ticks) && ticks > 0 ? ticks : 0)

/**
 * A start time as the 32 bits a region word keeps of it (0: unknown; a known one is never 0).
 * With the pid it names one process: a later process under the pid differs in it but once in 2^32.
 */
const startTag = (ticks: number): number => (ticks === 0 ? 0 : (ticks % 2 ** 32) >>> 0 || 1)

/** The start tag of the process `pid` names now; 0 where /proc gives no start time (no such process, or no /proc). */
export const startTagOf = (pid: number): number => startTag(known(procStat(pid)?.startTicks))

let ownTag: number | undefined
/** This process's start tag, 0 where /proc gives no start time. */
export const ownStartTag = (): number => (ownTag ??= startTagOf(process.pid))

/**
 * The 16 bits of a start tag that a claim word with no room for all 32 keeps (a participant
 * line's occurrence: Participants.ts); 0 for an unknown tag, never 0 for a known one. A later
 * process under the pid differs in them but once in 2^16.
 */
export const shortStartTag = (tag: number): number => (tag === 0 ? 0 : (tag & 0xffff) || 1)

/**
 * Whether the process whose start tag is `tag` (all 32 bits, or the 16 of `shortStartTag` when
 * `bits` is 16) still runs as `pid`: a later process that reuses the pid has another. With no
 * tag (0: none was recorded, or /proc gives no start time now) the pid alone decides, as it
 * must off Linux. A zombie is gone (`isPidAlive`).
 */
export const isProcessAlive = (pid: number, tag: number, bits: 16 | 32 = 32): boolean => {
  // This process, asked of often by its own idle readers and slots: no system call to know it runs.
  if (pid === process.pid) {
    return tag === 0 || ownStartTag() === 0 || (bits === 16 ? shortStartTag(ownStartTag()) : ownStartTag()) === tag
  }
  const stat = procStat(pid)
  // No stat: no such process, or no /proc (then the pid alone decides).
  if (stat === undefined) return pidExists(pid)
  if (stat.state === "Z") return false
  const now = startTag(known(stat.startTicks))
  if (tag === 0 || now === 0) return true
  return (bits === 16 ? shortStartTag(now) : now) === tag
}

/**
 * Whether a process of process group `group` still runs. A zombie does not: one whose parent died
 * is left to init, which in a container may never reap it, and it would read as running for good.
 */
export const processGroupRuns = (group: number): boolean => {
  try {
    process.kill(-group, 0)
  } catch {
    return false
  }
  return readdirSync("/proc").some((entry) => {
    if (!/^\d+$/.test(entry)) return false
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "latin1")
      // After the command name: state, ppid, pgrp.
      const [state, , pgrp] = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
      return Number(pgrp) === group && state !== "Z" && state !== "X"
    } catch {
      return false
    }
  })
}
