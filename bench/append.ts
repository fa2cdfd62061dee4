/**
 * bench append: local append throughput (the broker side, no network) of 1 KiB messages
 * into the region's PBR + Blog, next to a plain memcpy of the same bytes into the same
 * Blog positions, in the same run. The sequencer runs between timed phases (untimed) so
 * appends never wait. `ratio` = append GB/s over memcpy GB/s for 64-message batches.
 */
import { Effect } from "effect"
import * as AppenderLayers from "../src/layers/log/Appender.js"
import { withBlogBytes } from "../src/layers/log/Layout.js"
import { alignLine } from "../src/layers/log/Records.js"
import * as SequencerLayers from "../src/layers/log/Sequencer.js"
import { batchPayload, benchRegion, flag } from "./LogBench.js"
import { emit, table } from "./Report.js"

const MESSAGE_BYTES = 1024

export const run = (args: ReadonlyArray<string>) =>
  Effect.scoped(Effect.gen(function*() {
    const totalBytes = flag(args, "mib", 2048) * 2 ** 20
    const blogBytes = 128 << 20
    const config = withBlogBytes({
      maxBrokers: 1,
      pbrSlots: 8192,
      goiSlots: 8192,
      sessionSlots: 64,
      subscriberSlots: 2,
      listenerSlots: 4,
      maxBatchBytes: 1 << 20
    }, blogBytes)
    const { region, area, provide, topics } = yield* benchRegion("append", config, 1)
    const topic = yield* topics.create({ name: "bench", order: 2, ackLevel: 1, replicationFactor: 1 })
    const appender = yield* provide(AppenderLayers.make(area, { brokerId: 0 }))
    const sequencer = yield* provide(SequencerLayers.make(area, { maxBatchesPerBroker: 8192 }))
    // The writer's lane is taken at its first append (granted by the topics' writer, as the head would).
    const first = batchPayload(1, MESSAGE_BYTES)
    const firstEpoch = yield* appender.registerSession("bench", 0)
    yield* appender.append("bench", {
      clientId: 0,
      sessionEpoch: firstEpoch,
      batchSeq: 0,
      messageCount: 1,
      payloadBytes: first.length,
      crc32c: region.crc32c(first, 0, first.length)
    }, first)
    yield* sequencer.step
    const blog = area.blog(topic.id, 0)
    const laneBlogBytes = area.blogBytes(topic.id)

    const measure = (messagesPerBatch: number) =>
      Effect.gen(function*() {
        const payload = batchPayload(messagesPerBatch, MESSAGE_BYTES)
        const crc32c = region.crc32c(payload, 0, payload.length)
        // Half the Blog (or PBR) per timed phase; the sequencer frees it between phases.
        const perPhase = Math.min(
          area.placeOf(topic.id).shape.pbrSlots / 2,
          Math.floor(laneBlogBytes / 2 / alignLine(payload.length))
        )
        let seq = 0
        const sessionEpoch = yield* appender.registerSession("bench", messagesPerBatch)
        const appendPhase = Effect.gen(function*() {
          const t0 = performance.now()
          for (let i = 0; i < perPhase; i++) {
            const header = {
              clientId: messagesPerBatch,
              sessionEpoch,
              batchSeq: seq++,
              messageCount: messagesPerBatch,
              payloadBytes: payload.length,
              crc32c
            }
            yield* appender.append("bench", header, payload)
          }
          const ms = performance.now() - t0
          yield* sequencer.step
          return ms
        })
        let position = 0
        const copyPhase = () => {
          const t0 = performance.now()
          for (let i = 0; i < perPhase; i++) {
            const offset = position % laneBlogBytes
            if (offset + payload.length > laneBlogBytes) position += laneBlogBytes - offset
            region.bytes.set(payload, blog + (position % laneBlogBytes))
            position += alignLine(payload.length)
          }
          return performance.now() - t0
        }
        // Warm up: touch every Blog page and let the JIT settle.
        for (let i = 0; i < 2; i++) {
          yield* appendPhase
          copyPhase()
        }
        const phaseBytes = perPhase * payload.length
        const phases = Math.max(2, Math.ceil(totalBytes / phaseBytes))
        let appendMs = 0
        let copyMs = 0
        for (let p = 0; p < phases; p++) {
          appendMs += yield* appendPhase
          copyMs += copyPhase()
        }
        const bytes = phases * phaseBytes
        return {
          messagesPerBatch,
          batchBytes: payload.length,
          appendGBps: bytes / appendMs / 1e6,
          memcpyGBps: bytes / copyMs / 1e6,
          batchesPerSec: (phases * perPhase) / (appendMs / 1000)
        }
      })

    const rows = []
    for (const messagesPerBatch of [1, 16, 64]) rows.push(yield* measure(messagesPerBatch))
    const text = table(
      ["messages per batch (1 KiB)", "batch bytes", "append GB/s", "memcpy GB/s", "append / memcpy", "appends/s"],
      rows.map((r) => [
        r.messagesPerBatch,
        r.batchBytes,
        r.appendGBps,
        r.memcpyGBps,
        r.appendGBps / r.memcpyGBps,
        Math.round(r.batchesPerSec)
      ])
    )
    const headline = rows.at(-1)!
    emit(text, {
      bench: "append",
      messageBytes: MESSAGE_BYTES,
      rows,
      appendGBps: headline.appendGBps,
      memcpyGBps: headline.memcpyGBps,
      ratio: headline.appendGBps / headline.memcpyGBps
    })
  }))
