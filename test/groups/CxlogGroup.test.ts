/**
 * The Promise facade of a group member (CxlogGroup), over the fake: `for await` with an ack per
 * job, the handler form that acks what it finished and naks what threw, jobs in hand kept from
 * expiring while the loop works through them, and `close` handing what the member held to the
 * next one.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, ManagedRuntime } from "effect"
import { CxlogGroup, type CxlogGroupOptions, type CxlogJob } from "../../src/layers/groups/CxlogGroup.js"
import { ConsumerGroups } from "../../src/services/groups/ConsumerGroups.js"
import { Publisher } from "../../src/services/net/Publisher.js"
import { memoryGroups } from "../fixtures/groups-harness.js"

/** One in-memory cluster for a test: its groups (for the facade) and a runtime to publish and look with. */
const cluster = async (topic: string) => {
  const runtime = ManagedRuntime.make(memoryGroups([topic]))
  const groups = await runtime.runPromise(ConsumerGroups)
  const publish = (count: number) =>
    runtime.runPromise(Effect.gen(function*() {
      const publisher = yield* Publisher
      for (let i = 0; i < count; i++) yield* publisher.publish(new TextEncoder().encode(`job ${i}`), { topic })
      yield* publisher.flush(10_000)
    }))
  return { runtime, groups, layer: Layer.succeed(ConsumerGroups, groups), publish }
}

