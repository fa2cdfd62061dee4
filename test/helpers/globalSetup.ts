import { readdirSync, unlinkSync } from "node:fs"

/** Fails loudly if the suite leaves a test region in /dev/shm. */
export default function setup() {
  const before = new Set(listRegions())
  return () => {
    // Regions of another test run going on at the same time belong to its live workers.
    const leftover = listRegions().filter((name) => !before.has(name) && !ownerAlive(name))
    for (const name of leftover) unlinkSync(`/dev/shm/${name}`)
    if (leftover.length > 0) throw new Error(`the suite left regions in /dev/shm: ${leftover.join(", ")}`)
  }
}

const listRegions = () => readdirSync("/dev/shm").filter((name) => name.startsWith("cxlog-test-"))

/** `uniqueRegion` names end in `-<worker pid>-<random>`. */
const ownerAlive = (name: string) => {
  const pid = Number(name.split("-").at(-2))
  if (!Number.isInteger(pid) || pid <= 0) return false
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM"
  }
}
