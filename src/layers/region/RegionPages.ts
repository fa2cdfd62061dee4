/**
 * Whether a region's file is mapped in the kernel's 2 MiB pages. A region lives in a tmpfs
 * (/dev/shm) unless named by a path: tmpfs gives huge pages per its `huge=` mount option
 * (`always`, `within_size`; `advise` only to pages a mapping that asked for them faults in, where
 * a region reserves its pages up front, with fallocate, to fail typed when the host is full), and the
 * host's `shmem_enabled` overrides every tmpfs when set to `force` or `deny`. With them, what
 * reads the log spends much less CPU a GiB (docs/operations.md, "Huge pages for the region"),
 * so the head and `cxlog selfcheck` say which a region gets.
 */
import { readFileSync } from "node:fs"
import { regionKind } from "../../native/Native.js"

/** Where POSIX shared memory lives on Linux. */
const SHM_MOUNT = "/dev/shm"
const SHMEM_ENABLED = "/sys/kernel/mm/transparent_hugepage/shmem_enabled"

export interface RegionPages {
  /** True: 2 MiB pages; false: 4 KiB; undefined: not a tmpfs (a DAX device, a file elsewhere), not known here. */
  readonly huge: boolean | undefined
  /** What decided it, for a person: the mount and its option, or the host's override. */
  readonly why: string
}

/** `/proc/mounts` escapes a space, tab, newline and backslash in a path as octal. */
const unescapeMountPath = (path: string): string =>
  path.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)))

/** The mount of `/proc/mounts` text `mounts` holding `path`: the longest mount point it lies under. */
const mountOf = (path: string, mounts: string) => {
  let found: { point: string; type: string; options: Array<string> } | undefined
  for (const line of mounts.split("\n")) {
    const [, rawPoint, type, options] = line.split(" ")
    if (rawPoint === undefined || type === undefined || options === undefined) continue
    const point = unescapeMountPath(rawPoint)
    const under = point === "/" || path === point || path.startsWith(`${point}/`)
    if (under && (found === undefined || point.length >= found.point.length)) {
      found = { point, type, options: options.split(",") }
    }
  }
  return found
}

/**
 * The pages of the file at `path`, from `/proc/mounts` text and `shmem_enabled` text (its
 * choice in brackets, `always within_size advise [never] deny force`; empty when the host has
 * no such file).
 */
export const pagesOf = (path: string, mounts: string, shmemEnabled: string): RegionPages => {
  const mount = mountOf(path, mounts)
  if (mount === undefined) return { huge: undefined, why: `no mount holds ${path}` }
  if (mount.type === "hugetlbfs") return { huge: true, why: `${mount.point} is a hugetlbfs` }
  if (mount.type !== "tmpfs") return { huge: undefined, why: `${mount.point} is a ${mount.type}` }
  const hostChoice = /\[(\w+)\]/.exec(shmemEnabled)?.[1]
  if (hostChoice === "force") return { huge: true, why: `the host's shmem_enabled is force` }
  if (hostChoice === "deny") return { huge: false, why: `the host's shmem_enabled is deny` }
  const option = mount.options.find((o) => o.startsWith("huge="))?.slice(5) ?? "never"
  return { huge: option === "always" || option === "within_size", why: `${mount.point} is a tmpfs with huge=${option}` }
}

const readOr = (path: string, otherwise: string): string => {
  try {
    return readFileSync(path, "utf8")
  } catch {
    return otherwise
  }
}

/** The pages region `name` gets on this host (its file need not exist yet). */
export const regionPages = (name: string): RegionPages => {
  const { kind, path } = regionKind(name)
  return pagesOf(kind === "shm" ? `${SHM_MOUNT}${path}` : path, readOr("/proc/mounts", ""), readOr(SHMEM_ENABLED, ""))
}

/** One phrase for a log line: `2 MiB pages`, or `4 KiB pages` with the mount to change. */
export const describePages = (pages: RegionPages): string =>
  pages.huge === true
    ? `2 MiB pages (${pages.why})`
    : pages.huge === false
    ? `4 KiB pages (${pages.why}; huge=within_size lowers readers' CPU: docs/operations.md, "Huge pages for the region")`
    : `pages as its filesystem maps them (${pages.why})`
