/**
 * The credential file: its Schema (users with derived keys only, their rights and limits; the
 * brokers' session key; the region it serves), reading it (one typed `CredentialError` naming
 * what is wrong), writing it private and whole, and changing it under its lock (a `PidLockFile`),
 * so two `cxlog user add` at once do not lose a user.
 */
import { Data, Either, ParseResult, Schema } from "effect"
import { randomBytes } from "node:crypto"
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, rmSync, statSync, writeSync } from "node:fs"
import { dirname, join } from "node:path"
import { firstFailure, issueWords } from "../../SchemaIssues.js"
import { type LockAttempt, type LockHolder, tryLock } from "../region/PidLockFile.js"
import { b64, clientKeyOf, DEFAULT_ITERATIONS, salted, serverKeyOf, sha256, unb64 } from "./AuthKeys.js"
import { MAX_CHALLENGE_ITERATIONS } from "./Control.js"

export class CredentialError
  extends Data.TaggedError("CredentialError")<{ readonly path: string; readonly reason: string }>
{
  override get message() {
    return `credentials ${this.path}: ${this.reason}`
  }
}

const Strings = Schema.Array(Schema.String)

/** Per-user limits, per broker process; 0 or absent: unlimited. */
export const UserLimits = Schema.Struct({
  messagesPerSecond: Schema.optionalWith(Schema.Number, { exact: true }),
  bytesPerSecond: Schema.optionalWith(Schema.Number, { exact: true }),
  connections: Schema.optionalWith(Schema.Number, { exact: true })
})
export interface UserLimits extends Schema.Schema.Type<typeof UserLimits> {}

/** One user of the credential file: derived keys only (base64), rights as topic patterns (`*` matches any run of characters). */
export const UserRecord = Schema.Struct({
  name: Schema.String,
  salt: Schema.String,
  /** PBKDF2's, as a client will run them: a count every client refuses is refused where the file is read. */
  iterations: Schema.Int.pipe(Schema.between(1, MAX_CHALLENGE_ITERATIONS)),
  storedKey: Schema.String,
  serverKey: Schema.String,
  publish: Strings,
  read: Strings,
  /** Named consumers the user may join and commit for (on topics it may read); absent (files of older builds): any. */
  consume: Schema.optionalWith(Strings, { exact: true }),
  /**
   * Topics the user may administer through a broker (create, delete; docs/security.md, "Administering
   * topics"); absent (files of older builds) or empty: none.
   */
  admin: Schema.optionalWith(Strings, { exact: true }),
  limits: Schema.optionalWith(UserLimits, { exact: true })
})
export interface UserRecord extends Schema.Schema.Type<typeof UserRecord> {}

/**
 * The one region a region's default credential file (and its secret file) belongs to: its name
 * and creation time (the superblock's). `createdAtMs` is 0 while the head that made the files
 * has not created the region yet; `pid` and `start` (its start tag) name the head that made or
 * bound them. A region made again under the same name is another region: these are not its files.
 */
export const RegionBinding = Schema.Struct({
  name: Schema.String,
  createdAtMs: Schema.Number,
  pid: Schema.Number,
  start: Schema.Number
})
export interface RegionBinding extends Schema.Schema.Type<typeof RegionBinding> {}

export const CredentialFile = Schema.Struct({
  version: Schema.Literal(1),
  users: Schema.Array(UserRecord),
  /**
   * The brokers' key for session tokens (base64, random, 16 bytes at least; `upsertUser` adds it
   * to a file without one): a token binds a publisher session to the user that registered it,
   * checkable by every broker of the file and made by none of its users.
   */
  sessionKey: Schema.optionalWith(Schema.String.pipe(Schema.filter((key) => unb64(key).length >= 16)), { exact: true }),
  /** The region a default credential file serves; none in a file named by `--credentials`. */
  region: Schema.optionalWith(RegionBinding, { exact: true })
})
export interface CredentialFile extends Schema.Schema.Type<typeof CredentialFile> {}

/** Fields a newer build wrote are kept: a change made by this one rewrites the file with them. */
const decodeCredentialFile = Schema.decodeUnknownEither(CredentialFile, { errors: "all", onExcessProperty: "preserve" })

/**
 * The one reason a file that does not decode gives: that it is no credential file at all, else
 * its session key, its region binding, then its first malformed user (named when it has a name).
 */
