/**
 * What `cxlog bench --type mirror` must report: its result line (the last line it prints, with or
 * without --json) has every step's figure, ratios that agree with them, and the audit of the
 * stream read back. The suite runs that bench once, as docs/mirror.md's block, and checks its
 * output here (test/docs/DocsRun.test.ts).
 */
import { expect } from "@effect/vitest"

export const expectMirrorFigures = (output: string, audit: string) => {
  const line = output.trim().split("\n").filter((l) => l.startsWith("{\"bench\":\"mirror\"")).at(-1)
  expect(line, `no result line in:\n${output}`).toBeDefined()
  const result = JSON.parse(line!) as Record<string, unknown>
  expect(result).toMatchObject({ bench: "mirror", auditPassed: true, audit })
  for (
    const figure of [
      "directMBps",
      "mirrorMBps",
      "regionMBps",
      "regionWithMirrorMBps",
      "regionBesideLoadMBps",
      "regionBesideMirrorLoadMBps",
      "mirrorSideCores",
      "lagP99Ms"
    ]
  ) {
    expect(result[figure], figure).toBeGreaterThan(0)
  }
  // The mirror process alone is read in /proc's 10 ms ticks over one short step: a run of the docs'
  // few thousand messages can give it none (seen on CI), where its side (the JetStream servers too) has some.
  expect(result["mirrorCores"], "mirrorCores").toBeGreaterThanOrEqual(0)
  expect(result["mirrorCores"]).toBeLessThanOrEqual(result["mirrorSideCores"] as number)
  const region = result["regionMBps"] as number
  expectRatioOf(result, "publishRatio", "regionWithMirrorMBps", region)
  expectRatioOf(result, "loadRatio", "regionBesideLoadMBps", region)
  expectRatioOf(result, "mirrorLoadRatio", "regionBesideMirrorLoadMBps", region)
}

/**
 * `result[ratio]` is `result[over]` ÷ `under` as the bench computed it: from the unrounded MB/s,
 * rounded to 0.001, where the figures it prints are rounded to 0.01 — so it lies within what those
 * roundings allow (a few MB/s of a short run make that a few hundredths of the ratio).
 */
const expectRatioOf = (result: Record<string, unknown>, ratio: string, over: string, under: number) => {
  const top = result[over] as number
  const low = (top - 0.005) / (under + 0.005) - 0.0005
  const high = (top + 0.005) / (under - 0.005) + 0.0005
  expect(result[ratio], `${ratio} against ${over} ÷ regionMBps`).toBeGreaterThanOrEqual(low)
  expect(result[ratio], `${ratio} against ${over} ÷ regionMBps`).toBeLessThanOrEqual(high)
}
