/**
 * The cache-line instructions the addon should pick on this CPU, worked out from /proc/cpuinfo
 * rather than from the addon's own detection: publish takes the cheapest write-back (CLWB may
 * keep the line cached), invalidate the best instruction that evicts.
 */
import { readFileSync } from "node:fs"

export const expectedCacheInstructions = (): { readonly publish: string; readonly invalidate: string } => {
  if (process.arch === "arm64") return { publish: "dc-cvac", invalidate: "dc-civac" }
  if (process.arch !== "x64" && process.arch !== "ia32") return { publish: "fence-only", invalidate: "fence-only" }
  const line = readFileSync("/proc/cpuinfo", "utf8").match(/^flags\s*:(.*)$/m)?.[1] ?? ""
  const flags = new Set(line.trim().split(/\s+/))
  const evict = flags.has("clflushopt") ? "clflushopt" : flags.has("clflush") ? "clflush" : "fence-only"
  return { publish: flags.has("clwb") ? "clwb" : evict, invalidate: evict }
}
