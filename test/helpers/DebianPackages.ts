/**
 * Debian packages the tests need (chromium for the dashboard, redis-server and nats-server for
 * the peers and the mirror). The suite's global setup (globalSetup.ts) installs the missing ones
 * once, before any test file runs, with apt-get where it can (as root); a failure is noted, not
 * fatal. A test file then only looks for the binary, on PATH or where Debian puts it, and where
 * it is not there gets the reason, for a visible skip: test files running side by side never run
 * apt-get themselves (they used to, and collided on the dpkg lock).
 */
import { execFileSync } from "node:child_process"
import { existsSync } from "node:fs"

/** A package and the binary it gives. */
export interface DebianPackage {
  readonly pkg: string
  /** A command on PATH, or an absolute path the package installs. */
  readonly binary: string
}

/** The packages the global setup installs. */
export const testPackages: ReadonlyArray<DebianPackage> = [
  { pkg: "chromium", binary: "chromium" },
  { pkg: "redis-server", binary: "redis-server" },
  { pkg: "nats-server", binary: "nats-server" },
  // The arm64 prebuilt addon runs under emulation, with an arm64 Node and its C and C++ libraries.
  { pkg: "qemu-user-static", binary: "qemu-aarch64-static" },
  { pkg: "libc6-arm64-cross", binary: "/usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1" },
  { pkg: "libstdc++6-arm64-cross", binary: "/usr/aarch64-linux-gnu/lib/libstdc++.so.6" }
]

/** Where the global setup leaves, for the test files' processes, why a package could not be installed (JSON: package → reason). */
const NOTES_ENV = "CXLOG_TEST_DEBIAN_NOTES"

const which = (name: string): string | undefined => {
  if (name.startsWith("/")) return existsSync(name) ? name : undefined
  for (const dir of ["/usr/bin", "/usr/sbin"]) if (existsSync(`${dir}/${name}`)) return `${dir}/${name}`
  try {
    return execFileSync("which", [name], { encoding: "utf8" }).trim() || undefined
  } catch {
    return undefined
  }
}

const firstLine = (error: unknown) => (error instanceof Error ? error.message.split("\n")[0] : String(error))

/**
 * For the global setup: installs each of `packages` whose binary is missing, with one `apt-get
 * update` first (waiting up to 5 minutes for a dpkg lock another apt holds). Never throws: gives,
 * and leaves for the test files (an environment variable their processes inherit), why each
 * package it could not have was not installed.
 */
export const installDebianPackages = (
  packages: ReadonlyArray<DebianPackage> = testPackages
): Record<string, string> => {
  const notes: Record<string, string> = {}
  const missing = packages.filter((p) => which(p.binary) === undefined)
  if (missing.length > 0 && (process.getuid?.() !== 0 || which("apt-get") === undefined)) {
    for (const { binary, pkg } of missing) {
      notes[pkg] = `${binary} is not installed and apt-get cannot install ${pkg} here (not root, or no apt-get)`
    }
  } else if (missing.length > 0) {
    const quiet = {
      stdio: "ignore" as const,
      timeout: 600_000,
      env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" }
    }
    const lock = ["-o", "DPkg::Lock::Timeout=300"]
    let updateFailed = ""
    try {
      execFileSync("apt-get", [...lock, "update", "-qq"], quiet)
    } catch (error) {
      updateFailed = ` (apt-get update had failed: ${firstLine(error)})`
    }
    // One package at a time: one that cannot be had does not keep the others out.
    for (const { binary, pkg } of missing) {
      try {
        execFileSync("apt-get", [...lock, "install", "-y", "-qq", pkg], quiet)
      } catch (error) {
        notes[pkg] = `apt-get install ${pkg} failed: ${firstLine(error)}${updateFailed}`
        continue
      }
      if (which(binary) === undefined) notes[pkg] = `apt-get installed ${pkg} but ${binary} is not on PATH`
    }
  }
  process.env[NOTES_ENV] = JSON.stringify(notes)
  return notes
}

/** Why the global setup could not install `pkg`, if it said. */
const noted = (pkg: string): string | undefined => {
  try {
    return (JSON.parse(process.env[NOTES_ENV] ?? "{}") as Record<string, string>)[pkg]
  } catch {
    return undefined
  }
}

/** The binary, or why it is not here (for a skip). It installs nothing: the global setup did that. */
export const ensureDebianBinary = (
  pkg: string,
  binary: string
): { readonly path: string } | { readonly skip: string } => {
  const found = which(binary)
  if (found !== undefined) return { path: found }
  return {
    skip: noted(pkg) ??
      `${binary} is not installed (the suite's global setup, test/helpers/globalSetup.ts, installs ${pkg} with apt-get where it can; it did not, or ${pkg} is not one of its packages)`
  }
}

export const ensureChromium = () => ensureDebianBinary("chromium", "chromium")
