/**
 * A small tmpfs of `size` (e.g. "2m") for the full-disk tests, unmounted and removed with the
 * scope. The project's machines run the suite as root (../.library/env), so a test that cannot
 * mount one fails and says why rather than passing without testing anything.
 */
import { Effect } from "effect"
import { execFileSync } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"

export const smallTmpfs = (size: string) =>
  Effect.acquireRelease(
    Effect.try({
      try: () => {
        const dir = mkdtempSync(join(tmpdir(), "cxlog-full-"))
        try {
          execFileSync("mount", ["-t", "tmpfs", "-o", `size=${size}`, "tmpfs", dir], { stdio: "pipe" })
        } catch (error) {
          rmSync(dir, { recursive: true, force: true })
          throw error
        }
        return dir
      },
      catch: (error) => new Error(`a full-disk test mounts a ${size} tmpfs, which needs root: ${String(error)}`)
    }),
    (dir) =>
      Effect.sync(() => {
        execFileSync("umount", [dir], { stdio: "ignore" })
        rmSync(dir, { recursive: true, force: true })
      })
  )
