/**
 * A region's default credential files (`REGION.users` and `REGION.secret` in this user's private
 * directory, docs/security.md) belong to one region: the one their binding names by name and
 * creation time. A head retires the files of a region that no longer exists before it makes its
 * own, so a region made anew under an old name gets a fresh secret, never its predecessor's;
 * `cxlog regions --remove` removes a region's files with it and `--prune` those of every region
 * gone. A standby or an `--attach` head finds the files of the region it takes over: its own.
 */
import { readdirSync, statSync } from "node:fs"
import {
  authDirectory,
  bindCredentialFile,
  defaultCredentialPath,
  defaultSecretPath,
  readCredentialFile,
  type RegionBinding,
  removeDefaultCredentials
} from "../../layers/net/Auth.js"
import { isProcessAlive, ownStartTag } from "../../layers/region/ProcessInfo.js"

/** The binding of the files a head makes for region `name` before it has created it (`createdAtMs` 0: it fills it in then). */
export const pendingBinding = (name: string): RegionBinding => ({
  name,
  createdAtMs: 0,
  pid: process.pid,
  start: ownStartTag()
})

/** What region `name`'s default files are: absent, unreadable (left alone), or there with their binding, if any. */
type DefaultFiles =
  | { readonly _tag: "Absent" }
  | { readonly _tag: "Unreadable" }
  | {
    readonly _tag: "Present"
    readonly users: string
    readonly binding: RegionBinding | undefined
    readonly headMade: boolean
  }

const defaultFiles = (name: string): DefaultFiles => {
  let users: string
  let secret: string
  try {
    users = defaultCredentialPath(name)
    secret = defaultSecretPath(name)
  } catch {
    return { _tag: "Absent" } // no private directory: nothing of ours is there
  }
  if (statSync(users, { throwIfNoEntry: false }) === undefined) return { _tag: "Absent" }
  try {
    // An unbound file beside a secret file was made by a head of a build before bindings; `cxlog user add` writes no secret file there.
    return {
      _tag: "Present",
      users,
      binding: readCredentialFile(users).region,
      headMade: statSync(secret, { throwIfNoEntry: false }) !== undefined
    }
  } catch {
    return { _tag: "Unreadable" }
  }
}

/** Whether the head that made files bound by `binding` is alive and has not bound them to a region it created yet. */
const headCreating = (binding: RegionBinding): boolean =>
  binding.createdAtMs === 0 && isProcessAlive(binding.pid, binding.start)

/**
 * Whether files bound by `binding` belong to the region of their name as it is now: created at
 * `createdAtMs`, or none (undefined). Files no head bound (`cxlog user add` before the first
 * head) belong to whichever region comes; an older head's unbound files to the region there, if any.
 */
export const belongsToRegion = (
  binding: RegionBinding | undefined,
  headMade: boolean,
  createdAtMs: number | undefined
): boolean => {
  if (binding === undefined) return !headMade || createdAtMs !== undefined
  // Not bound yet: its head died before it could bind them to the region it had made, or is making it now.
  if (binding.createdAtMs === 0) return createdAtMs !== undefined || headCreating(binding)
  return binding.createdAtMs === createdAtMs
}

/**
 * Before a head makes or uses region `name`'s default files: removes them if they belong to
 * another region than the one there now (created at `createdAtMs`; undefined: none). True if it did.
 */
export const retireStaleCredentials = (name: string, createdAtMs: number | undefined): boolean => {
  const files = defaultFiles(name)
  if (files._tag !== "Present" || belongsToRegion(files.binding, files.headMade, createdAtMs)) return false
  removeDefaultCredentials(name)
  return true
}

/**
 * Once a head serves region `name` (created at `createdAtMs`): binds its default files to it,
 * unless they are bound already or another live head is about to create the region they are for.
 */
export const bindRegionCredentials = (name: string, createdAtMs: number): void => {
  const files = defaultFiles(name)
  if (files._tag !== "Present") return
  if (
    files.binding !== undefined &&
    (files.binding.createdAtMs !== 0 || (files.binding.pid !== process.pid && headCreating(files.binding)))
  ) return
  bindCredentialFile(files.users, { name, createdAtMs, pid: process.pid, start: ownStartTag() })
}

/** Whether region `name`'s default files are bound to a region a head made (not only made for one, its head still to serve it). */
export const credentialsBound = (name: string): boolean => {
  const files = defaultFiles(name)
  return files._tag === "Present" && files.binding !== undefined && files.binding.createdAtMs !== 0
}

/** The bindings of this user's default credential files (unbound, unreadable ones left out). */
export const credentialBindings = (): ReadonlyArray<RegionBinding> => {
  let names: Array<string>
  try {
    names = readdirSync(authDirectory())
  } catch {
    return []
  }
  const bindings: Array<RegionBinding> = []
  for (const file of names) {
    if (!file.endsWith(".users")) continue
    try {
      const binding = readCredentialFile(`${authDirectory()}/${file}`).region
      // A binding names the region of its file (a copied file's does not: it is left alone).
      if (binding !== undefined && defaultCredentialPath(binding.name).endsWith(`/${file}`)) bindings.push(binding)
    } catch {
      // Unreadable, or removed meanwhile: not ours to judge.
    }
  }
  return bindings
}
