/**
 * The typed wrapper around the C++ addon. This is the only module that loads or calls it.
 */
import { Data, Effect } from "effect"
import { constants as bufferConstants } from "node:buffer"
import { existsSync } from "node:fs"
import { createRequire } from "node:module"
import { join } from "node:path"
import { packageRoot } from "../PackageRoot.js"
import { processEnvironment, readSetting, setButEmptyProblem } from "../Settings.js"
import { NATIVE_SETTINGS } from "./NativeSettings.js"

export type WaitOutcome = "woken" | "not-equal" | "timed-out"
export type OpenMode = "create" | "attach" | "create-or-attach"
export type RegionKind = "shm" | "file"

/** Cache-line instructions, in the addon's code order (CacheOp in cxlog_native.cc). */
export const CACHE_INSTRUCTIONS = ["clwb", "clflushopt", "clflush", "dc-cvac", "dc-civac", "fence-only"] as const
export type CacheInstruction = (typeof CACHE_INSTRUCTIONS)[number]

/** crc32c implementations, in the addon's code order (CrcPath in cxlog_native.cc); all compute the same function. */
export const CRC32C_PATHS = ["software", "sse4.2", "sse4.2-3way", "avx512-vpclmulqdq", "armv8-crc"] as const
export type Crc32cPath = (typeof CRC32C_PATHS)[number]

export interface NativeFeatures {
  /** What `flush` (publish) executes: the cheapest write-back, which may keep the line cached. */
  readonly flush: CacheInstruction
  /** What `invalidate` executes: always an evicting instruction (never clwb / dc cvac). */
  readonly invalidate: CacheInstruction
  /** The crc32c implementation `crc32c` uses: the fastest of `crc32cPaths`. */
  readonly crc32c: Crc32cPath
  /** The crc32c implementations this CPU can run. */
  readonly crc32cPaths: ReadonlyArray<Crc32cPath>
}

/** What the compiled addon exports (see cxlog_native.cc). */
export interface NativeAddon {
  /** `maxBytes`: refuse (ERR_REGION_TOO_LARGE) a region larger than one ArrayBuffer can be; see `regionByteLimit`. */
  open(
    kind: RegionKind,
    name: string,
    mode: OpenMode,
    size: number,
    maxBytes?: number,
    reserveBytes?: number
  ): { buffer: ArrayBuffer; size: number; created: boolean }
  close(buffer: ArrayBuffer): void
  unlink(kind: RegionKind, name: string): void
  flush(bytes: ArrayBuffer | ArrayBufferView, offset: number, length: number): void
  invalidate(bytes: ArrayBuffer | ArrayBufferView, offset: number, length: number): void
  fence(): void
  /** Allocates a region file's pages of whole pages [offset, offset+length): 0, or the errno (ENOSPC). */
  reserve(buffer: ArrayBuffer, offset: number, length: number): number
  /** Gives a region file's pages back (they read as zeros): 0, or the errno when it cannot (a device). */
  discard(buffer: ArrayBuffer, offset: number, length: number): number
  /** Test-only: record flush calls, and invalidate calls too if `withInvalidations`. */
  setFlushRecording(on: boolean, withInvalidations?: boolean): void
  /** Quadruples (path 0 flush | 1 invalidate, CACHE_INSTRUCTIONS index, offset, length) since the last take. */
  takeFlushRecords(): Float64Array
  wait(buffer: ArrayBuffer, offset: number, expected: number, timeoutMs: number): Promise<WaitOutcome>
  wake(buffer: ArrayBuffer, offset: number, count: number): number
  /** Creates a FIFO at `path` with `mode` (replacing a FIFO left there; anything else is EEXIST). */
  mkfifo(path: string, mode: number): void
  /** Whether the pipe or socket at `fd` has nobody reading it any more (poll(2): POLLERR or POLLHUP). */
  outputClosed(fd: number): boolean
  crc32c(bytes: ArrayBuffer | ArrayBufferView, offset?: number, length?: number, seed?: number): number
  /** Test-only: `crc32c` on a named implementation; RangeError if this CPU lacks it. */
  crc32cVia(
    path: Crc32cPath,
    bytes: ArrayBuffer | ArrayBufferView,
    offset?: number,
    length?: number,
    seed?: number
  ): number
  monotonicNs(): number
  features(): NativeFeatures
}

/**
 * The addon could not be loaded: none was built for this platform, or the one there fails to
 * load. Only what maps a region needs it (head, broker, local publisher, a subscriber on the
 * region's host); the TCP publisher and subscriber and the CLI's remote commands work without.
 */
