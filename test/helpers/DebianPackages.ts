/**
 * Debian packages a test needs (chromium for the dashboard, redis-server and nats-server for
 * the peers): the binary found on PATH or where Debian puts it, else the package installed with
 * apt-get (as root, once per machine). Where it cannot be had, the reason says why, for a
 * visible skip.
 */
import { execFileSync } from "node:child_process"
import { existsSync } from "node:fs"

const which = (name: string): string | undefined => {
  for (const dir of ["/usr/bin", "/usr/sbin"]) if (existsSync(`${dir}/${name}`)) return `${dir}/${name}`
  try {
    return execFileSync("which", [name], { encoding: "utf8" }).trim() || undefined
  } catch {
    return undefined
  }
}

export const ensureDebianBinary = (pkg: string, binary: string): { readonly path: string } | { readonly skip: string } => {
  const found = which(binary)
  if (found !== undefined) return { path: found }
  if (process.getuid?.() !== 0 || which("apt-get") === undefined) return { skip: `${binary} is not installed and apt-get cannot install ${pkg} here (not root, or no apt-get)` }
  try {
    const quiet = { stdio: "ignore" as const, timeout: 600_000, env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" } }
    execFileSync("apt-get", ["update", "-qq"], quiet)
    execFileSync("apt-get", ["install", "-y", "-qq", pkg], quiet)
  } catch (error) {
    return { skip: `apt-get install ${pkg} failed: ${error instanceof Error ? error.message.split("\n")[0] : String(error)}` }
  }
  const installed = which(binary)
  return installed === undefined ? { skip: `apt-get installed ${pkg} but ${binary} is not on PATH` } : { path: installed }
}

export const ensureChromium = () => ensureDebianBinary("chromium", "chromium")
