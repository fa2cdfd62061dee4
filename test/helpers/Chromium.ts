/**
 * Debian's `chromium` for browser tests: found on PATH, else installed with apt-get (as root,
 * once per machine). Where it cannot be had, the reason says why, for a visible skip.
 */
import { execFileSync } from "node:child_process"

const which = (name: string): string | undefined => {
  try {
    return execFileSync("which", [name], { encoding: "utf8" }).trim() || undefined
  } catch {
    return undefined
  }
}

export const ensureChromium = (): { readonly path: string } | { readonly skip: string } => {
  const found = which("chromium")
  if (found !== undefined) return { path: found }
  if (process.getuid?.() !== 0 || which("apt-get") === undefined) return { skip: "chromium is not installed and apt-get cannot install it here (not root, or no apt-get)" }
  try {
    const quiet = { stdio: "ignore" as const, timeout: 600_000, env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" } }
    execFileSync("apt-get", ["update", "-qq"], quiet)
    execFileSync("apt-get", ["install", "-y", "-qq", "chromium"], quiet)
  } catch (error) {
    return { skip: `apt-get install chromium failed: ${error instanceof Error ? error.message.split("\n")[0] : String(error)}` }
  }
  const installed = which("chromium")
  return installed === undefined ? { skip: "apt-get installed chromium but it is not on PATH" } : { path: installed }
}
