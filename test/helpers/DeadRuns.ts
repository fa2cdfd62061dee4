/**
 * What a test run leaves when it is killed: no teardown runs, so its regions stay in /dev/shm
 * and its runtime directory in the temporary one. Each run records its owner (the vitest process
 * that set it up) in its runtime directory; a later run removes what runs whose owner is gone left.
 */
import { readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { removeWakeFifos } from "../../src/layers/region/Doorbell.js"
import { isPidAlive } from "../../src/layers/region/ProcessInfo.js"

const OWNER_FILE = "owner.pid"
const RUNTIME_DIR = /^cxlog-test-([0-9a-f]+)-runtime-/

/** Records this process as the owner of the run whose runtime directory is `runtime`. */
export const recordRunOwner = (runtime: string): void => writeFileSync(join(runtime, OWNER_FILE), `${process.pid}`)

/**
 * Removes the regions (and their wake FIFOs) and the runtime directory of every run under
 * `temporary` whose recorded owner is no longer alive; returns the runs it removed. A run with no
 * owner recorded, or whose owner lives, is left alone.
 */
export const sweepDeadRuns = (temporary = tmpdir(), shm = "/dev/shm"): ReadonlyArray<string> => {
  const swept: Array<string> = []
  for (const entry of readdirSync(temporary)) {
    const run = RUNTIME_DIR.exec(entry)?.[1]
    if (run === undefined) continue
    const dir = join(temporary, entry)
    let owner: number
    try {
      owner = Number(readFileSync(join(dir, OWNER_FILE), "utf8"))
    } catch {
      continue
    }
    if (!Number.isSafeInteger(owner) || owner <= 0 || isPidAlive(owner)) continue
    for (const name of readdirSync(shm)) {
      if (!name.startsWith(`cxlog-test-${run}-`)) continue
      rmSync(join(shm, name), { force: true })
      removeWakeFifos(name)
    }
    rmSync(dir, { recursive: true, force: true })
    swept.push(run)
  }
  return swept
}
