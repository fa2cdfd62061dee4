/**
 * A broker maps its Blog for a topic when it takes the topic up, so appends of the first lap do
 * not each pay the kernel's page fault (observed through the shared-memory pages this process
 * has mapped, /proc/self/status RssShmem, over the native region).
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { readFileSync } from "node:fs"
import { appendSimple, implementations } from "../fixtures/log-harness.js"

/** Bytes of shared memory this process has mapped (Linux). */
const mappedShmem = (): number => Number(/^RssShmem:\s+(\d+) kB/m.exec(readFileSync("/proc/self/status", "utf8"))![1]) * 1024

describe("Blog pages", () => {
  it.scoped("a broker's first append to a topic maps that topic's whole Blog of the broker, and nothing of the others'", () =>
    Effect.gen(function*() {
      const cluster = yield* implementations[0]!.make()
      yield* cluster.topics.create({ name: "t", order: 5, ackLevel: 1, replicationFactor: 1 })
      const { blogBytes } = cluster.region!.area.config
      const a = yield* cluster.appender(0)
      const before = mappedShmem()
      yield* appendSimple(a, "t", 1, 0, 0)
      const grown = mappedShmem() - before
      expect(grown).toBeGreaterThanOrEqual(blogBytes)
      // Broker 1's Blog for the topic is still untouched: taken up only by broker 1's own first append.
      expect(grown).toBeLessThan(2 * blogBytes)
      // And the append itself is intact.
      expect((yield* cluster.acks.brokerCounts("t"))[0]).toMatchObject({ brokerId: 0, sent: 1 })
    }))
})
