/**
 * The one lock file that names its holder, `PID START NONCE` (the pid, its start tag, a nonce
 * naming this one file), used by the credential file's lock (net/AuthCredentialFile.ts) and a
 * segment stream's LOCK (log/SegmentFiles.ts). It is made whole — written under a temporary name,
 * then hard-linked into place — so it is never seen half-written, and its holder is judged
 * through ProcessInfo: a holder that died, or whose pid a later process now has, is gone and its
 * lock taken over at once; a live holder's lock never is, however long it holds it.
 */
import { randomBytes } from "node:crypto"
import {
  closeSync,
  fstatSync,
  linkSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  unlinkSync,
  writeFileSync
} from "node:fs"
import { basename, dirname, join } from "node:path"
import { isProcessAlive, ownStartTag } from "./ProcessInfo.js"

/**
 * A lock file (or a take-over marker): `identity` names this one file for good (its nonce; an
 * older build's file, which has none, by its inode), `gone` says its holder is.
 */
export interface LockHolder {
  readonly identity: string
  readonly pid: number
  readonly gone: boolean
  /** Why the file at the lock path could not be read (it then counts as a live holder's, pid 0). */
  readonly unreadable?: string
}

/** How a lock's user judges the files older builds made, which carry no nonce. */
export interface LockRules {
  /**
   * Such a file older than this is a crashed writer's (older credential-file locks were written
   * after they were made, so empty meanwhile, and named no start time). Absent: such a file is
   * judged by its pid and start tag alone, and one naming no pid is gone.
   */
  readonly olderBuildStaleMs?: number
}

/** One try at a lock: taken (with its release), or the holder that keeps it (undefined: none could be read). */
export type LockAttempt =
  | { readonly taken: true; readonly release: () => void }
  | { readonly taken: false; readonly holder: LockHolder | undefined }

/** How many times one `tryLock` makes the file again after a holder released it or was taken over. */
const ROUNDS = 3

/** The nonces of the locks this process holds: a file naming our pid and none of them was left by an earlier process under our pid. */
const heldNonces = new Set<string>()

/** Whether the process a lock file names is gone: dead, a zombie, another process under its pid, or an earlier process under ours. */
const holderGone = (pid: number, tag: number, identity: string): boolean =>
  pid === process.pid ? !heldNonces.has(identity) : !isProcessAlive(pid, tag)

/** The lock file at `path`, or undefined if there is none. One we cannot read counts as live. */
const readLock = (path: string, rules: LockRules): LockHolder | undefined => {
  let text: string
  let stat: { readonly ino: number; readonly mtimeMs: number }
  try {
    const fd = openSync(path, "r")
    try {
      stat = fstatSync(fd)
      text = readFileSync(fd, "utf8")
    } finally {
      closeSync(fd)
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined
    return { identity: "", pid: 0, gone: false, unreadable: (error as Error).message }
  }
  const [pidText, start, nonce] = text.trim().split(" ")
  const pid = Number(pidText)
  const valid = Number.isSafeInteger(pid) && pid > 0
  const startTag = Number(start)
  const tag = Number.isInteger(startTag) && startTag > 0 ? startTag : 0
  if (valid && nonce !== undefined && /^[0-9a-f]{16}$/.test(nonce)) {
    return { identity: nonce, pid, gone: holderGone(pid, tag, nonce) }
  }
  const identity = `ino${stat.ino}`
  const stale = rules.olderBuildStaleMs === undefined ? !valid : Date.now() - stat.mtimeMs > rules.olderBuildStaleMs
  return { identity, pid: valid ? pid : 0, gone: stale || (valid && holderGone(pid, tag, identity)) }
}

/**
 * Makes `target` holding `text`, whole or not at all: written to a temporary file of its own,
 * then hard-linked into place, which fails (false) if `target` exists. A writer killed at any
 * point leaves no `target` or one that names it.
 */
const linkNew = (target: string, text: string): boolean => {
  const temporary = `${target}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`
  writeFileSync(temporary, text, { mode: 0o600, flag: "wx" })
  try {
    linkSync(temporary, target)
    return true
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EEXIST") return false
    throw error
  } finally {
    unlinkSync(temporary)
  }
}

/**
 * Removes the file at `path` if it still is `identity`, whose holder is gone. Whoever removes a
 * dead holder's file first makes the marker `LOCK.IDENTITY.takeover` (itself a lock file naming
 * its maker), so of all the processes that found the same dead file, one removes it, and only
 * it: a file once removed never comes back under its identity, so a late one finds another
 * identity there (a live successor's lock) and leaves it. Nothing else removes a file whose
 * holder lives (a holder stopped for however long keeps its lock). A marker whose maker died
 * in turn is removed the same way.
 */
const removeGone = (lockPath: string, path: string, identity: string, mine: string, rules: LockRules): void => {
  const marker = `${lockPath}.${identity}.takeover`
  if (!linkNew(marker, mine)) {
    const taker = readLock(marker, rules)
    if (taker?.gone === true) removeGone(lockPath, marker, taker.identity, mine, rules)
    return
  }
  try {
    // Checked again under the marker: an older build's identity (an inode) may name a new file.
    const now = readLock(path, rules)
    if (now?.identity === identity && now.gone) unlinkSync(path)
  } finally {
    unlinkSync(marker)
  }
}

/** Removes what lock makers killed meanwhile left beside the lock: their temporary files, and take-over markers (`removeGone`). */
const sweepLeftovers = (lockPath: string, mine: string, rules: LockRules): void => {
  const prefix = `${basename(lockPath)}.`
  for (const name of readdirSync(dirname(lockPath))) {
    if (!name.startsWith(prefix)) continue
    const leftover = join(dirname(lockPath), name)
    const temporary = /\.(\d+)\.[0-9a-f]{8}\.tmp$/.exec(name)
    if (temporary !== null) {
      if (!isProcessAlive(Number(temporary[1]), 0)) rmSync(leftover, { force: true })
    } else if (name.endsWith(".takeover")) {
      const marker = readLock(leftover, rules)
      if (marker?.gone === true) removeGone(lockPath, leftover, marker.identity, mine, rules)
    }
  }
}

/**
 * Tries to make `lockPath` for this process, taking over a gone holder's file on the way
 * (`removeGone`); a live holder's lock is left alone, and this returns at once naming it. Taken,
 * the release removes the file while it is still this one.
 */
export const tryLock = (lockPath: string, rules: LockRules): LockAttempt => {
  const nonce = randomBytes(8).toString("hex")
  const mine = `${process.pid} ${ownStartTag()} ${nonce}\n`
  let holder: LockHolder | undefined
  for (let round = 0; round < ROUNDS; round++) {
    if (linkNew(lockPath, mine)) {
      heldNonces.add(nonce)
      try {
        sweepLeftovers(lockPath, mine, rules)
      } catch {
        // Leftovers cost a directory entry each, nothing more: the lock is taken.
      }
      return {
        taken: true,
        release: () => {
          heldNonces.delete(nonce)
          // Ours still: no one takes over the lock of a live holder.
          if (readLock(lockPath, rules)?.identity === nonce) unlinkSync(lockPath)
        }
      }
    }
    holder = readLock(lockPath, rules) // undefined: released meanwhile (or a dangling link there)
    if (holder === undefined) continue
    if (!holder.gone) break
    removeGone(lockPath, lockPath, holder.identity, mine, rules)
  }
  return { taken: false, holder }
}
