#!/usr/bin/env node
/**
 * What consuming a stream of chunks costs in Effect alone, by how it is consumed
 * (docs/consumers.md, "What a chunk's objects cost"): a stream shaped as a group member's (one
 * chunk of 64 fresh objects per run of an effect, made by the package's `chunkLoop`), consumed by
 * `Stream.runForEachChunk` (`sink`) or by pulling its chunks (`pull`, the package's `eachChunk`),
 * both from the build in dist/ (`npm install` makes it). With
 * `--copies` each chunk's objects are views of a 64 KiB copy of their own, as a member's messages
 * are. Prints CPU ns per object; run under `node --trace-gc-nvp` to see what the young
 * generation's collections keep (their `promoted` against `allocated`).
 *
 *   node --trace-gc-nvp scripts/chunk-sink-gc.mjs sink|pull [--chunks 200000] [--copies]
 */
import { Effect, Stream } from "effect"
import { chunkLoop, eachChunk } from "../dist/src/layers/groups/ChunkLoop.js"

const args = process.argv.slice(2)
const mode = args[0]
if (mode !== "sink" && mode !== "pull") {
  console.error("usage: chunk-sink-gc.mjs sink|pull [--chunks N] [--copies]")
  process.exit(2)
}
const at = args.indexOf("--chunks")
const chunks = at >= 0 ? Number(args[at + 1]) : 200_000
const copies = args.includes("--copies")
const CHUNK = 64
const RECORD = 1_040
const source = new Uint8Array(CHUNK * RECORD)

let made = 0
const take = Effect.sync(() => {
  if (made === chunks * CHUNK) return undefined
  const out = []
  const payload = copies ? new Uint8Array(source) : undefined
  for (let i = 0; i < CHUNK; i++) {
    const value = payload === undefined ? new Uint8Array(8) : payload.subarray(i * RECORD, i * RECORD + 1_024)
    out.push({ index: made++, value, message: { offset: made } })
  }
  return out
})
const stream = chunkLoop(take)

let sum = 0
const work = (chunk) =>
  Effect.sync(() => {
    for (const item of chunk) sum += item.index
  })

const before = process.cpuUsage()
await Effect.runPromise(mode === "sink" ? Stream.runForEachChunk(stream, work) : eachChunk(stream, work))
const cpu = process.cpuUsage(before)
console.log(
  `${mode}${copies ? " --copies" : ""}: ${made} objects, ${
    Math.round((cpu.user + cpu.system) * 1_000 / made)
  } CPU ns each (sum ${sum})`
)
