/**
 * The Promise facade of a group member (CxlogGroup), over the fake: `for await` with an ack per
 * job, the handler form that acks what it finished and naks what threw, jobs in hand kept from
 * expiring while the loop works through them, and `close` handing what the member held to the
 * next one.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, ManagedRuntime, Schedule, Stream } from "effect"
import { CxlogGroup, type CxlogGroupOptions, type CxlogJob } from "../../src/layers/groups/CxlogGroup.js"
import { forEachMessage } from "../../src/layers/net/BatchPayload.js"
import { ConsumerGroups } from "../../src/services/groups/ConsumerGroups.js"
import { LogReader } from "../../src/services/log/LogReader.js"
import { Publisher } from "../../src/services/net/Publisher.js"
import { memoryGroups, remoteGroups } from "../fixtures/groups-harness.js"

/** One in-memory cluster for a test: its groups (for the facade) and a runtime to publish and look with. */
const cluster = async (topic: string, ...others: ReadonlyArray<string>) => clusterOf(memoryGroups, topic, ...others)

/** The same over `groupsOf`'s groups (in place, or through a broker). */
const clusterOf = async (
  groupsOf: typeof memoryGroups,
  topic: string,
  ...others: ReadonlyArray<string>
) => {
  const runtime = ManagedRuntime.make(groupsOf([topic, ...others]))
  const groups = await runtime.runPromise(ConsumerGroups)
  const publish = (count: number) =>
    runtime.runPromise(Effect.gen(function*() {
      const publisher = yield* Publisher
      for (let i = 0; i < count; i++) {
        yield* publisher.publish(new TextEncoder().encode(`job ${i}`), { topic, headers: { n: `${i}` } })
      }
      yield* publisher.flush(10_000)
    }))
  return { runtime, groups, layer: Layer.succeed(ConsumerGroups, groups), publish }
}

/** What the first `count` dead letters on topic "dead" say of why they are there. */
const deadLetterReasons = (runtime: Awaited<ReturnType<typeof clusterOf>>["runtime"], count: number) =>
  runtime.runPromise(Effect.scoped(Effect.gen(function*() {
    const cursor = yield* (yield* LogReader).subscribe("dead", { from: "earliest" })
    const found: Array<string> = []
    while (found.length < count && (yield* cursor.awaitMore(10_000))) {
      yield* cursor.pollBatches((batch) => {
        const payload = batch.bytes.slice(batch.offset, batch.offset + batch.length)
        forEachMessage(payload, batch.messageCount, (m) => {
          const reason = m.headers?.find((h) => h.name === "cxlog-dead-letter-reason")
          found.push(reason === undefined ? "none" : new TextDecoder().decode(reason.value))
        })
      })
    }
    return found
  })))

