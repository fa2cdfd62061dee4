#!/usr/bin/env node
// The registry mirror this project builds against does not serve every platform build of
// rollup's and msgpackr-extract's optional native packages, so `npm install` leaves them out
// of package-lock.json and `npm ci` then refuses the lock. This adds each missing optional
// platform package as an entry restricted to its os/cpu/libc, which npm skips elsewhere.
// Run after any `npm install` that rewrites the lock.
import { readFileSync, writeFileSync } from "node:fs"

const OS = ["android", "darwin", "freebsd", "linux", "openbsd", "openharmony", "win32", "sunos", "aix", "netbsd"]
const CPU = {
  arm: "arm",
  arm64: "arm64",
  x64: "x64",
  ia32: "ia32",
  loong64: "loong64",
  ppc64: "ppc64",
  riscv64: "riscv64",
  s390x: "s390x"
}
const lock = JSON.parse(readFileSync("package-lock.json", "utf8"))
let added = 0
for (const [path, entry] of Object.entries(lock.packages)) {
  for (const [name, version] of Object.entries(entry.optionalDependencies ?? {})) {
    const key = `node_modules/${name}`
    if (lock.packages[key] !== undefined || lock.packages[`${path}/${key}`] !== undefined) continue
    const tokens = name.split("/").pop().split("-")
    const osIndex = tokens.findIndex((t) => OS.includes(t))
    const cpu = CPU[tokens[osIndex + 1]]
    if (osIndex < 0 || cpu === undefined) continue
    const stub = { version, cpu: [cpu], os: [tokens[osIndex]], optional: true }
    if (tokens.includes("musl")) stub.libc = ["musl"]
    if (tokens.includes("gnu") || tokens.includes("gnueabihf")) stub.libc = ["glibc"]
    if (entry.dev) stub.dev = true
    lock.packages[key] = stub
    added++
  }
}
lock.packages = Object.fromEntries(
  Object.entries(lock.packages).sort(([a], [b]) => (a === "" ? -1 : b === "" ? 1 : a.localeCompare(b)))
)
writeFileSync("package-lock.json", `${JSON.stringify(lock, null, 2)}\n`)
console.log(`added ${added} platform stub entries`)
