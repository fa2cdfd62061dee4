/**
 * bench sequencer: ordered batches per second with 4 brokers and 10 messages per batch, in
 * mode 2 (one total order) and mode 5 (+ FIFO per session across brokers), with 0% and 50%
 * of batches arriving out of order. Appends happen between timed phases; only sequencer
 * rounds are timed; each figure is the median phase. `ratio` = mode 5 over mode 2 at 0% reordering.
 */
import { Effect } from "effect"
import * as AppenderLayers from "../src/layers/log/Appender.js"
import { withBlogBytes } from "../src/layers/log/Layout.js"
import * as SequencerLayers from "../src/layers/log/Sequencer.js"
import type { SequencerShape } from "../src/services/log/Sequencer.js"
import { batchPayload, benchRegion, flag } from "./LogBench.js"
import { emit, summarize, table } from "./Report.js"

const BROKERS = 4
const SESSIONS_PER_BROKER = 4
const MESSAGES_PER_BATCH = 10
const MESSAGE_BYTES = 64

/**
 * Arrival order of one broker's batches for a phase: its sessions interleaved, each in
 * batch-seq order, except that with probability `reorder` a pair of consecutive batches of
 * a session arrives swapped (so about that share of batches arrives out of order).
 */
const arrivals = (phase: number, perSession: number, reorder: number, random: () => number) => {
  const order: Array<{ session: number; seq: number }> = []
  for (let k = 0; k < perSession; k += 2) {
    for (let session = 0; session < SESSIONS_PER_BROKER; session++) {
      const first = phase * perSession + k
      const swap = random() < reorder
      order.push({ session, seq: swap ? first + 1 : first }, { session, seq: swap ? first : first + 1 })
    }
  }
  return order
}

/** A small deterministic generator, so every run sees the same arrivals. */
const xorshift = (seed: number) => () => {
  seed ^= seed << 13
  seed ^= seed >>> 17
  seed ^= seed << 5
  return (seed >>> 0) / 2 ** 32
}

export const run = (args: ReadonlyArray<string>) =>
  Effect.scoped(Effect.gen(function*() {
    const batchesPerCase = flag(args, "batches", 200_000)
    const config = withBlogBytes({
      maxBrokers: BROKERS,
      pbrSlots: 4096,
      goiSlots: 1 << 16,
      sessionSlots: 256,
      subscriberSlots: 2,
      listenerSlots: 4,
      maxBatchBytes: 64 << 10
    }, 8 << 20)
    const { area, provide, topics } = yield* benchRegion("sequencer", config)
    const appenders = yield* Effect.forEach(Array.from({ length: BROKERS }, (_, b) => b), (brokerId) =>
      provide(AppenderLayers.make(area, { brokerId })))
    const sequencer: SequencerShape = yield* provide(SequencerLayers.make(area, { maxBatchesPerBroker: 1024 }))
    const payload = batchPayload(MESSAGES_PER_BATCH, MESSAGE_BYTES)

    const cases = [
      { name: "m2r0", order: 2 as const, reorder: 0 },
      { name: "m2r50", order: 2 as const, reorder: 0.5 },
      { name: "m5r0", order: 5 as const, reorder: 0 },
      { name: "m5r50", order: 5 as const, reorder: 0.5 }
    ]
    const perSession = 256
    const perPhase = BROKERS * SESSIONS_PER_BROKER * perSession
    const state = cases.map((c) => ({ ...c, random: xorshift(12345), phase: 0, rates: [] as Array<number> }))
    yield* Effect.forEach(cases, (c) =>
      topics.create({ name: c.name, order: c.order, ackLevel: 1, replicationFactor: 1 }))
    /** Each case's sessions, registered as a broker registers them: epoch by case and client id. */
    const epochs = new Map<string, number>()
    for (const c of cases) {
      for (let client = 0; client < BROKERS * SESSIONS_PER_BROKER; client++) {
        epochs.set(`${c.name}/${client}`, yield* appenders[0]!.registerSession(c.name, client))
      }
    }

    /** Appends one phase of the case's arrivals (untimed), then times the rounds that order them. */
    const phase = (c: (typeof state)[number], timed: boolean) =>
      Effect.gen(function*() {
        for (let b = 0; b < BROKERS; b++) {
          for (const { session, seq } of arrivals(c.phase, perSession, c.reorder, c.random)) {
            const clientId = b * SESSIONS_PER_BROKER + session
            const header = {
              clientId,
              sessionEpoch: epochs.get(`${c.name}/${clientId}`)!,
              batchSeq: seq,
              messageCount: MESSAGES_PER_BATCH,
              payloadBytes: payload.length,
              crc32c: 0
            }
            yield* appenders[b]!.append(c.name, header, payload)
          }
        }
        c.phase++
        const t0 = performance.now()
        let done = 0
        while (done < perPhase) {
          done += (yield* sequencer.step).ordered
        }
        if (timed) {
          c.rates.push(done / ((performance.now() - t0) / 1000))
        }
      })

    // A warm-up pass over every case (the JIT), then the cases take turns, so drift hits all alike.
    for (const c of state) {
      yield* phase(c, false)
    }
    const rounds = Math.max(2, Math.ceil(batchesPerCase / perPhase))
    for (let r = 0; r < rounds; r++) {
      for (const c of state) {
        yield* phase(c, true)
      }
    }
    // The median phase: a garbage collection of the (untimed) appends' garbage, or a
    // neighbour on a shared machine, lands in a few phases only.
    const rows = state.map((c) => {
      const batchesPerSec = summarize(c.rates).p50
      return {
        order: c.order,
        reorder: c.reorder,
        phases: c.rates.length,
        batchesPerSec,
        messagesPerSec: batchesPerSec * MESSAGES_PER_BATCH
      }
    })
    const text = table(
      ["mode", "reordered", "ordered batches/s", "messages/s", "vs mode 2, 0%"],
      rows.map((r) => [
        r.order,
        `${r.reorder * 100}%`,
        Math.round(r.batchesPerSec),
        Math.round(r.messagesPerSec),
        r.batchesPerSec / rows[0]!.batchesPerSec
      ])
    )
    emit(text, {
      bench: "sequencer",
      brokers: BROKERS,
      messagesPerBatch: MESSAGES_PER_BATCH,
      rows,
      mode2BatchesPerSec: rows[0]!.batchesPerSec,
      mode5BatchesPerSec: rows[2]!.batchesPerSec,
      ratio: rows[2]!.batchesPerSec / rows[0]!.batchesPerSec
    })
  }))
