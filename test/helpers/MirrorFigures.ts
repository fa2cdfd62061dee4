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
      "mirrorCores",
      "lagP99Ms"
    ]
  ) {
    expect(result[figure], figure).toBeGreaterThan(0)
  }
  expect(result["mirrorCores"]).toBeLessThanOrEqual(result["mirrorSideCores"] as number)
  expect(result["publishRatio"]).toBeCloseTo(
    (result["regionWithMirrorMBps"] as number) / (result["regionMBps"] as number),
    2
  )
  expect(result["loadRatio"]).toBeCloseTo(
    (result["regionBesideLoadMBps"] as number) / (result["regionMBps"] as number),
    2
  )
  expect(result["mirrorLoadRatio"]).toBeCloseTo(
    (result["regionBesideMirrorLoadMBps"] as number) / (result["regionMBps"] as number),
    2
  )
}
