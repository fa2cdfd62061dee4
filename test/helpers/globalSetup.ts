import { readdirSync, unlinkSync } from "node:fs"

/** Fails loudly if the suite leaves a test region in /dev/shm. */
export default function setup() {
  const before = new Set(listRegions())
  return () => {
    const leftover = listRegions().filter((name) => !before.has(name))
    for (const name of leftover) unlinkSync(`/dev/shm/${name}`)
    if (leftover.length > 0) throw new Error(`the suite left regions in /dev/shm: ${leftover.join(", ")}`)
  }
}

const listRegions = () => readdirSync("/dev/shm").filter((name) => name.startsWith("cxlog-test-"))
