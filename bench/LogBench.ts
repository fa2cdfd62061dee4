/** Shared by the log benchmarks: a native region holding one log area and its topics' directory, and batch payloads of 1 KiB-style messages. */
import { Effect } from "effect"
import type { LogConfig } from "../src/layers/log/Layout.js"
import { directoryFor, logRegionLayout, writingTopics } from "../src/layers/log/LogRegion.js"
import * as CxlMemoryLayers from "../src/layers/region/CxlMemory.js"
import * as DoorbellLayers from "../src/layers/region/Doorbell.js"
import { CxlMemory } from "../src/services/region/CxlMemory.js"
import { Doorbell } from "../src/services/region/Doorbell.js"

const BELLS = 4096
const LOG_BASE = 8192

/**
 * A fresh native region with the log area at 8 KiB, room for `topics` topics, and one doorbell
 * line per component (scoped); `topics` creates them, as the head would.
 */
export const benchRegion = (label: string, config: LogConfig, topicCount = 4) =>
  Effect.gen(function*() {
    const { area, bytes, params } = logRegionLayout(LOG_BASE, config, directoryFor(config, topicCount))
    const region = yield* CxlMemoryLayers.make({
      name: `cxlog-bench-${label}-${process.pid}`,
      size: bytes,
      mode: "create",
      params
    })
    let bells = 0
    /** Provides the region and a fresh doorbell line to a component. */
    const provide = <A, E, R>(make: Effect.Effect<A, E, R>) =>
      Effect.flatMap(
        DoorbellLayers.make({ offset: BELLS + 64 * bells++ }).pipe(Effect.provideService(CxlMemory, region)),
        (doorbell) => make.pipe(Effect.provideService(Doorbell, doorbell), Effect.provideService(CxlMemory, region))
      )
    // The topics' writer answers lane requests on a doorbell of its own, as the head would.
    const topics = yield* provide(writingTopics(area)).pipe(Effect.orDie)
    return { region, area, provide, topics }
  })

/** A batch payload of `count` messages of `bytes` each (`u32 length, u32 flags, payload` padded to 8). */
export const batchPayload = (count: number, bytes: number): Uint8Array => {
  const record = 8 + ((bytes + 7) & ~7)
  const payload = new Uint8Array(count * record)
  const view = new DataView(payload.buffer)
  for (let i = 0; i < count; i++) {
    view.setUint32(i * record, bytes, true)
    for (let k = 0; k < bytes; k++) payload[i * record + 8 + k] = (i + k) & 0xff
  }
  return payload
}

export const flag = (args: ReadonlyArray<string>, name: string, fallback: number): number => {
  const found = args.find((a) => a.startsWith(`--${name}=`))
  return found === undefined ? fallback : Number(found.slice(name.length + 3))
}
