/**
 * docs/mirror.md's first step writes three nats-server config files with a shell loop; run as
 * documented (in a directory of the test's own), it writes the configs the tests and the bench
 * start their clusters with (NatsCluster's natsConfig), port for port.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { execFileSync } from "node:child_process"
import { readFileSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { natsConfig } from "../../src/programs/bench/peers/NatsCluster.js"
import { tempDir } from "../helpers/Processes.js"

const doc = readFileSync(join(dirname(fileURLToPath(import.meta.url)), "..", "..", "docs", "mirror.md"), "utf8")

describe("docs/mirror.md", () => {
  it.scoped("its three config files are the cluster NatsCluster starts", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("cxlog-mirror-docs-")
      const block = /```sh(?: fragment)?\n([\s\S]*?)```/.exec(doc)?.[1]
      expect(block).toContain("nats-server -c /tmp/js/n$i.conf > /tmp/js/n$i.log 2>&1 & done")
      // As documented, but in the test's directory, and without starting the servers (the ports are fixed).
      const script = block!.replaceAll("/tmp/js", dir).replace(
        `nats-server -c ${dir}/n$i.conf > ${dir}/n$i.log 2>&1 & done`,
        "done"
      )
      // From another directory: the block names its paths, as a newcomer's next steps run from the project.
      execFileSync("bash", ["-e", "-c", script], { cwd: process.cwd() })
      for (let i = 1; i <= 3; i++) {
        const written = readFileSync(join(dir, `n${i}.conf`), "utf8").split("\n").map((l) => l.trim()).filter((l) =>
          l !== ""
        )
        const expected = natsConfig({
          name: `n${i}`,
          port: 4221 + i,
          storeDir: join(dir, `n${i}`),
          clusterPort: 6221 + i
        }, [6222, 6223, 6224])
        expect(written).toEqual(expected.split("\n").map((l) => l.trim()).filter((l) => l !== ""))
      }
    }))
})
