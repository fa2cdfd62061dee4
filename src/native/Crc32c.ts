/**
 * crc32c (Castagnoli) for wire frames, batch payloads and segment records: the native addon's
 * hardware path when it loads, the TypeScript table otherwise (so clients work without the addon).
 */
import { crc32cSoftware } from "./Crc32cSoftware.js"
import { loadAddonSync } from "./Native.js"

type Crc32c = (bytes: ArrayBuffer | ArrayBufferView, offset: number, length: number, seed?: number) => number

const pick = (): { readonly crc32c: Crc32c; readonly kind: "native" | "software" } => {
  try {
    const addon = loadAddonSync()
    return { crc32c: (bytes, offset, length, seed = 0) => addon.crc32c(bytes, offset, length, seed), kind: "native" }
  } catch {
    return { crc32c: crc32cSoftware, kind: "software" }
  }
}

const chosen = pick()

/** crc32c of `length` bytes at `offset` of `bytes` (offset relative to the view), chained from `seed`. */
export const crc32c: Crc32c = chosen.crc32c

/** Which implementation `crc32c` uses in this process. */
export const crc32cKind = chosen.kind