describe("CxlogGroup", () => {
  it("for await: each job once, acked; the group creates itself when asked to", async () => {
    const { runtime, layer, publish, groups } = await cluster("jobs")
    await publish(5)
    const group = await CxlogGroup.openWith(layer, { group: "workers", create: { topic: "jobs" } })
    const done: Array<string> = []
    for await (const job of group) {
      done.push(job.text())
      expect(await job.ack()).toBe(true)
      if (done.length === 5) break
    }
    await group.close()
    expect(done).toEqual(["job 0", "job 1", "job 2", "job 3", "job 4"])
    expect(await runtime.runPromise(groups.describe("workers"))).toMatchObject({ acked: 5, pending: 0 })
    await runtime.dispose()
  })

  it("process: a job whose handler throws comes again (nak'd), the others are acked", async () => {
    const { runtime, layer, publish, groups } = await cluster("jobs")
    await publish(3)
    const group = await CxlogGroup.openWith(layer, { group: "workers", create: { topic: "jobs" } })
    const seen: Array<[number, number]> = []
    const enough = new AbortController()
    await group.process((job: CxlogJob) => {
      seen.push([job.offset, job.deliveryCount])
      if (job.offset === 1 && job.deliveryCount === 1) throw new Error("flaky")
      if (seen.length === 4) enough.abort()
    }, { signal: enough.signal })
    await group.close()
    expect(seen).toEqual([[0, 1], [1, 1], [2, 1], [1, 2]])
    expect(await runtime.runPromise(groups.describe("workers"))).toMatchObject({ acked: 3, redeliveries: 1 })
    await runtime.dispose()
  })

  it("jobs waiting in hand behind slow ones keep their deadline while the loop goes on: none is taken over and run twice", async () => {
    const { runtime, layer, publish, groups } = await cluster("jobs")
    await publish(8)
    // 8 jobs of 200 ms each, all taken at once, against an ackWait of 1 s: the last ones wait in hand past it.
    const slow = await CxlogGroup.openWith(layer, {
      group: "workers",
      create: { topic: "jobs", ackWaitMs: 1000 },
      maxInFlight: 8
    })
    const first = await slow.next()
    const other = await CxlogGroup.openWith(layer, { group: "workers" })
    const takenOver: Array<number> = []
    const otherLoop = other.process((job) => void takenOver.push(job.offset))
    const acked: Array<boolean> = []
    for (let job = first; job !== undefined; job = acked.length < 8 ? await slow.next() : undefined) {
      await new Promise((resolve) => setTimeout(resolve, 200))
      acked.push(await job.ack())
    }
    await other.close()
    await otherLoop
    await slow.close()
    expect(takenOver).toEqual([])
    expect(acked).toEqual(Array.from({ length: 8 }, () => true))
    expect(await runtime.runPromise(groups.describe("workers"))).toMatchObject({
      acked: 8,
      redeliveries: 0,
      expired: 0
    })
    await runtime.dispose()
  })

  it("a loop that stops asking for jobs lets the ones in its hand go to the others after an ackWait", async () => {
    const { runtime, layer, publish } = await cluster("jobs")
    await publish(4)
    const stuck = await CxlogGroup.openWith(layer, {
      group: "workers",
      create: { topic: "jobs", ackWaitMs: 500 },
      maxInFlight: 4
    })
    // It takes all four and works on the first for ever: neither that one nor the three still in hand are kept for it.
    expect(await stuck.next()).toMatchObject({ offset: 0 })
    const other = await CxlogGroup.openWith(layer, { group: "workers" })
    const next = async () => {
      let timer: NodeJS.Timeout | undefined
      const timeout = new Promise<never>((
        _,
        reject
      ) => (timer = setTimeout(reject, 10_000, new Error("no job in 10 s"))))
      try {
        return await Promise.race([other.next(), timeout])
      } finally {
        clearTimeout(timer)
      }
    }
    const taken: Array<CxlogJob> = []
    for (let i = 0; i < 4; i++) {
      const job = (await next()) as CxlogJob
      taken.push(job)
      expect(await job.ack()).toBe(true)
    }
    expect(taken.map((job) => [job.offset, job.deliveryCount]).sort()).toEqual([[0, 2], [1, 2], [2, 2], [3, 2]])
    await other.close()
    await stuck.close()
    await runtime.dispose()
  })

  it("a nak's delay that cannot be rejects with InvalidNakDelay itself, and the job stays the worker's", async () => {
    const { runtime, layer, publish } = await cluster("jobs")
    await publish(1)
    const group = await CxlogGroup.openWith(layer, { group: "workers", create: { topic: "jobs" } })
    await expect(group.process(() => {}, { nakDelayMs: -1 })).rejects.toMatchObject({
      _tag: "InvalidNakDelay",
      group: "workers",
      offset: undefined
    })
    const job = (await group.next())!
    await expect(job.nak(Number.NaN)).rejects.toMatchObject({ _tag: "InvalidNakDelay", offset: 0 })
    expect(await job.ack()).toBe(true)
    await group.close()
    await runtime.dispose()
  })

  it("close hands the jobs it held to the next member at once; its typed errors reject", async () => {
    const { runtime, layer, publish } = await cluster("jobs")
    await publish(2)
    await expect(CxlogGroup.openWith(layer, { group: "nobody" })).rejects.toMatchObject({ _tag: "GroupNotFound" })
    // A misspelt option is refused naming it, not left at its default (CXLOG_GROUP_MAX_IN_FLIGHT).
    const misspelt = { group: "workers", create: { topic: "jobs" }, maxInflight: 1 } as CxlogGroupOptions
    await expect(CxlogGroup.openWith(layer, misspelt)).rejects.toMatchObject({
      _tag: "InvalidGroupSpec",
      message: expect.stringContaining(
        "a member has no option maxInflight (its options: group, create, signal, maxInFlight)"
      )
    })
    // open takes the connection's options too, and refuses what neither has, before it connects.
    await expect(CxlogGroup.open({ ...misspelt, brokers: [{ host: "127.0.0.1", port: 1 }] })).rejects.toMatchObject({
      _tag: "InvalidGroupSpec",
      message: expect.stringMatching(/a member has no option maxInflight \(its options: .*brokers, /)
    })
    const first = await CxlogGroup.openWith(layer, { group: "workers", create: { topic: "jobs" } })
    const held = await first.next()
    expect(held).toMatchObject({ offset: 0, deliveryCount: 1 })
    await first.close()
    expect(await first.next()).toBeUndefined()
    const second = await CxlogGroup.openWith(layer, { group: "workers" })
    const again = await second.next()
    expect(again).toMatchObject({ offset: 0, deliveryCount: 2 })
    expect(await held!.ack()).toBe(false)
    await second.close()
    await runtime.dispose()
  })
})
