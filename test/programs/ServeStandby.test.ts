/**
 * `cxlog serve --standby` when heads die: after a takeover the head's metrics endpoint is on
 * `--metrics-port`, served by the standby that took over; the standby dead first, serve goes on
 * and, once the head dies too, names the head as the role that ended it.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { freePorts, running, serveRegion, standbyServe, until } from "../helpers/ServeProcess.js"

/** The text `url` answers with, or the failure to fetch it (nothing listens there, say). */
const scrape = (url: string) =>
  Effect.tryPromise(() =>
    fetch(url).then((response) => (response.ok ? response.text() : Promise.reject(new Error(`${response.status}`))))
  )

describe("cxlog serve --standby", () => {
  it.scopedLive(
    "--metrics-port: the head's endpoint is there after the standby took over a SIGKILLed head",
    () =>
      Effect.gen(function*() {
        const region = yield* serveRegion("serve-standby-metrics")
        // The head's metrics port, then broker 0's.
        const metricsPort = yield* freePorts(2)
        const url = `http://127.0.0.1:${metricsPort}/metrics`
        const { awaitEvent, events, serving } = yield* standbyServe(region, ["--metrics-port", `${metricsPort}`])
        const { metrics, pids } = yield* awaitEvent("ready", 120_000)
        expect(metrics[0]).toEqual({ role: "head", url })
        expect(yield* scrape(url)).toContain(`role="head"`)
        process.kill(pids.head, "SIGKILL")
        yield* awaitEvent("takeover", 60_000)
        const standbySays = (text: string) =>
          events().some((e) => e.event === "log" && e.role === "standby" && String(e.line).includes(text))
        yield* until(() => standbySays(`metrics on ${url}`), 30_000, () =>
          `the standby serving the head's metrics on ${url}:\n${serving.output()}`)
        const after = yield* scrape(url)
        expect(after).toMatch(/^cxlog_sequencer_rounds\{.*role="head".*\} \d+$/m)
        expect(serving.child.exitCode, serving.output()).toBe(null)
      }),
    240_000
  )

  it.scopedLive(
    "the standby killed first, serve goes on; the head killed then ends it, and serve names the head",
    () =>
      Effect.gen(function*() {
        const region = yield* serveRegion("serve-standby-first")
        const { awaitEvent, events, serving } = yield* standbyServe(region)
        const { pids } = yield* awaitEvent("ready", 120_000)
        process.kill(pids.standby, "SIGKILL")
        expect(yield* awaitEvent("exited", 30_000)).toMatchObject({ role: "standby", signal: "SIGKILL" })
        expect(serving.child.exitCode, serving.output()).toBe(null)
        process.kill(pids.head, "SIGKILL")
        const exit = yield* serving.exited.pipe(Effect.timeoutFail({
          duration: "30 seconds",
          onTimeout: () => new Error(`serve still runs 30 s after its last head died:\n${serving.output()}`)
        }))
        expect(exit, serving.output()).toEqual({ code: 1, signal: null })
        expect(serving.output()).toContain(
          `cxlog serve: head (pid ${pids.head}) exited with SIGKILL; serve stopped the rest`
        )
        expect(events().filter((e) => e.event === "exited").map((e) => `${e.role}: ${e.signal ?? e.code}`)).toEqual([
          "standby: SIGKILL",
          "head: SIGKILL",
          "broker 0: 0"
        ])
        expect([pids.head, pids.standby, ...pids.brokers].filter(running)).toEqual([])
      }),
    240_000
  )
})