const faultOf = (parsed: unknown, error: ParseResult.ParseError): string => {
  const paths = ParseResult.ArrayFormatter.formatErrorSync(error).map((issue) => issue.path)
  if (paths.some((path) => path.length === 0 || path[0] === "version" || (path[0] === "users" && path.length === 1))) {
    return "not a cxlog credential file (version 1)"
  }
  if (paths.some((path) => path[0] === "sessionKey")) return "a malformed session key"
  if (paths.some((path) => path[0] === "region")) return "a malformed region binding"
  const name = (parsed as { users: Array<{ name?: unknown } | null> }).users[paths[0]![1] as number]?.name
  // Which field, and how: a hand-edited record says what to mend (`its iterations: Expected … actual 0`).
  const failure = firstFailure(error.issue)
  const field = failure.path.slice(2).map(String).join(".")
  return `a malformed user record${typeof name === "string" ? ` (${name})` : ""}${
    field === "" ? "" : `: its ${field}: ${issueWords(failure.issue)}`
  }`
}

/**
 * Why a file of mode `mode` is not private enough to hold credentials (others may read it), or
 * undefined: the one rule for the credential file (a broker trusts none that others could have
 * read or changed) and a secret file.
 */
export const exposedModeProblem = (mode: number): string | undefined =>
  (mode & 0o077) === 0 ? undefined : `mode ${(mode & 0o777).toString(8)} lets others read it: chmod 600 it`

export const readCredentialFile = (path: string): CredentialFile => {
  let parsed: unknown
  try {
    parsed = JSON.parse(readFileSync(path, "utf8"))
  } catch (error) {
    throw new CredentialError({ path, reason: `unreadable: ${(error as Error).message}` })
  }
  const decoded = decodeCredentialFile(parsed)
  if (Either.isLeft(decoded)) throw new CredentialError({ path, reason: faultOf(parsed, decoded.left) })
  return decoded.right
}

/** A private file written in full beside its place, not yet there: `commit` renames it into place, `discard` removes it. */
export interface StagedFile {
  readonly commit: () => void
  readonly discard: () => void
}

/**
 * Writes `text` with mode 0600 to a temporary file beside `path`, to be renamed over it: so readers
 * never see half of it, and a caller can learn that the file can be written before it commits to
 * anything that needs it (a user whose secret file could not be written would hold a secret
 * nobody has). A `path` that is a directory is refused here, where nothing is written yet.
 */
export const stagePrivateFile = (path: string, text: string): StagedFile => {
  if (statSync(path, { throwIfNoEntry: false })?.isDirectory() === true) {
    throw new Error(`${path} is a directory`)
  }
  const temporary = join(dirname(path), `.${process.pid}.${randomBytes(4).toString("hex")}.tmp`)
  const fd = openSync(temporary, "wx", 0o600)
  const discard = () => rmSync(temporary, { force: true })
  try {
    writeSync(fd, text)
    fsyncSync(fd)
  } catch (error) {
    discard()
    throw error
  } finally {
    closeSync(fd)
  }
  return {
    commit: () => {
      try {
        renameSync(temporary, path)
      } catch (error) {
        discard()
        throw error
      }
    },
    discard
  }
}

/** Writes `text` to `path` with mode 0600 through a temporary file and a rename, so readers never see half of it. */
export const writePrivateFile = (path: string, text: string): void => stagePrivateFile(path, text).commit()

export const writeCredentialFile = (path: string, file: CredentialFile): void =>
  writePrivateFile(path, `${JSON.stringify(file, null, 2)}\n`)

/** A user record for `secret` (fresh salt): what `cxlog user add` and the head write. */
export const userRecord = (
  name: string,
  secret: string,
  rights: {
    publish: ReadonlyArray<string>
    read: ReadonlyArray<string>
    consume?: ReadonlyArray<string>
    admin?: ReadonlyArray<string>
  },
  limits?: UserLimits,
  iterations = DEFAULT_ITERATIONS
): UserRecord => {
  const salt = b64(randomBytes(16))
  const s = salted(secret, salt, iterations)
  return {
    name,
    salt,
    iterations,
    storedKey: b64(sha256(clientKeyOf(s))),
    serverKey: b64(serverKeyOf(s)),
    publish: rights.publish,
    read: rights.read,
    ...(rights.consume === undefined ? {} : { consume: rights.consume }),
    ...(rights.admin === undefined ? {} : { admin: rights.admin }),
    ...(limits === undefined ? {} : { limits })
  }
}

