/**
 * `cxlog bench --type mirror` without a nats-server: one line naming the package before any
 * cluster starts. With one, every step's figure and the audit are checked on the suite's one run
 * of the bench, docs/mirror.md's block (test/docs/DocsRun.test.ts, test/helpers/MirrorFigures.ts).
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { runCli } from "../helpers/CliRoles.js"

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
})
