/**
 * The order test files start in. Vitest starts the files it has timed before longest first, and
 * on a fresh clone (CI: no timings) the largest files first, which starts the docs' run (a small
 * file that runs every program of the docs for minutes) near the end, where it alone makes the
 * run's tail. These files take the longest on two cores (`npm test`, durations in its report),
 * so they start first, in this order, whatever the cache says; the rest keep Vitest's order.
 * The mirror's files each run a JetStream cluster of three: they are spread out, so two of them
 * seldom run side by side.
 */
import { relative } from "node:path"
import { BaseSequencer, type TestSpecification } from "vitest/node"

const LONGEST: ReadonlyArray<string> = [
  "test/docs/DocsRun.test.ts",
  "test/mirror/MirrorCopy.test.ts",
  "test/programs/Cli.test.ts",
  "test/mirror/MirrorNodesLost.test.ts",
  "test/programs/BenchPeers.test.ts",
  "test/mirror/MirrorKills.test.ts",
  "test/programs/Durability.test.ts",
  "test/programs/Subscribe.test.ts",
  "test/control/Failover.test.ts",
  "test/control/HeadLoss.test.ts",
  "test/package/PackInstall.test.ts",
  "test/programs/Cluster.test.ts",
  "test/programs/Serve.test.ts",
  "test/log/Segments.test.ts",
  "test/groups/GroupProcesses.test.ts"
]

export default class LongestFirst extends BaseSequencer {
  override async sort(files: Array<TestSpecification>): Promise<Array<TestSpecification>> {
    const sorted = await super.sort(files)
    const rank = (file: TestSpecification) => {
      const at = LONGEST.indexOf(relative(file.project.config.root, file.moduleId))
      return at === -1 ? LONGEST.length : at
    }
    return sorted.map((file, i) => ({ file, i, rank: rank(file) }))
      .sort((a, b) => a.rank - b.rank || a.i - b.i)
      .map(({ file }) => file)
  }
}
