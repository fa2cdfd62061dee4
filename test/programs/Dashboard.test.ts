/**
 * `cxlog dashboard` in a real browser: headless Chromium opens the page while a broker and a
 * publisher carry traffic, and the rendered charts must show live data — the throughput
 * chart's points grow and it shows a non-zero rate, the ACK latency chart is drawn.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Schedule } from "effect"
import { existsSync, rmSync, writeFileSync } from "node:fs"
import { createServer, type Server } from "node:http"
import type { AddressInfo } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import parsePrometheusTextFormat from "parse-prometheus-text-format"
import puppeteer from "puppeteer-core"
import { authDirectory } from "../../src/layers/net/AuthRegionFiles.js"
import * as BrokerLayers from "../../src/layers/net/Broker.js"
import * as BrokerLogLayers from "../../src/layers/net/BrokerLogMemory.js"
import * as PublisherLayers from "../../src/layers/net/Publisher.js"
import { ownStartTag } from "../../src/layers/region/ProcessInfo.js"
import {
  addOrdered,
  announceTargets,
  dashboard,
  discoverTargets,
  intervalQuantile
} from "../../src/programs/report/Dashboard.js"
import { serveMetrics } from "../../src/programs/roles/MetricsServer.js"
import { publishTestMessages } from "../fixtures/net-audit.js"
import { ensureChromium } from "../helpers/DebianPackages.js"

const chromium = ensureChromium()
if ("skip" in chromium) console.warn(`Dashboard browser test skipped: ${chromium.skip}`)

/** What the page shows for one chart: its point count (data-points) and status line. */
const chartState = (page: puppeteer.Page, id: string) =>
  Effect.promise(() =>
    page.evaluate(`(() => {
      const box = document.getElementById("chart-${id}")
      return {
        points: Number(box?.dataset.points ?? 0),
        status: box?.querySelector(".status")?.textContent ?? "",
        canvases: box?.querySelectorAll("canvas").length ?? 0
      }
    })()`) as Promise<{ points: number; status: string; canvases: number }>
  )

