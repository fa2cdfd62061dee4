/**
 * bench crc: crc32c throughput (the `crc32c` the broker and publisher call, over a Uint8Array
 * view inside a larger ArrayBuffer, as batches in the region are) next to memcpy of the same
 * bytes (TypedArray.set into another view of that ArrayBuffer), for 1 KiB, 64 KiB and 1 MiB
 * buffers. Rounds alternate crc and memcpy so both see the same machine load; each figure is
 * the median round. `ratio` = crc MB/s over memcpy MB/s at 64 KiB (the default batch size).
 * Flags: --rounds=N (default 15), --mib=N bytes per operation per round (default 64),
 * --path=NAME to time another implementation this CPU runs (one of features().crc32cPaths).
 */
import { Effect } from "effect"
import { crc32c, crc32cKind } from "../src/native/Crc32c.js"
import { loadAddonSync } from "../src/native/Native.js"
import { flag } from "./LogBench.js"
import { emit, percentile, table } from "./Report.js"

const SIZES = [1024, 64 * 1024, 1024 * 1024]
/** Where the buffers sit in the ArrayBuffer: not at its start, and not 64-byte aligned. */
const SOURCE_OFFSET = 4096 + 3
const TARGET_OFFSET = 8 * 1024 * 1024 + 5

/** The crc to time: the default entry point, or the addon's implementation named by --path. */
const pick = (args: ReadonlyArray<string>) => {
  const forced = args.find((a) => a.startsWith("--path="))?.slice(7)
  if (forced === undefined) {
    const path = crc32cKind === "native" ? loadAddonSync().features().crc32c : "typescript"
    return Effect.succeed({ path, crc: (bytes: Uint8Array, length: number) => crc32c(bytes, 0, length) })
  }
  const addon = loadAddonSync()
  const paths = addon.features().crc32cPaths
  const path = paths.find((p) => p === forced)
  return path === undefined
    ? Effect.fail(new Error(`--path=${forced}: this CPU runs ${paths.join(", ")}`))
    : Effect.succeed({ path, crc: (bytes: Uint8Array, length: number) => addon.crc32cVia(path, bytes, 0, length) })
}

export const run = (args: ReadonlyArray<string>) =>
  Effect.map(pick(args), ({ crc, path }) => {
    const rounds = flag(args, "rounds", 15)
    const roundBytes = flag(args, "mib", 64) * 2 ** 20
    const memory = new Uint8Array(16 * 1024 * 1024)
    for (let i = 0; i < memory.length; i++) memory[i] = (i * 2654435761) >>> 24

    const measure = (bytes: number) => {
      const source = memory.subarray(SOURCE_OFFSET, SOURCE_OFFSET + bytes)
      const target = memory.subarray(TARGET_OFFSET, TARGET_OFFSET + bytes)
      const calls = Math.max(1, Math.round(roundBytes / bytes))
      const crcRound = () => {
        const t0 = process.hrtime.bigint()
        for (let i = 0; i < calls; i++) crc(source, bytes)
        return Number(process.hrtime.bigint() - t0)
      }
      const copyRound = () => {
        const t0 = process.hrtime.bigint()
        for (let i = 0; i < calls; i++) target.set(source)
        return Number(process.hrtime.bigint() - t0)
      }
      // Warm up: let the JIT settle on both loops.
      crcRound()
      copyRound()
      const crcMBps: Array<number> = []
      const memcpyMBps: Array<number> = []
      for (let r = 0; r < rounds; r++) {
        crcMBps.push((calls * bytes * 1e3) / crcRound())
        memcpyMBps.push((calls * bytes * 1e3) / copyRound())
      }
      crcMBps.sort((a, b) => a - b)
      memcpyMBps.sort((a, b) => a - b)
      const crcMedian = percentile(crcMBps, 50)
      const memcpyMedian = percentile(memcpyMBps, 50)
      return {
        bytes,
        crcMBps: Math.round(crcMedian),
        memcpyMBps: Math.round(memcpyMedian),
        ratio: crcMedian / memcpyMedian
      }
    }

    const rows = SIZES.map(measure)
    const text = table(
      [`bytes (crc32c: ${path})`, "crc32c MB/s", "memcpy MB/s", "crc32c / memcpy"],
      rows.map((r) => [
        r.bytes,
        r.crcMBps,
        r.memcpyMBps,
        r.ratio
      ])
    )
    emit(text, { bench: "crc", path, rounds, rows, ratio: rows.find((r) => r.bytes === 64 * 1024)!.ratio })
  })