/** How long a change to a credential file waits for another one's lock before it gives up. */
const LOCK_WAIT_MS = 10_000
/** A lock file of an older cxlog (its pid alone, written after the file was made) older than this is a crashed writer's. */
const LOCK_RULES = { olderBuildStaleMs: 30_000 }
const pause = new Int32Array(new SharedArrayBuffer(4))

/** Why a change gave up waiting for the lock `holder` keeps. */
const lockTimeout = (lockPath: string, holder: LockHolder | undefined): string =>
  holder === undefined
    ? `its lock ${lockPath} could not be made within ${LOCK_WAIT_MS} ms, though no lock file could be read there`
    : holder.unreadable !== undefined
    ? `its lock ${lockPath} could not be read for over ${LOCK_WAIT_MS} ms: ${holder.unreadable}`
    : holder.gone
    ? `another change has been taking over its lock ${lockPath} (of process ${holder.pid}, which is gone) for over ${LOCK_WAIT_MS} ms (remove ${lockPath}.*.takeover if no cxlog user command runs)`
    : `process ${holder.pid} holds its lock ${lockPath} for over ${LOCK_WAIT_MS} ms (remove the file if no cxlog user command runs)`

/**
 * Runs `change` (a read, modify and rename of the credential file) holding `PATH.lock`: two `cxlog
 * user add` at once would otherwise each write the file it read, and one user would vanish. A
 * holder that died is seen at once and its lock taken over (`PidLockFile`); a live holder's
 * lock never is: a change waits for it, up to `LOCK_WAIT_MS`.
 */
const withFileLock = <A>(path: string, change: () => A): A => {
  const lockPath = `${path}.lock`
  const deadline = Date.now() + LOCK_WAIT_MS
  let attempt: LockAttempt
  try {
    while (!(attempt = tryLock(lockPath, LOCK_RULES)).taken) {
      if (Date.now() > deadline) throw new CredentialError({ path, reason: lockTimeout(lockPath, attempt.holder) })
      Atomics.wait(pause, 0, 0, 5 + Math.random() * 10)
    }
  } catch (error) {
    if (error instanceof CredentialError) throw error
    throw new CredentialError({ path, reason: `cannot lock it (${lockPath}): ${(error as Error).message}` })
  }
  try {
    return change()
  } finally {
    attempt.release()
  }
}

/**
 * Sets user `name` to the record `change` makes of the one the file holds (undefined: none), both
 * read and written under the file's lock, so a change made meanwhile (another secret given) is
 * the one built on, never undone; `change` also says what it did, which this returns. A new file
 * gets a session key (and `region`, if given); a file written before keys existed keeps none:
 * giving it one under a running cluster would make every broker refuse the token-less attaches of
 * the sessions registered before (docs/security.md).
 */
export const changeUser = <A extends { readonly record: UserRecord }>(
  path: string,
  name: string,
  change: (existing: UserRecord | undefined) => A,
  region?: RegionBinding
): A =>
  withFileLock(path, () => {
    const existing: CredentialFile = statSync(path, { throwIfNoEntry: false }) === undefined
      ? { version: 1, users: [], sessionKey: b64(randomBytes(32)), ...(region === undefined ? {} : { region }) }
      : readCredentialFile(path)
    const changed = change(existing.users.find((u) => u.name === name))
    writeCredentialFile(path, {
      ...existing,
      version: 1,
      users: [...existing.users.filter((u) => u.name !== name), changed.record]
    })
    return changed
  })

/** Adds (or replaces) a user (`changeUser` with the record given). */
export const upsertUser = (path: string, record: UserRecord, region?: RegionBinding): void =>
  void changeUser(path, record.name, () => ({ record }), region)

/** Binds the file to `region` (its users and keys unchanged); false when there is no file. */
export const bindCredentialFile = (path: string, region: RegionBinding): boolean =>
  withFileLock(path, () => {
    if (statSync(path, { throwIfNoEntry: false }) === undefined) return false
    writeCredentialFile(path, { ...readCredentialFile(path), region })
    return true
  })

/** Removes a user; false when the file did not hold it. */
export const removeUser = (path: string, name: string): boolean =>
  withFileLock(path, () => {
    const existing = readCredentialFile(path)
    if (!existing.users.some((u) => u.name === name)) return false
    writeCredentialFile(path, { ...existing, users: existing.users.filter((u) => u.name !== name) })
    return true
  })
