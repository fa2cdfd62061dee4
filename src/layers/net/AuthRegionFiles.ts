/**
 * The secret file (`NAME:SECRET`, what a client authenticates with) and this user's private
 * directory, where a region's default credential and secret files live: the head makes them,
 * a client on its host finds its credentials there, and they go with the region.
 */
import { createHash } from "node:crypto"
import { lstatSync, mkdirSync, readFileSync, statSync, unlinkSync } from "node:fs"
import { tmpdir, userInfo } from "node:os"
import { join } from "node:path"
import { regionKind } from "../../native/Native.js"
import { REGION_SETTINGS } from "../../services/region/RegionSettings.js"
import { readSetting, xdgRuntimeDir } from "../../Settings.js"
import type { Credentials } from "./AuthClient.js"
import {
  CredentialError,
  exposedModeProblem,
  type RegionBinding,
  type StagedFile,
  stagePrivateFile,
  upsertUser,
  userRecord,
  writePrivateFile
} from "./AuthCredentialFile.js"
import { newSecret } from "./AuthKeys.js"

/**
 * This user's private directory for credential and secret files: `$XDG_RUNTIME_DIR/cxlog`, else
 * `<tmp>/cxlog-auth-<uid>`; created 0700 and refused unless it is a directory of this user that
 * nobody else may enter (a squatted one in a shared /tmp would leak secrets).
 */
export const authDirectory = (): string => {
  const runtime = xdgRuntimeDir()
  const dir = runtime !== undefined ? join(runtime, "cxlog") : join(tmpdir(), `cxlog-auth-${process.getuid?.() ?? 0}`)
  mkdirSync(dir, { recursive: true, mode: 0o700 })
  const stat = lstatSync(dir)
  const uid = process.getuid?.()
  if (!stat.isDirectory() || (uid !== undefined && stat.uid !== uid) || (stat.mode & 0o077) !== 0) {
    throw new CredentialError({
      path: dir,
      reason: "not a private directory of this user (owner and mode 700 expected)"
    })
  }
  return dir
}

/** Longest stem kept whole (a file name holds 255 bytes, and the stem takes a suffix). */
const MAX_STEM = 200

/**
 * A region's name as the stem of its files in this user's private directory: one per region
 * (injective), so two regions never share a credential or secret file — a head of one would
 * retire the other's as a dead region's, users and all. A shm name loses its leading `/` (`/r` and
 * `r` are one region); a name of letters, digits, `.`, `_` and `-` is its own stem; any other byte
 * (a file region's `/`, a `:`) is `%` and two hex digits, and a stem too long for a file name keeps
 * its first part and a SHA-256 of the whole after a `~`, which no other stem holds.
 */
