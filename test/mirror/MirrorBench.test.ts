/**
 * `cxlog bench --type mirror`: without a nats-server, one line naming the package before any
 * cluster starts; with one (installed in set-up where missing), every step's figure and the audit.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { runCli } from "../helpers/CliRoles.js"
import { ensureDebianBinary } from "../helpers/DebianPackages.js"

const natsServer = ensureDebianBinary("nats-server", "nats-server")
const skip = "skip" in natsServer ? natsServer.skip : undefined
const natsEnv: Record<string, string> = "path" in natsServer ? { CXLOG_NATS_SERVER: natsServer.path } : {}

describe("bench --type mirror", () => {
  it.live("a missing nats-server fails it in one line naming the package", () =>
    Effect.gen(function*() {
      const { code, stdout, stderr } = yield* runCli(["bench", "--type", "mirror"], {
        CXLOG_NATS_SERVER: "/nonexistent/nats-server"
      })
      expect(code).toBe(1)
      expect(stdout).toBe("")
      const lines = stderr.trim().split("\n")
      expect(lines).toHaveLength(1)
      expect(lines[0]).toMatch(
        /nats: \/nonexistent\/nats-server not found; install it with: apt-get install nats-server/
      )
    }))

  it.live.skipIf(skip !== undefined)(
    `every step measures and the stream read back passes its audit${skip === undefined ? "" : ` (skipped: ${skip})`}`,
    () =>
      Effect.gen(function*() {
        const { code, stdout, stderr } = yield* runCli([
          "bench",
          "--type",
          "mirror",
          "--mirror-messages",
          "2000",
          "--mirror-rate-mbps",
          "1",
          "--json"
        ], natsEnv)
        expect(code, stderr).toBe(0)
        const result = JSON.parse(stdout.trim().split("\n").at(-1)!) as Record<string, unknown>
        // Five region steps of 2 000 and the lag step's 4 s at 1 MB/s (3 906 of 1 KiB), each offset once, in order.
        expect(result).toMatchObject({
          bench: "mirror",
          auditPassed: true,
          audit: "13906 offsets once, in order, payloads equal"
        })
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
      }),
    180_000
  )
})