describe("dashboard", () => {
  it.scopedLive.skipIf("skip" in chromium)(
    "headless Chromium: the charts fill with live data while traffic flows",
    () =>
      Effect.gen(function*() {
        const executablePath = (chromium as { path: string }).path
        const metrics = yield* serveMetrics({ host: "127.0.0.1", port: 0, labels: { role: "publisher" } })
        const log = yield* BrokerLogLayers.makeMemoryLog({ topics: [{ name: "t" }], holdTimeoutMs: 2_000 })
        const broker = yield* BrokerLayers.make({ insecure: true }).pipe(Effect.provide(log.forBroker(0)))
        const publisher = yield* PublisherLayers.make({
          brokers: [{ host: "127.0.0.1", port: broker.port }],
          topic: "t",
          batchBytes: 4096
        })
        // Steady traffic until the test's scope closes.
        let from = 0
        yield* Effect.forkScoped(Effect.forever(Effect.gen(function*() {
          yield* publishTestMessages(publisher, 3, 200, 400, from)
          from += 200
          yield* publisher.flush(10_000)
          yield* Effect.sleep("20 millis")
        })))

        const { url } = yield* dashboard({
          targets: [`127.0.0.1:${metrics.port}`],
          host: "127.0.0.1",
          port: 0,
          everyMs: 300,
          keep: 200
        })
        const browser = yield* Effect.acquireRelease(
          Effect.promise(() =>
            puppeteer.launch({ executablePath, headless: true, args: ["--no-sandbox", "--disable-gpu"] })
          ),
          (b) => Effect.promise(() => b.close())
        )
        const page = yield* Effect.promise(() => browser.newPage())
        yield* Effect.promise(() => page.goto(url))

        const waitFor = (expression: string) =>
          Effect.promise(() => page.waitForFunction(expression, { timeout: 15_000 }))
        yield* waitFor(`Number(document.getElementById("chart-throughput")?.dataset.points ?? 0) >= 3`)
        const first = yield* chartState(page, "throughput")
        // The page keeps polling: more points later, drawn by uPlot on a canvas, with a non-zero acked rate.
        yield* waitFor(
          `Number(document.getElementById("chart-throughput")?.dataset.points ?? 0) >= ${first.points + 3}`
        )
        const later = yield* chartState(page, "throughput")
        expect(later.points).toBeGreaterThanOrEqual(first.points + 3)
        expect(later.canvases).toBeGreaterThan(0)
        const acked = /publisher acked ([\d.]+)/.exec(later.status)
        expect(acked, later.status).not.toBeNull()
        expect(Number(acked![1])).toBeGreaterThan(0)

        // Ordered per broker: this in-process broker orders its batches by its own rounds (no head's sequencer here).
        yield* waitFor(`/broker 0 [1-9]/.test(document.querySelector("#chart-per-broker .status")?.textContent ?? "")`)
        yield* waitFor(`/p99 [\\d.]+/.test(document.querySelector("#chart-ack-latency .status")?.textContent ?? "")`)
        const latency = yield* chartState(page, "ack-latency")
        expect(Number(/p50 ([\d.]+)/.exec(latency.status)?.[1])).toBeGreaterThan(0)
        const targets = yield* Effect.promise(() =>
          page.evaluate(`document.getElementById("extra")?.textContent ?? ""`) as Promise<string>
        )
        expect(targets).toContain("up")
      }),
    30_000
  )

  it.scopedLive("a role on a port browsers block (6665, 10080, …) is scraped; one that is down, or no role, says why", () =>
    Effect.gen(function*() {
      // Ports fetch refuses as `bad port`; a role's --metrics-port may be any of them. The first free one here.
      const blocked = [6665, 6666, 6667, 6668, 6669, 10080, 6566, 6000]
      const role = yield* Effect.firstSuccessOf(
        blocked.map((port) => serveMetrics({ host: "127.0.0.1", port, labels: { role: "head" } }))
      )
      // A port nothing listens on: taken from the system, then let go.
      const closed = yield* Effect.scoped(serveMetrics({ host: "127.0.0.1", port: 0, labels: {} }))
      // Another program's web server, which answers 200 to any GET: no role of cxlog's.
      const page = yield* Effect.acquireRelease(
        Effect.async<Server>((resume) => {
          const server = createServer((_, response) => response.end("<html><body>hello</body></html>\n"))
          server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
        }),
        (server) => Effect.async<void>((resume) => void server.close(() => resume(Effect.void)))
      )
      const pagePort = (page.address() as AddressInfo).port
      const { url } = yield* dashboard({
        targets: [`127.0.0.1:${role.port}`, `127.0.0.1:${closed.port}`, `127.0.0.1:${pagePort}`],
        host: "127.0.0.1",
        port: 0,
        everyMs: 100,
        keep: 10
      })
      const rows = yield* Effect.promise(() => fetch(`${url}data`).then((r) => r.json() as Promise<{ html: string }>))
        .pipe(
          Effect.map((d) => d.html),
          // Its table once a round is over (every target's row at once).
          Effect.filterOrFail((html) => html.startsWith("<table>")),
          Effect.retry(Schedule.spaced("50 millis")),
          Effect.timeout("20 seconds")
        )
      expect(rows).toContain(`<tr><td>127.0.0.1:${role.port}</td><td>head</td><td>up</td></tr>`)
      expect(rows).toContain(
        `<tr><td>127.0.0.1:${closed.port}</td><td>127.0.0.1:${closed.port}</td><td>down: connect ECONNREFUSED 127.0.0.1:${closed.port}</td></tr>`
      )
      expect(rows).toContain(
        `<tr><td>127.0.0.1:${pagePort}</td><td>127.0.0.1:${pagePort}</td><td>down: not a cxlog role's metrics (no process_cpu_seconds_total labelled with a role)</td></tr>`
      )
    }))

  it.scoped("a place it cannot serve on names the flag to change: an address not this machine's --host, a port taken --port", () =>
    Effect.gen(function*() {
      const options = { targets: [], everyMs: 1_000, keep: 10 }
      // TEST-NET-1 (RFC 5737): an address no machine here has.
      const elsewhere = yield* Effect.flip(dashboard({ ...options, host: "192.0.2.1", port: 0 }))
      expect(elsewhere.message).toMatch(/^cannot serve the dashboard on 192\.0\.2\.1:0: .*EADDRNOTAVAIL.* \(--host\)$/)
      const unknown = yield* Effect.flip(dashboard({ ...options, host: "no-such-host.invalid", port: 0 }))
      expect(unknown.message).toMatch(/(ENOTFOUND|EAI_AGAIN).* \(--host\)$/)
      const first = yield* dashboard({ ...options, host: "127.0.0.1", port: 0 })
      const taken = yield* Effect.flip(dashboard({ ...options, host: "127.0.0.1", port: first.port }))
      expect(taken.message).toMatch(/EADDRINUSE.* \(--port\)$/)
    }))

  it.scoped("a run's announced endpoints are discovered while it lives, and gone with it", () =>
    Effect.gen(function*() {
      const mine = [`127.0.0.1:${40000 + (process.pid % 20000)}`, "127.0.0.1:1"]
      yield* Effect.scoped(Effect.gen(function*() {
        yield* announceTargets(mine)
        expect(discoverTargets()).toEqual(expect.arrayContaining(mine))
      }))
      expect(discoverTargets()).not.toContain(mine[0])
    }))

  it.scoped("only this user's announcements are believed, and a dead run's file is removed, not kept for good", () =>
    Effect.gen(function*() {
      const port = 40000 + (process.pid % 20000)
      const files: Array<string> = []
      yield* Effect.addFinalizer(() => Effect.sync(() => files.forEach((file) => rmSync(file, { force: true }))))
      const write = (dir: string, name: string, body: object) => {
        const file = join(dir, name)
        files.push(file)
        writeFileSync(file, JSON.stringify(body))
        return file
      }
      // In the temporary directory, which every user writes into, as a live process's: not looked at.
      write(tmpdir(), `cxlog-metrics-${process.pid}.json`, { pid: process.pid, targets: [`127.0.0.1:${port}`] })
      // A run SIGKILLed (it removed nothing), whose pid now names another process: this one, started otherwise.
      const stale = write(authDirectory(), `metrics-${process.pid}-gone.json`, {
        pid: process.pid,
        startTag: (ownStartTag() + 1) >>> 0 || 2,
        targets: [`127.0.0.1:${port + 1}`]
      })
      const found = discoverTargets()
      expect(found).not.toContain(`127.0.0.1:${port}`)
      expect(found).not.toContain(`127.0.0.1:${port + 1}`)
      expect(existsSync(stale)).toBe(false)
    }))

  it.scopedLive("a file named as announcements are that is no announcement is skipped: the page is served all the same", () =>
    Effect.gen(function*() {
      // Named as announcements are, of a live process (this one), but not one: no targets, targets that are no text, no JSON.
      const files = [`{"pid":${process.pid}}`, `{"pid":${process.pid},"targets":[1,null]}`, `{"pid":`].map(
        (text, i) => {
          const file = join(authDirectory(), `metrics-${process.pid}-not-one-${i}.json`)
          writeFileSync(file, text)
          return file
        }
      )
      yield* Effect.addFinalizer(() => Effect.sync(() => files.forEach((file) => rmSync(file, { force: true }))))
      // Beside them, one that is: a port nothing listens on, taken from the system and let go.
      const closed = yield* Effect.scoped(serveMetrics({ host: "127.0.0.1", port: 0, labels: {} }))
      const announced = `127.0.0.1:${closed.port}`
      yield* announceTargets([announced])
      const discovered = discoverTargets()
      expect(discovered).toContain(announced)
      expect(discovered.every((target) => typeof target === "string")).toBe(true)
      const { url } = yield* dashboard({ targets: "discover", host: "127.0.0.1", port: 0, everyMs: 100, keep: 10 })
      const html = yield* Effect.promise(() => fetch(`${url}data`).then((r) => r.json() as Promise<{ html: string }>))
        .pipe(
          Effect.map((d) => d.html),
          // Its table once a round is over.
          Effect.filterOrFail((table) => table.startsWith("<table>")),
          Effect.retry(Schedule.spaced("50 millis")),
          Effect.timeout("20 seconds")
        )
      expect(html).toContain(`<tr><td>${announced}</td>`)
      expect(html).not.toContain("undefined")
    }))

  it.scopedLive("odd requests: a method other than GET or HEAD is 405, a path other than / and /data 404, HEAD as GET", () =>
    Effect.gen(function*() {
      const { url } = yield* dashboard({ targets: [], host: "127.0.0.1", port: 0, everyMs: 1_000, keep: 10 })
      const status = (path: string, method: string) =>
        Effect.promise(() => fetch(`${url}${path}`, { method }).then((r) => [r.status, r.headers.get("allow")]))
      expect(yield* status("data", "POST")).toEqual([405, "GET, HEAD"])
      expect(yield* status("", "DELETE")).toEqual([405, "GET, HEAD"])
      expect(yield* status("nope", "GET")).toEqual([404, null])
      expect(yield* status("data", "HEAD")).toEqual([200, null])
      expect(yield* status(`data?${"q".repeat(4_000)}`, "GET")).toEqual([200, null])
    }))

  it("ordered messages per broker add the head's sequencer's and the brokers' own rounds', from every target", () => {
    const scrape = (at: number, text: string) => ({ at, families: parsePrometheusTextFormat(text) })
    const head = (n0: number, n1: number) =>
      `# TYPE cxlog_sequencer_messages_ordered counter\ncxlog_sequencer_messages_ordered 0\n` +
      `cxlog_sequencer_messages_ordered{broker="0"} ${n0}\ncxlog_sequencer_messages_ordered{broker="1"} ${n1}\n`
    const broker = (id: string, n: number) =>
      `# TYPE cxlog_log_appender_messages_ordered counter\ncxlog_log_appender_messages_ordered{broker="${id}"} ${n}\n`
    const ordered = new Map<string, number>()
    addOrdered(ordered, scrape(0, head(100, 0)), scrape(2_000, head(300, 0)))
    addOrdered(ordered, scrape(0, broker("0", 0)), scrape(2_000, broker("0", 50)))
    addOrdered(ordered, scrape(0, broker("1", 10)), scrape(2_000, broker("1", 410)))
    // A target seen once has no rate yet.
    addOrdered(ordered, undefined, scrape(2_000, broker("2", 7)))
    expect(Object.fromEntries(ordered)).toEqual({ "0": 125, "1": 200 })
  })

  it("interval quantiles interpolate within the bucket, from the difference of two scrapes", () => {
    const before: Array<[number, number]> = [[10, 5], [100, 5], [Infinity, 5]]
    const after: Array<[number, number]> = [[10, 5], [100, 15], [Infinity, 15]]
    // 10 new observations, all in (10, 100]: the median is halfway up that bucket.
    expect(intervalQuantile(before, after, 0.5)).toBe(55)
    expect(intervalQuantile(after, after, 0.5)).toBeNull()
  })
})