export const fileStem = (region: string) => {
  const name = regionKind(region).kind === "shm" ? region.replace(/^\//, "") : region
  let stem = ""
  for (const byte of Buffer.from(name, "utf8")) {
    const c = String.fromCharCode(byte)
    stem += /[A-Za-z0-9._-]/.test(c) ? c : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`
  }
  return stem.length > MAX_STEM ? `${stem.slice(0, 100)}~${createHash("sha256").update(name).digest("hex")}` : stem
}
/** The region's default credential file (the head creates it). */
export const defaultCredentialPath = (region: string): string => join(authDirectory(), `${fileStem(region)}.users`)
/** The region's default secret file: the local user's `NAME:SECRET`, which the local publisher reads. */
export const defaultSecretPath = (region: string): string => join(authDirectory(), `${fileStem(region)}.secret`)

/**
 * The local user's credentials for `region` from its default secret file (what a client on the
 * head's host uses when given none); undefined when there is no such file or no private
 * directory for one. A file that is there but unusable throws its `CredentialError`.
 */
export const localCredentials = (region: string): Credentials | undefined => {
  let path: string
  try {
    path = defaultSecretPath(region)
  } catch {
    return undefined
  }
  return statSync(path, { throwIfNoEntry: false }) === undefined
    ? undefined
    : { ...readSecretFile(path), implicit: true }
}

/** Where a client library finds the local user's secret file when given no credentials. */
export interface LocalRegion {
  /** The region whose default secret file (the head writes it) to use when `credentials` is not given. Default `CXLOG_REGION`, else "cxlog". */
  readonly region?: string
}

/** `options` with the local user's credentials for its region when it names none (and the head's secret file is there). */
export const withLocalCredentials = <O extends LocalRegion & { readonly credentials?: Credentials | undefined }>(
  options: O
): O => {
  if (options.credentials !== undefined) return options
  // As the CLI: the region this process's environment names when the options name none.
  const credentials = localCredentials(options.region ?? readSetting(REGION_SETTINGS.settings.name))
  return credentials === undefined ? options : { ...options, credentials }
}

/** The local OS user's name: the default user of a region's credential file. */
const localUserName = (): string => {
  try {
    return userInfo().username.replace(/[^A-Za-z0-9._-]/g, "_") || "local"
  } catch {
    return "local"
  }
}

/** A secret file's `NAME:SECRET` (refused when others may read it). */
export const readSecretFile = (path: string): Credentials => {
  const stat = statSync(path, { throwIfNoEntry: false })
  if (stat === undefined) throw new CredentialError({ path, reason: "no such secret file" })
  const exposed = exposedModeProblem(stat.mode)
  if (exposed !== undefined) throw new CredentialError({ path, reason: exposed })
  let text: string
  try {
    text = readFileSync(path, "utf8").trim()
  } catch (error) {
    // A directory, or a file this user may not read: named, as every other secret file problem is.
    throw new CredentialError({ path, reason: `unreadable secret file: ${(error as Error).message}` })
  }
  const colon = text.indexOf(":")
  if (colon <= 0 || colon === text.length - 1) throw new CredentialError({ path, reason: "not NAME:SECRET" })
  // Lines after the first would be read as part of the secret, and fail as a wrong one.
  if (/[\r\n]/.test(text)) {
    throw new CredentialError({ path, reason: "not NAME:SECRET: more than one line (one user's NAME:SECRET a file)" })
  }
  return { user: text.slice(0, colon), secret: text.slice(colon + 1) }
}

/**
 * Why the file at `path` must not be replaced by `user`'s secret file, or undefined (there is none,
 * or it is `user`'s own). A secret is kept nowhere but in its file, so writing over another
 * user's, or over a credential file named by mistake, would lose it (or every user) for good.
 */
const notReplaceable = (path: string, user: string): string | undefined => {
  const there = lstatSync(path, { throwIfNoEntry: false })
  if (there === undefined) return undefined
  // The file is written whole and renamed into place: a link, a device or a pipe there (say
  // /dev/stdout, a link to the terminal) would itself be replaced by a file holding the secret. (A
  // directory cannot be: stagePrivateFile says so.)
  if (there.isDirectory()) return undefined
  if (!there.isFile()) {
    return "it is there and is not a regular file (a link, a device, a pipe), which writing the secret would replace: name a file path, or leave --secret-file out to print the secret"
  }
  let text: string
  try {
    text = readFileSync(path, "utf8").trim()
  } catch (error) {
    return `it is there and cannot be read (${(error as Error).message}): remove it, or name another`
  }
  if (text.startsWith(`${user}:`) && !text.includes("\n")) return undefined
  const other = /^([^:\s]+):\S+$/.exec(text)?.[1]
  return other !== undefined
    ? `it holds user ${other}'s secret, which is kept nowhere else: name another file`
    : "it is there and is not a secret file (a credential file, say), which writing the secret would replace: name another file"
}

/**
 * `credentials` written to a temporary file beside `path`, renamed into place by its `commit`:
 * what is to hold a new user's secret is known to be writable before the user is added. Refused
 * (a `CredentialError` naming `path`) when it cannot be written, or when a file there holds
 * anything but this user's own secret (`notReplaceable`).
 */
export const stageSecretFile = (path: string, credentials: Credentials): StagedFile => {
  const refusal = notReplaceable(path, credentials.user)
  if (refusal !== undefined) throw new CredentialError({ path, reason: `not writing the secret file: ${refusal}` })
  try {
    return stagePrivateFile(path, `${credentials.user}:${credentials.secret}\n`)
  } catch (error) {
    throw new CredentialError({ path, reason: `cannot write the secret file: ${(error as Error).message}` })
  }
}

export const writeSecretFile = (path: string, credentials: Credentials): void =>
  writePrivateFile(path, `${credentials.user}:${credentials.secret}\n`)

/**
 * The head's part: the region's credential file with the local user (every right), bound to
 * `region` if given, and that user's secret file, unless a credential file is already there
 * (kept: users added to it stay).
 */
export const ensureRegionCredentials = (
  credentialPath: string,
  secretPath: string,
  region?: RegionBinding
): { created: boolean } => {
  if (statSync(credentialPath, { throwIfNoEntry: false }) !== undefined) return { created: false }
  const credentials = { user: localUserName(), secret: newSecret() }
  writeSecretFile(secretPath, credentials)
  upsertUser(
    credentialPath,
    userRecord(credentials.user, credentials.secret, { publish: ["*"], read: ["*"], admin: ["*"] }),
    region
  )
  return { created: true }
}

/** Removes the region's default files (the head that created them, when it removes its region). */
export const removeRegionCredentials = (credentialPath: string, secretPath: string): void => {
  for (const path of [credentialPath, secretPath]) {
    try {
      unlinkSync(path)
    } catch {
      // Already gone.
    }
  }
}

/** Removes a region's default files (`cxlog regions --remove`, a run's end), if this user's directory is usable. */
export const removeDefaultCredentials = (region: string): void => {
  try {
    removeRegionCredentials(defaultCredentialPath(region), defaultSecretPath(region))
  } catch {
    // No usable private directory: nothing of ours is there.
  }
}