describe("CxlogGroup", () => {
  it("for await: each job once, acked; the group creates itself when asked to", async () => {
    const { runtime, layer, publish, groups } = await cluster("jobs")
    await publish(5)
    const group = await CxlogGroup.openWith(layer, { group: "workers", create: { topic: "jobs" } })
    const done: Array<string> = []
    for await (const job of group) {
      done.push(job.text())
      expect(job.header("n")).toBe(`${job.offset}`)
      expect(job.header("other")).toBeUndefined()
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

  it("process rejecting once its loop ran (its group deleted) closes the member, as leaving a for await loop does", async () => {
    const { runtime, layer, publish, groups } = await cluster("jobs")
    // The group deleted under it: process rejects with GroupDeleted, and the member is closed (its
    // runtime too: left open, it kept the Node process from exiting).
    const doomed = await CxlogGroup.openWith(layer, { group: "doomed", create: { topic: "jobs" } })
    const processing = doomed.process(() => runtime.runPromise(groups.delete("doomed")))
    await publish(1)
    await expect(processing).rejects.toMatchObject({ _tag: "GroupDeleted" })
    // Closed, it has nothing more to give; open, it rejected again with its stream's failure.
    expect(await doomed.next()).toBeUndefined()
    await runtime.dispose()
  })

  it("process: a job whose handler throws is nak'd with nakDelayMs: it waits that long, no worker's", async () => {
    const { runtime, layer, publish, groups } = await cluster("jobs")
    await publish(1)
    const group = await CxlogGroup.openWith(layer, { group: "workers", create: { topic: "jobs" } })
    const enough = new AbortController()
    const before = Date.now()
    await group.process(() => {
      enough.abort()
      throw new Error("not yet")
    }, { signal: enough.signal, nakDelayMs: 600_000 })
    await group.close()
    const pending = await runtime.runPromise(groups.pending("workers"))
    expect(pending).toMatchObject([{ offset: 0, state: "waiting", deliveries: 1 }])
    expect(pending[0]!.deadlineMs).toBeGreaterThanOrEqual(before + 600_000)
    await runtime.dispose()
  })

  it("process: a job whose handler throws on its last delivery goes to the dead letters saying what it threw", async () => {
    const { runtime, layer, publish } = await cluster("jobs", "dead")
    await publish(1)
    const create = { topic: "jobs", deadLetterTopic: "dead", maxDeliver: 2 }
    const group = await CxlogGroup.openWith(layer, { group: "workers", create })
    const enough = new AbortController()
    await group.process((job: CxlogJob) => {
      if (job.deliveryCount === 2) enough.abort()
      throw new Error(`bad input ${job.offset}`)
    }, { signal: enough.signal })
    await group.close()
    expect(await deadLetterReasons(runtime, 1)).toEqual(["term: the handler failed on delivery 2 of 2: bad input 0"])
    await runtime.dispose()
  })

  /**
   * A handler that holds the first `together` jobs until that many run at once (bounded: a loop
   * running fewer would wait for ever), and a while after (a loop that starts one more meanwhile,
   * its next job already in hand, is counted), then lets the rest through; what ran at once is counted.
   */
  const overlapping = (together: number) => {
    let active = 0
    let most = 0
    let release!: () => void
    const all = new Promise<void>((resolve) => (release = resolve))
    const bound = setTimeout(release, 5_000)
    return {
      run: async (work: () => void) => {
        active++
        most = Math.max(most, active)
        if (active === together) setTimeout(release, 50)
        await all
        work()
        active--
      },
      most: () => most,
      done: () => clearTimeout(bound)
    }
  }

  it("process with concurrency: that many handlers run at once, never more; every job acked once", async () => {
    const { runtime, layer, publish, groups } = await cluster("jobs")
    await publish(12)
    const group = await CxlogGroup.openWith(layer, { group: "workers", create: { topic: "jobs" } })
    const handled: Array<number> = []
    const enough = new AbortController()
    const overlap = overlapping(4)
    await group.process((job: CxlogJob) =>
      overlap.run(() => {
        handled.push(job.offset)
        if (handled.length === 12) enough.abort()
      }), { concurrency: 4, signal: enough.signal })
    overlap.done()
    await group.close()
    expect(overlap.most()).toBe(4)
    expect(handled.sort((a, b) => a - b)).toEqual(Array.from({ length: 12 }, (_, i) => i))
    expect(await runtime.runPromise(groups.describe("workers"))).toMatchObject({ acked: 12, pending: 0 })
    for (const concurrency of [0, 1.5, Number.NaN]) {
      await expect(group.process(() => {}, { concurrency })).rejects.toMatchObject({ _tag: "InvalidGroupSpec" })
    }
    await runtime.dispose()
  })

  it("process with concurrency ends when its signal aborts while it waits for the next job; nothing it took is lost", async () => {
    const { runtime, layer, publish, groups } = await cluster("jobs")
    await publish(2)
    const group = await CxlogGroup.openWith(layer, { group: "workers", create: { topic: "jobs" } })
    const enough = new AbortController()
    let handled = 0
    // Both jobs are taken at once and the loop waits for a third, which never comes, as the last handler aborts.
    await group.process(async () => {
      await new Promise((resolve) => setTimeout(resolve, 10))
      if (++handled === 2) enough.abort()
    }, { concurrency: 4, signal: enough.signal })
    expect(handled).toBe(2)
    expect(await runtime.runPromise(groups.describe("workers"))).toMatchObject({ acked: 2, pending: 0 })
    // What arrives after the abort stays in the member's hand for the next loop.
    await publish(1)
    const next = await group.next()
    expect(next).toMatchObject({ offset: 2, deliveryCount: 1 })
    expect(await next!.ack()).toBe(true)
    await group.close()
    await runtime.dispose()
  })

  it("process with concurrency Infinity runs every job the member holds at once", async () => {
    const { runtime, layer, publish } = await cluster("jobs")
    await publish(6)
    const group = await CxlogGroup.openWith(layer, { group: "workers", create: { topic: "jobs" }, maxInFlight: 6 })
    const enough = new AbortController()
    const overlap = overlapping(6)
    let handled = 0
    await group.process(() =>
      overlap.run(() => {
        if (++handled === 6) enough.abort()
      }), { concurrency: Infinity, signal: enough.signal })
    overlap.done()
    await group.close()
    expect(overlap.most()).toBe(6)
    await runtime.dispose()
  })

  it("process with concurrency in a byKey group: a key's jobs one after another in offset order, other keys beside them", async () => {
    const { runtime, layer, groups } = await cluster("jobs")
    await runtime.runPromise(Effect.gen(function*() {
      const publisher = yield* Publisher
      for (let i = 0; i < 12; i++) {
        yield* publisher.publish(new TextEncoder().encode(`job ${i}`), { topic: "jobs", key: `k${i % 3}` })
      }
      yield* publisher.flush(10_000)
    }))
    const group = await CxlogGroup.openWith(layer, { group: "workers", create: { topic: "jobs", byKey: true } })
    const byKey = new Map<string, Array<number>>()
    const busyKeys = new Set<string>()
    const clashes: Array<number> = []
    const enough = new AbortController()
    const overlap = overlapping(3)
    let handled = 0
    await group.process(async (job: CxlogJob) => {
      const key = new TextDecoder().decode(job.key)
      if (busyKeys.has(key)) clashes.push(job.offset)
      busyKeys.add(key)
      await overlap.run(() => {
        byKey.set(key, [...(byKey.get(key) ?? []), job.offset])
        if (++handled === 12) enough.abort()
      })
      busyKeys.delete(key)
    }, { concurrency: 6, signal: enough.signal })
    overlap.done()
    await group.close()
    expect(clashes).toEqual([])
    expect(overlap.most()).toBe(3)
    expect([...byKey.entries()].sort()).toEqual([0, 1, 2].map((k) => [`k${k}`, [k, k + 3, k + 6, k + 9]]))
    expect(await runtime.runPromise(groups.describe("workers"))).toMatchObject({ acked: 12, pending: 0 })
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

  it("a nak's delay that cannot be rejects with InvalidNakDelay itself, process without a handler InvalidGroupSpec, and the job stays the worker's", async () => {
    const { runtime, layer, publish } = await cluster("jobs")
    await publish(1)
    const group = await CxlogGroup.openWith(layer, { group: "workers", create: { topic: "jobs" } })
    await expect(group.process(() => {}, { nakDelayMs: -1 })).rejects.toMatchObject({
      _tag: "InvalidNakDelay",
      group: "workers",
      offset: undefined
    })
    // No handler (a JavaScript caller's): refused at once, not a throw per job that naks each to the dead letters.
    await expect(group.process(undefined as unknown as () => void)).rejects.toMatchObject({
      _tag: "InvalidGroupSpec",
      reason: "process takes a handler function, not undefined"
    })
    const job = (await group.next())!
    expect(job.deliveryCount).toBe(1)
    await expect(job.nak(Number.NaN)).rejects.toMatchObject({ _tag: "InvalidNakDelay", offset: 0 })
    expect(await job.ack()).toBe(true)
    await group.close()
    await runtime.dispose()
  })

  it("close hands the jobs it held to the next member at once; its typed errors reject", async () => {
    const { runtime, layer, publish } = await cluster("jobs")
    await publish(2)
    await expect(CxlogGroup.openWith(layer, { group: "nobody" })).rejects.toMatchObject({ _tag: "GroupNotFound" })
    // A group named by something other than a string (JavaScript): typed, as a name no group can have.
    const five = 5 as unknown as string
    await expect(CxlogGroup.openWith(layer, { group: five })).rejects.toMatchObject({ _tag: "GroupNotFound" })
    await expect(CxlogGroup.openWith(layer, { group: five, create: { topic: "jobs" } })).rejects.toMatchObject({
      _tag: "InvalidObjectName",
      reason: "a name is a string, not a number"
    })
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
    // The group exists, on jobs: a spec naming another topic is refused, not joined to jobs.
    await expect(CxlogGroup.openWith(layer, { group: "workers", create: { topic: "other" } })).rejects
      .toMatchObject({ _tag: "InvalidGroupSpec", message: expect.stringContaining("it reads topic jobs, not other") })
    // So is one naming settings it was not made with; those it names alike, and those it leaves out, join.
    await expect(
      CxlogGroup.openWith(layer, { group: "workers", create: { topic: "jobs", byKey: true, maxDeliver: 9 } })
    ).rejects.toMatchObject({
      _tag: "InvalidGroupSpec",
      message: expect.stringContaining(
        "it exists, made with byKey false, maxDeliver 5, not byKey true, maxDeliver 9 (delete it and create it again to change them)"
      )
    })
    const alike = await CxlogGroup.openWith(layer, { group: "workers", create: { topic: "jobs", maxDeliver: 5 } })
    await alike.close()
    // A window that cannot be is refused at the open, not at the first read.
    for (const maxInFlight of [0, -1, 2e6]) {
      await expect(CxlogGroup.openWith(layer, { group: "workers", maxInFlight })).rejects.toMatchObject({
        _tag: "InvalidGroupSpec",
        message: expect.stringContaining(`maxInFlight ${maxInFlight} must be a whole number`)
      })
    }
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

  it.each([["in place", memoryGroups], ["through a broker", remoteGroups]] as const)(
    "jobs a member took but never handed out go back unseen at close (%s): not counted, so restarts alone never dead-letter them",
    async (_, groupsOf) => {
      const { runtime, layer, publish, groups } = await clusterOf(groupsOf, "jobs", "dead")
      await publish(10)
      const create = { topic: "jobs", deadLetterTopic: "dead", maxDeliver: 2 }
      // Ten workers in turn, each handling one job and leaving with the rest of what it took still in hand.
      const seen: Array<[number, number]> = []
      for (let i = 0; i < 10; i++) {
        const worker = await CxlogGroup.openWith(layer, { group: "workers", create })
        // Bounded: a job lost to the dead letters would leave this worker waiting for ever.
        const job = await Promise.race([
          worker.next(),
          new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 10_000).unref())
        ])
        expect(job, `worker ${i} got no job`).toBeDefined()
        seen.push([job!.offset, job!.deliveryCount])
        expect(await job!.ack()).toBe(true)
        await worker.close()
      }
      expect(seen).toEqual(Array.from({ length: 10 }, (_, i) => [i, 1]))
      expect(await runtime.runPromise(groups.describe("workers"))).toMatchObject({
        acked: 10,
        pending: 0,
        redeliveries: 0,
        deadLetters: 0
      })
      await runtime.dispose()
    }
  )

  it.each([["in place", memoryGroups], ["through a broker", remoteGroups]] as const)(
    "term with a reason that is no string (%s): an Error says its message, a number itself, where the call threw a TypeError",
    async (_, groupsOf) => {
      const { runtime, layer, publish } = await clusterOf(groupsOf, "jobs", "dead")
      await publish(2)
      const group = await CxlogGroup.openWith(layer, {
        group: "workers",
        create: { topic: "jobs", deadLetterTopic: "dead" }
      })
      // As a JavaScript caller's catch block passes what it caught.
      const reasons = [new Error("bad input"), 404] as ReadonlyArray<unknown> as ReadonlyArray<string>
      for (const reason of reasons) expect(await (await group.next())!.term(reason)).toBe(true)
      await group.close()
      expect(await deadLetterReasons(runtime, 2)).toEqual(["term: bad input", "term: 404"])
      await runtime.dispose()
    }
  )

  it("a remote member's deliveries its stream never handed out (waiting at the client, or on their way) go back unseen when it leaves", async () => {
    const { runtime, layer, publish, groups } = await clusterOf(remoteGroups, "jobs")
    await runtime.runPromise(groups.create({ name: "workers", topic: "jobs" }))
    const pending = () => runtime.runPromise(Effect.map(groups.describe("workers"), (info) => info.pending))
    await publish(1)
    await runtime.runPromise(Effect.scoped(Effect.gen(function*() {
      const pull = yield* Stream.toPull(groups.join("workers", { maxInFlight: 8 }))
      // The first job is handed out; the seven published after it reach the member but are never pulled.
      expect((yield* pull).length).toBe(1)
      yield* Effect.promise(() => publish(7))
      yield* Effect.repeat(Effect.promise(pending), {
        until: (held) => held === 8,
        schedule: Schedule.spaced("10 millis")
      })
    })))
    const next = await CxlogGroup.openWith(layer, { group: "workers" })
    const seen: Array<[number, number]> = []
    for (let i = 0; i < 8; i++) {
      const job = (await next.next())!
      seen.push([job.offset, job.deliveryCount])
      await job.ack()
    }
    expect(seen.sort(([a], [b]) => a - b)).toEqual([[0, 2], ...Array.from({ length: 7 }, (_, i) => [i + 1, 1])])
    await next.close()
    await runtime.dispose()
  })

  it("leaving a for await loop (break) closes the member: what it held goes to the next one at once", async () => {
    const { runtime, layer, publish, groups } = await cluster("jobs")
    await publish(4)
    const first = await CxlogGroup.openWith(layer, { group: "workers", create: { topic: "jobs" } })
    for await (const job of first) {
      expect(await job.ack()).toBe(true)
      break
    }
    expect(await first.next()).toBeUndefined()
    expect(await runtime.runPromise(groups.describe("workers"))).toMatchObject({ members: [], acked: 1 })
    const second = await CxlogGroup.openWith(layer, { group: "workers" })
    const rest: Array<[number, number]> = []
    for await (const job of second) {
      rest.push([job.offset, job.deliveryCount])
      expect(await job.ack()).toBe(true)
      if (rest.length === 3) break
    }
    expect(rest).toEqual([[1, 1], [2, 1], [3, 1]])
    await runtime.dispose()
  })

  it("a member that cannot join is refused at the open: the member slots all live, or the pending table too small for its window", async () => {
    const { runtime, layer } = await cluster("jobs")
    const create = { topic: "jobs", memberSlots: 1, pendingSlots: 100 }
    const first = await CxlogGroup.openWith(layer, { group: "narrow", create, maxInFlight: 10 })
    // The first member joins as it takes its first jobs: until then the group has no member to count.
    const joined = first.next()
    await runtime.runPromise(
      Effect.repeat(
        Effect.flatMap(ConsumerGroups, (groups) => groups.describe("narrow")),
        { until: (info) => info.members.length === 1, schedule: Schedule.spaced("10 millis") }
      ).pipe(Effect.timeout("10 seconds"))
    )
    await expect(CxlogGroup.openWith(layer, { group: "narrow" })).rejects.toMatchObject({
      _tag: "GroupMembersFull",
      slots: 1
    })
    await first.close()
    expect(await joined).toBeUndefined()
    await expect(CxlogGroup.openWith(layer, { group: "narrow", maxInFlight: 101 })).rejects.toMatchObject({
      _tag: "GroupPendingFull",
      slots: 100,
      inFlight: 101
    })
    // A group the open made for a member it then refuses is deleted again: it would hold its topic's
    // retention, and one of the topic's subscriber lines, for a member that never came.
    const tooSmall = { topic: "jobs", pendingSlots: 4 }
    await expect(CxlogGroup.openWith(layer, { group: "fresh", create: tooSmall, maxInFlight: 8 })).rejects
      .toMatchObject({ _tag: "GroupPendingFull", slots: 4, inFlight: 8 })
    // Its spec naming no pending slots (the layer's default, 4 096, known only once it is made): made, then deleted.
    await expect(CxlogGroup.openWith(layer, { group: "fresh", create: { topic: "jobs" }, maxInFlight: 5_000 })).rejects
      .toMatchObject({ _tag: "GroupPendingFull", slots: 4_096, inFlight: 5_000 })
    const left = await runtime.runPromise(Effect.flatMap(ConsumerGroups, (groups) => groups.list))
    expect(left.map((group) => group.name)).toEqual(["narrow"])
    await runtime.dispose()
  })
})
