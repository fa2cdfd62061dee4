import { randomBytes } from "node:crypto"
import { mkdtempSync, readdirSync, rmSync, unlinkSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { recordRunOwner, sweepDeadRuns } from "./DeadRuns.js"
import { installDebianPackages } from "./DebianPackages.js"
import { buildFixtures, removeFixtureBuild } from "./FixtureBuild.js"

/**
 * Gives this test run an id that every test region's name carries, and fails the run if
 * any region of this run is left in /dev/shm (other runs' regions are not touched, but for those of
 * runs killed before their teardown, which it removes: DeadRuns.ts). Installs the
 * Debian packages the tests need once, before any test file (DebianPackages.ts): what could not
 * be installed is said here, and the tests that need it skip saying why. The run's credential and
 * mirror status files live in a runtime directory of its own (XDG_RUNTIME_DIR, removed afterwards): a
 * client given no credentials looks for the local secret file of its region there, so a head
 * the developer runs on this host (region `cxlog`, say) cannot hand the tests its credentials.
 */
export default async function setup() {
  // A run killed before its teardown left its regions and its fixtures: whoever runs next removes them.
  for (const dead of sweepDeadRuns()) {
    removeFixtureBuild(dead)
    console.warn(`test setup: removed what killed test run ${dead} left`)
  }
  const run = randomBytes(3).toString("hex")
  process.env["CXLOG_TEST_RUN"] = run
  const runtime = mkdtempSync(join(tmpdir(), `cxlog-test-${run}-runtime-`))
  recordRunOwner(runtime)
  process.env["XDG_RUNTIME_DIR"] = runtime
  for (const [pkg, reason] of Object.entries(installDebianPackages())) {
    console.warn(`test setup: ${pkg} not installed: ${reason}`)
  }
  await buildFixtures(run)
  return () => {
    rmSync(runtime, { recursive: true, force: true })
    removeFixtureBuild(run)
    const leftover = readdirSync("/dev/shm").filter((name) => name.startsWith(`cxlog-test-${run}-`))
    for (const name of leftover) unlinkSync(`/dev/shm/${name}`)
    if (leftover.length > 0) throw new Error(`the suite left regions in /dev/shm: ${leftover.join(", ")}`)
  }
}
