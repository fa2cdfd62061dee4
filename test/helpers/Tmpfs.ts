/**
 * A small tmpfs of `size` (e.g. "2m") for full-disk tests, when this machine lets a test mount one
 * (root in a container that allows it); unmounted and removed with the scope.
 */
import { Effect } from "effect"
import { execFileSync } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"

export const smallTmpfs = (size: string) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const dir = mkdtempSync(join(tmpdir(), "cxlog-full-"))
      try {
        execFileSync("mount", ["-t", "tmpfs", "-o", `size=${size}`, "tmpfs", dir], { stdio: "ignore" })
        return { dir, mounted: true }
      } catch {
        return { dir, mounted: false }
      }
    }),
    ({ dir, mounted }) =>
      Effect.sync(() => {
        if (mounted) execFileSync("umount", [dir], { stdio: "ignore" })
        rmSync(dir, { recursive: true, force: true })
      })
  )
