/**
 * The metrics endpoint: what `GET /metrics` serves parses as Prometheus text (with an
 * independent parser) and its counters move while a broker and a publisher carry traffic; on
 * a port another socket holds, a head that took over serves once the port is free.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Scope, TestClock, TestServices } from "effect"
import parsePrometheusTextFormat from "parse-prometheus-text-format"
import * as BrokerLayers from "../../src/layers/net/Broker.js"
import * as BrokerLogLayers from "../../src/layers/net/BrokerLogMemory.js"
import * as PublisherLayers from "../../src/layers/net/Publisher.js"
import { serveMetrics, serveMetricsOnceFree } from "../../src/programs/roles/MetricsServer.js"
import { publishTestMessages } from "../fixtures/net-audit.js"
import { holdPort, until } from "../helpers/ServeProcess.js"

type Family = ReturnType<typeof parsePrometheusTextFormat>[number]

const scrape = (port: number) =>
  Effect.promise(async () => {
    const response = await fetch(`http://127.0.0.1:${port}/metrics`)
    return {
      contentType: response.headers.get("content-type") ?? "",
      families: parsePrometheusTextFormat(await response.text())
    }
  })

const family = (families: ReadonlyArray<Family>, name: string): Family => {
  const found = families.find((f) => f.name === name)
  if (found === undefined) throw new Error(`no metric family ${name} in the scrape`)
  return found
}

/** The value of a counter or gauge series (summed over label sets). */
const value = (families: ReadonlyArray<Family>, name: string): number =>
  family(families, name).metrics.reduce((sum, m) => sum + Number("value" in m ? m.value : 0), 0)

/**
 * A histogram's count summed over its label sets, as `value` sums a counter's (this parser keeps
 * a labelled histogram's buckets but not its _count: +Inf is the count); 0 before it has a series.
 */
const histogramCount = (families: ReadonlyArray<Family>, name: string): number =>
  (families.find((f) => f.name === name)?.metrics ?? []).reduce(
    (sum, m) => sum + Number((m as { buckets?: Record<string, string> }).buckets?.["+Inf"] ?? 0),
    0
  )

describe("metrics endpoint", () => {
  it.scopedLive("parses as Prometheus text; broker and publisher counters and the ACK latency histogram move with traffic", () =>
    Effect.gen(function*() {
      const { port } = yield* serveMetrics({ host: "127.0.0.1", port: 0, labels: { role: "test" } })
      const log = yield* BrokerLogLayers.makeMemoryLog({ topics: [{ name: "t" }], holdTimeoutMs: 2_000 })
      const broker = yield* BrokerLayers.make({ insecure: true }).pipe(Effect.provide(log.forBroker(0)))
      const publisher = yield* PublisherLayers.make({
        brokers: [{ host: "127.0.0.1", port: broker.port }],
        topic: "t",
        batchBytes: 4096
      })

      // Counters are process-wide and other tests in this worker may have moved them: compare deltas.
      const before = yield* scrape(port)
      expect(before.contentType).toMatch(/^text\/plain; version=0\.0\.4/)
      yield* publishTestMessages(publisher, 9, 500, 200)
      yield* publisher.flush(10_000)
      const after = yield* scrape(port)
      const f = after.families

      const stats = publisher.stats()
      const delta = (name: string) =>
        value(f, name) - (before.families.some((x) => x.name === name) ? value(before.families, name) : 0)
      expect(delta("cxlog_publisher_acked_messages")).toBe(500)
      expect(delta("cxlog_broker_batches")).toBe(stats.ackedBatches)
      expect(delta("cxlog_broker_bytes")).toBeGreaterThan(500 * 8)
      expect(value(f, "cxlog_broker_connections")).toBeGreaterThanOrEqual(1)

      const latency = family(f, "cxlog_publisher_ack_latency_us")
      expect(latency.type).toBe("HISTOGRAM")
      // A delta over every series, as for the counters: a file run before this one in the worker may
      // have left a series of the family, and the first series was taken for this publisher's (a CI
      // run read 3 there against this run's 17 batches).
      const latencyCounts = `${JSON.stringify(latency.metrics)}`
      expect(
        histogramCount(f, latency.name) - histogramCount(before.families, latency.name),
        latencyCounts
      ).toBeGreaterThanOrEqual(stats.ackedBatches)
      // Buckets are cumulative: never decreasing with `le`.
      for (const series of latency.metrics as ReadonlyArray<{ buckets: Record<string, string> }>) {
        const counts = Object.entries(series.buckets).sort(([a], [b]) => Number(a) - Number(b)).map(([, c]) =>
          Number(c)
        )
        expect(counts).toEqual([...counts].sort((a, b) => a - b))
      }

      // The role label is on every series, cxlog's and the process's own (CPU from prom-client's defaults).
      expect((family(f, "cxlog_broker_batches").metrics[0] as { labels?: Record<string, string> }).labels?.["role"])
        .toBe("test")
      expect(value(f, "process_cpu_seconds_total")).toBeGreaterThan(0)
      expect(family(f, "cxlog_broker_batches").help).toBe("batches received and appended")
    }))

  it.scopedLive("anything but GET /metrics is a 404 naming the endpoint", () =>
    Effect.gen(function*() {
      const { port } = yield* serveMetrics({ host: "127.0.0.1", port: 0, labels: {} })
      const response = yield* Effect.promise(() => fetch(`http://127.0.0.1:${port}/`))
      expect(response.status).toBe(404)
      expect(yield* Effect.promise(() => response.text())).toContain("GET /metrics")
    }))

  // On the test clock: the retries are spaced on it, so each 20 ms the test moves it is one more
  // try, and a try that failed leaves the server asleep on it until the next (a condition to wait for).
  it.scoped("a port another socket holds is said once, tried again every period while held, and served once it is free", () =>
    Effect.gen(function*() {
      const holding = yield* Scope.make()
      const holder = yield* holdPort(0).pipe(Scope.extend(holding))
      const said: Array<string> = []
      const serving = yield* serveMetricsOnceFree(
        { host: "127.0.0.1", port: holder.port, labels: { role: "head" } },
        20,
        (failed) => Effect.sync(() => said.push(failed.message))
      ).pipe(Effect.fork)
      const clock = yield* TestClock.testClock()
      const asleepOrEnded = () => serving.unsafePoll() !== null || Effect.runSync(clock.sleeps).length > 0
      // The first try fails and is said; the second follows at once, then one every 20 ms: each fails and waits for the next.
      for (let tries = 2;; tries++) {
        yield* TestServices.provideLive(until(asleepOrEnded, 10_000, () => `try ${tries} on a held port to end`))
        expect(serving.unsafePoll()).toBe(null)
        if (tries === 5) break
        yield* TestClock.adjust("20 millis")
      }
      yield* Scope.close(holding, Exit.void)
      yield* TestClock.adjust("20 millis")
      expect((yield* Fiber.join(serving)).port).toBe(holder.port)
      expect(said).toEqual([
        expect.stringContaining(`cannot serve metrics on 127.0.0.1:${holder.port}: listen EADDRINUSE`)
      ])
      const { families } = yield* scrape(holder.port)
      expect(family(families, "cxlog_sequencer_rounds").metrics.length).toBeGreaterThan(0)
    }))
})