export class NativeUnavailable extends Data.TaggedError("NativeUnavailable")<{
  readonly path: string
  readonly reason: string
}> {
  get fix(): string {
    return `build it from source with \`npm rebuild cxlog\` (needs a C++ toolchain and python3 for node-gyp; prebuilt: ${
      PREBUILT_PLATFORMS.join(", ")
    }, glibc 2.34 or later; npm 12 runs it only once the app approves it: \`npm install-scripts approve cxlog\`), ` +
      "or use the TCP clients (publisher and subscriber given brokers), which need no addon"
  }
  override get message(): string {
    return `cxlog native addon unavailable at ${this.path}: ${this.reason}; fix: ${this.fix}`
  }
}

/** A system call in the addon failed. */
export class NativeError extends Data.TaggedError("NativeError")<{
  readonly op: string
  readonly errno: number
  readonly code: string
  readonly reason: string
}> {
  override get message(): string {
    return `${this.op}: ${this.reason}`
  }
}

/** The platforms the package ships a prebuilt addon for (scripts/prebuilds.mjs). */
export const PREBUILT_PLATFORMS = ["linux-x64", "linux-arm64"] as const

/** The prebuilt addon for this process's platform and architecture (it may not exist). */
export const prebuiltAddonPath = (): string =>
  join(packageRoot(), "prebuilds", `${process.platform}-${process.arch}`, "cxlog_native.node")

/**
 * Where the addon is loaded from: `CXLOG_NATIVE_PATH` when set (that file only); else a build
 * from source (node-gyp's build/Release, which `npm install` makes only where no prebuilt addon
 * loads, and a developer's checkout always), else the prebuilt one for this platform.
 * `CXLOG_NATIVE_PATH` set but empty throws `NativeUnavailable` naming it.
 */
export const addonPath = (): string => {
  const declared = NATIVE_SETTINGS.settings.nativePath
  // Empty is a mistake (a shell variable that expanded to nothing), not a way to ask for the default.
  const empty = setButEmptyProblem([declared], processEnvironment())
  if (empty !== undefined) throw new NativeUnavailable({ path: `${declared.env}=""`, reason: empty })
  const given = readSetting(declared)
  if (given !== undefined) return given
  const fromSource = join(packageRoot(), "build", "Release", "cxlog_native.node")
  return existsSync(fromSource) ? fromSource : prebuiltAddonPath()
}

const require = createRequire(import.meta.url)
const loaded = new Map<string, NativeAddon>()

/** Loads the addon from `path` synchronously, throwing `NativeUnavailable`. */
export const loadAddonSync = (path: string = addonPath()): NativeAddon => {
  const cached = loaded.get(path)
  if (cached !== undefined) return cached
  if (!existsSync(path)) {
    const reason = path === prebuiltAddonPath()
      ? `no addon was built from source and none is prebuilt for ${process.platform}-${process.arch}`
      : "file not found"
    throw new NativeUnavailable({ path, reason })
  }
  try {
    const addon = require(path) as NativeAddon
    loaded.set(path, addon)
    return addon
  } catch (error) {
    throw new NativeUnavailable({ path, reason: error instanceof Error ? error.message : String(error) })
  }
}

/** Loads the addon from `path` (default: `addonPath()`). */
export const loadAddon = (path?: string): Effect.Effect<NativeAddon, NativeUnavailable> =>
  Effect.try({
    try: () => loadAddonSync(path),
    catch: (error) =>
      error instanceof NativeUnavailable
        ? error
        : new NativeUnavailable({ path: path ?? addonPath(), reason: String(error) })
  })

/** Turns an exception thrown by the addon into a `NativeError`. */
export const toNativeError = (op: string, error: unknown): NativeError => {
  const e = error as { errno?: number; code?: string; message?: string }
  return new NativeError({
    op,
    errno: typeof e?.errno === "number" ? e.errno : 0,
    code: typeof e?.code === "string" ? e.code : "EINVAL",
    reason: typeof e?.message === "string" ? e.message : String(error)
  })
}

/**
 * The largest region this Node.js can map: one ArrayBuffer over it and a Uint8Array over that.
 * Node-API wraps external memory in a Buffer, so this is `buffer.constants.MAX_LENGTH`:
 * 2^32 bytes on Node 20, 2^53 − 1 from Node 22 on.
 */
export const regionByteLimit = (): number => bufferConstants.MAX_LENGTH

/** A region name with a `/` after its first character is a file path (DAX device, CXL-node file); otherwise a POSIX shm name. */
export const regionKind = (name: string): { kind: RegionKind; path: string } =>
  name.indexOf("/", 1) > 0
    ? { kind: "file", path: name }
    : { kind: "shm", path: name.startsWith("/") ? name : `/${name}` }
