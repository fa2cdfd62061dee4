/**
 * Segments contract, over the local disk (a temporary directory, and a 1 MiB tmpfs for a full
 * disk when this machine lets us mount one) and over the in-process disk: records come back
 * in order across segment rolls and reopening; group commit covers many appends with one
 * fdatasync; torn tails are cut with a logged count; a damaged record with intact records
 * after it is `SegmentCorrupt` naming the file and byte offset; retention deletes whole old
 * segments by size and age; a full disk is `DiskFull` and keeps every durable record.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Logger, Scope } from "effect"
import { spawn, spawnSync } from "node:child_process"
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, utimesSync, writeFileSync } from "node:fs"
import { basename, dirname, join } from "node:path"
import { recordBytes } from "../../src/layers/log/durable/SegmentRecord.js"
import * as SegmentsLayers from "../../src/layers/log/durable/Segments.js"
import { crash, makeMemoryDisk, type MemoryDisk, restart } from "../../src/layers/log/durable/SegmentsMemory.js"
import * as SegmentsMemoryLayers from "../../src/layers/log/durable/SegmentsMemory.js"
import type { RecordPosition, SegmentLog, SegmentLogOptions, SegmentsShape } from "../../src/services/log/Segments.js"
import { tempDir } from "../helpers/Processes.js"
import { laterStartTag, startTagOf } from "../helpers/StartTags.js"
import { smallTmpfs } from "../helpers/Tmpfs.js"

/** One backend: its Segments and direct access to its files, to damage them as a crash or a bad disk would. */
interface Backend {
  readonly segments: SegmentsShape
  readonly files: (stream: string) => ReadonlyArray<string>
  readonly bytes: (path: string) => Uint8Array
  readonly setBytes: (path: string, bytes: Uint8Array) => void
  /** Makes the file's last write `ms` older. */
  readonly age: (path: string, ms: number) => void
  /** Every name in the data directory, streams or not. */
  readonly names: () => ReadonlyArray<string>
  /** Leaves what a removal interrupted by a crash leaves: a renamed stream directory holding a file. */
  readonly leaveRemoved: (name: string) => void
}

const segmentsDir = tempDir("cxlog-segments-")

const liveBackend = (directory: string): Effect.Effect<Backend> =>
  Effect.map(SegmentsLayers.make({ directory }), (segments) => ({
    segments,
    files: (stream) => readdirSync(join(directory, stream)).sort().map((n) => join(directory, stream, n)),
    bytes: (path) => new Uint8Array(readFileSync(path)),
    setBytes: (path, bytes) => writeFileSync(path, bytes),
    age: (path, ms) => {
      const t = (statSync(path).mtimeMs - ms) / 1000
      utimesSync(path, t, t)
    },
    names: () => readdirSync(directory).sort(),
    leaveRemoved: (name) => {
      mkdirSync(join(directory, name))
      writeFileSync(join(directory, name, "00000000000000000000.seg"), new Uint8Array(100))
    }
  }))

const memoryBackend = (disk: MemoryDisk): Effect.Effect<Backend> =>
  Effect.map(SegmentsMemoryLayers.makeMemory(disk, "/data"), (segments) => ({
    segments,
    files: (stream) => [...disk.files.keys()].filter((p) => p.startsWith(`/data/${stream}/`)).sort(),
    bytes: (path) => disk.files.get(path)!.data.slice(0, disk.files.get(path)!.size),
    setBytes: (path, bytes) => {
      const f = disk.files.get(path)!
      f.data = bytes.slice()
      f.size = bytes.length
      f.syncedSize = bytes.length
    },
    age: (path, ms) => {
      disk.files.get(path)!.modifiedAt -= ms
    },
    names: () =>
      [...new Set([...disk.dirs, ...disk.files.keys()].filter((p) => dirname(p) === "/data").map((p) => basename(p)))]
        .sort(),
    leaveRemoved: (name) => {
      disk.dirs.add(`/data/${name}`)
      disk.files.set(`/data/${name}/00000000000000000000.seg`, {
        data: new Uint8Array(100),
        size: 100,
        syncedSize: 100,
        modifiedAt: disk.clock
      })
    }
  }))

const backends: ReadonlyArray<{ readonly label: string; readonly make: Effect.Effect<Backend, never, Scope.Scope> }> = [
  { label: "local disk", make: Effect.flatMap(segmentsDir, liveBackend) },
  { label: "in-process disk", make: Effect.suspend(() => memoryBackend(makeMemoryDisk())) }
]

/** Record i: `size` bytes, each (i * 7 + k) & 255, so any misplaced or damaged byte shows. */
const record = (i: number, size = 40 + (i % 13) * 8) => Uint8Array.from({ length: size }, (_, k) => (i * 7 + k) & 255)

/** Opens the stream in its own scope, runs `f`, and closes it (the writer drains and the files close). */
const withLog = <A, E>(
  segments: SegmentsShape,
  stream: string,
  options: SegmentLogOptions,
  f: (log: SegmentLog) => Effect.Effect<A, E>
) => Effect.scoped(Effect.flatMap(segments.open(stream, options), f))

const appendAll = (log: SegmentLog, from: number, to: number) =>
  Effect.gen(function*() {
    for (let i = from; i < to; i++) expect(yield* log.append(record(i), 5_000)).toBe(i)
    return yield* log.awaitDurable(to, 5_000)
  })

const readAll = (log: SegmentLog, from = log.first()) =>
  Effect.gen(function*() {
    const got: Array<[number, Uint8Array]> = []
    yield* log.read(from, (i, bytes) => {
      got.push([i, bytes.slice()])
    })
    return got
  })

const expectRecords = (got: ReadonlyArray<[number, Uint8Array]>, from: number, to: number, size?: number) => {
  expect(got.map(([i]) => i)).toEqual(Array.from({ length: to - from }, (_, k) => from + k))
  // Compared as bytes (a deep equality per element costs seconds over a thousand records): the indices that differ.
  expect(got.filter(([i, bytes]) => Buffer.compare(bytes, record(i, size)) !== 0).map(([i]) => i)).toEqual([])
}

/** Collects what the effect logs. */
const logged = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const lines: Array<string> = []
    const logger = Logger.make(({ message }) =>
      lines.push(Array.isArray(message) ? message.join(" ") : String(message))
    )
    const result = yield* Effect.either(effect.pipe(Effect.provide(Logger.replace(Logger.defaultLogger, logger))))
    return { result, lines }
  })

/** Byte offset of record k in a segment whose records are record(base)…, as written. */
const offsetOf = (base: number, k: number) => {
  let at = 0
  for (let i = base; i < base + k; i++) at += recordBytes(record(i).length)
  return at
}

for (const backend of backends) {
  describe(`Segments contract: ${backend.label}`, () => {
    it.scopedLive("an append after the stream's scope closed is a typed error, never a silent drop", () =>
      Effect.gen(function*() {
        const b = yield* backend.make
        const log = yield* Effect.scoped(b.segments.open("after-close", {}))
        expect(log.tryAppend(record(0, 16))).toMatchObject({ _tag: "SegmentIoError", code: "ECLOSED" })
      }))

    it.scopedLive("a removed stream leaves the names at once and its files soon after; opened again it starts empty", () =>
      Effect.gen(function*() {
        const b = yield* backend.make
        yield* withLog(b.segments, "topic-gone", { segmentBytes: 1024 }, (log) => appendAll(log, 0, 30))
        yield* withLog(b.segments, "topic-kept", {}, (log) => appendAll(log, 0, 3))
        expect(yield* b.segments.remove("topic-gone")).toBe(true)
        expect(yield* b.segments.streams()).toEqual(["topic-kept"])
        expect(yield* b.segments.remove("topic-gone")).toBe(false)
        expect(yield* b.segments.remove("not a stream name")).toBe(false)
        // Its files go after the call: nothing but the kept stream is left once they did (at most 10 s).
        for (let n = 0; n < 2_000 && b.names().length > 1; n++) yield* Effect.sleep(5)
        expect(b.names()).toEqual(["topic-kept"])
        yield* withLog(b.segments, "topic-gone", {}, (log) =>
          Effect.gen(function*() {
            expect(log.recovery.records).toBe(0)
            expect(yield* readAll(log)).toEqual([])
          }))
        yield* withLog(
          b.segments,
          "topic-kept",
          {},
          (log) => Effect.map(readAll(log), (got) => expectRecords(got, 0, 3))
        )
      }))

    it.scopedLive("what a removal interrupted by a crash left is no stream, and the sweep deletes it", () =>
      Effect.gen(function*() {
        const b = yield* backend.make
        yield* withLog(b.segments, "topic-kept", {}, (log) => appendAll(log, 0, 3))
        b.leaveRemoved(".removed-topic-gone-x1")
        expect(yield* b.segments.streams()).toEqual(["topic-kept"])
        expect(yield* b.segments.sweepRemoved()).toBe(1)
        expect(b.names()).toEqual(["topic-kept"])
        expect(yield* b.segments.sweepRemoved()).toBe(0)
      }))

    it.scopedLive("records come back in order, across segment rolls and after reopening", () =>
      Effect.gen(function*() {
        const b = yield* backend.make
        const options = { segmentBytes: 1024 }
        yield* withLog(b.segments, "orders.b0", options, (log) =>
          Effect.gen(function*() {
            expect(log.recovery).toEqual({ records: 0, cutBytes: 0, segments: 1 })
            expect(yield* appendAll(log, 0, 100)).toBe(100)
            expectRecords(yield* readAll(log), 0, 100)
            expectRecords(yield* readAll(log, 57), 57, 100)
            // Reading in pieces (stopping after every 7th record) gives each record once.
            const pieces: Array<[number, Uint8Array]> = []
            for (let from = 0; from < 100;) {
              let taken = 0
              from = yield* log.read(from, (i, bytes) => {
                pieces.push([i, bytes.slice()])
                return ++taken < 7
              })
            }
            expectRecords(pieces, 0, 100)
          }))
        const files = b.files("orders.b0")
        expect(files.length).toBeGreaterThan(5)
        for (const f of files) expect(b.bytes(f).length).toBeLessThanOrEqual(1024)
        yield* withLog(b.segments, "orders.b0", options, (log) =>
          Effect.gen(function*() {
            expect(log.recovery).toMatchObject({ records: 100, cutBytes: 0, segments: files.length })
            expect(yield* appendAll(log, 100, 130)).toBe(130)
            expectRecords(yield* readAll(log), 0, 130)
          }))
        expect(yield* b.segments.streams()).toEqual(["orders.b0"])
      }))

    it.scopedLive("one fdatasync covers every append made while the writer was busy (group commit)", () =>
      Effect.gen(function*() {
        const b = yield* backend.make
        yield* withLog(b.segments, "g", {}, (log) =>
          Effect.gen(function*() {
            // Appends in one synchronous run: the writer sees them all at once.
            const indexes = yield* Effect.sync(() =>
              Array.from({ length: 500 }, (_, i) => log.tryAppend([record(i).subarray(0, 8), record(i).subarray(8)]))
            )
            expect(indexes).toEqual(Array.from({ length: 500 }, (_, i) => i))
            expect(log.durable()).toBe(0)
            yield* log.awaitDurable(500, 5_000)
            expect(log.syncs()).toBe(1)
            let bytes = 0
            for (let i = 0; i < 500; i++) bytes += recordBytes(record(i).length)
            expect(log.syncedBytes()).toBe(bytes)
            expectRecords(yield* readAll(log), 0, 500)
          }))
      }))

    it.scopedLive("a torn tail (a cut record, a damaged last record, zeros) is cut at the last intact record with a logged count", () =>
      Effect.gen(function*() {
        const b = yield* backend.make
        const tears: ReadonlyArray<[string, (bytes: Uint8Array) => Uint8Array]> = [
          ["cut mid-record", (bytes) => bytes.subarray(0, bytes.length - 13)],
          ["last record damaged", (bytes) => {
            const copy = bytes.slice()
            copy[copy.length - 20]! ^= 0x40
            return copy
          }],
          ["zeros after the last record", (bytes) => {
            const copy = new Uint8Array(bytes.length + 4096)
            copy.set(bytes)
            return copy
          }]
        ]
        for (const [i, [label, tear]] of tears.entries()) {
          const stream = `torn${i}`
          yield* withLog(b.segments, stream, {}, (log) => appendAll(log, 0, 10))
          const [file] = b.files(stream)
          const before = b.bytes(file!)
          b.setBytes(file!, tear(before))
          const damagedTail = label === "zeros after the last record" ? 10 : 9
          const { result, lines } = yield* logged(withLog(b.segments, stream, {}, (log) =>
            Effect.gen(function*() {
              expect(log.recovery.records, label).toBe(damagedTail)
              // Appending continues right after the last intact record.
              yield* appendAll(log, damagedTail, 12)
              expectRecords(yield* readAll(log), 0, 12)
              return log.recovery.cutBytes
            })))
          expect(result._tag, label).toBe("Right")
          const cut = result._tag === "Right" ? result.right : -1
          expect(cut, label).toBe(label === "zeros after the last record" ? 4096 : tear(before).length - offsetOf(0, 9))
          expect(lines.some((l) => l.includes(`cut a torn tail of ${cut} bytes`) && l.includes(file!)), label).toBe(
            true
          )
        }
      }))

    it.scopedLive("a damaged record with intact records after it is SegmentCorrupt naming the file and byte offset", () =>
      Effect.gen(function*() {
        const b = yield* backend.make
        yield* withLog(b.segments, "mid", {}, (log) => appendAll(log, 0, 10))
        const [file] = b.files("mid")
        const bytes = b.bytes(file!)
        bytes[offsetOf(0, 4) + 12]! ^= 1
        b.setBytes(file!, bytes)
        const error = yield* Effect.flip(withLog(b.segments, "mid", {}, () => Effect.void))
        expect(error).toMatchObject({ _tag: "SegmentCorrupt", file: file!, offset: offsetOf(0, 4) })
        expect(error.message).toContain(`${file!} is corrupt at byte ${offsetOf(0, 4)}`)
        // Nothing was cut: the file is as it was.
        expect(b.bytes(file!)).toEqual(bytes)

        // In a segment that is not the last one, even damage at its very end is corruption: it was synced before the next began.
        yield* withLog(b.segments, "early", { segmentBytes: 512 }, (log) => appendAll(log, 0, 40))
        const files = b.files("early")
        const second = b.bytes(files[1]!)
        b.setBytes(files[1]!, second.subarray(0, second.length - 3))
        expect(yield* Effect.flip(withLog(b.segments, "early", { segmentBytes: 512 }, () => Effect.void)))
          .toMatchObject({
            _tag: "SegmentCorrupt",
            file: files[1]!
          })
      }))

    it.scopedLive("scanHeaders gives each record's first bytes, length and position, checking the files' structure, not the checksums; a read starts at such a position", () =>
      Effect.gen(function*() {
        const b = yield* backend.make
        // 8 bytes to 24 KiB: header reads that hold many records, and ones that hold one.
        const sizeOf = (i: number) => (i % 10 === 0 ? 24_000 + i * 8 : 8 + (i % 7) * 8)
        const options = { segmentBytes: 64 << 10, verifyClosedSegments: false }
        yield* withLog(b.segments, "hdr", options, (log) =>
          Effect.gen(function*() {
            for (let i = 0; i < 300; i++) yield* log.append(record(i, sizeOf(i)), 5_000)
            yield* log.awaitDurable(300, 5_000)
          }))
        const files = b.files("hdr")
        expect(files.length).toBeGreaterThan(5)
        const scan = (log: SegmentLog, from: number, headerBytes: number, until = Number.POSITIVE_INFINITY) =>
          Effect.gen(function*() {
            const seen: Array<{ i: number; header: Uint8Array; length: number; position: RecordPosition }> = []
            const next = yield* log.scanHeaders(from, headerBytes, (i, header, length, position) => {
              seen.push({ i, header: header.slice(), length, position })
              return i < until
            })
            return { next, seen }
          })
        const fileOf = (position: RecordPosition) =>
          files.find((f) => f.endsWith(`${String(position.segment).padStart(20, "0")}.seg`))!
        const { seen } = yield* withLog(b.segments, "hdr", options, (log) =>
          Effect.gen(function*() {
            const all = yield* scan(log, 0, 16)
            expect(all.next).toBe(300)
            expect(all.seen.map((r) => r.i)).toEqual(Array.from({ length: 300 }, (_, i) => i))
            for (const r of all.seen) {
              expect(r.length).toBe(sizeOf(r.i))
              expect(r.header).toEqual(record(r.i, sizeOf(r.i)).subarray(0, 16))
            }
            // From the middle, stopping after 60.
            const some = yield* scan(log, 57, 8, 60)
            expect([some.next, some.seen.map((r) => r.i)]).toEqual([61, [57, 58, 59, 60]])
            // A read from a record's position reads it and on, into the next segments.
            const got: Array<[number, Uint8Array]> = []
            const at = all.seen[123]!
            expect(yield* log.read(123, (i, bytes) => void got.push([i, bytes.slice()]), at.position)).toBe(300)
            expect(got.map(([i]) => i)).toEqual(Array.from({ length: 177 }, (_, k) => 123 + k))
            for (const [i, bytes] of got) expect(bytes).toEqual(record(i, sizeOf(i)))
            return all
          }))

        // Damage past the header of a record in a closed segment: the scan does not read it; a read does.
        const victim = seen.find((r) =>
          r.position.segment > 0 && r.length >= 64 && fileOf(r.position) !== files[files.length - 1]
        )!
        const file = fileOf(victim.position)
        const bytes = b.bytes(file)
        bytes[victim.position.offset + 8 + 40]! ^= 1
        b.setBytes(file, bytes)
        yield* withLog(b.segments, "hdr", options, (log) =>
          Effect.gen(function*() {
            expect((yield* scan(log, 0, 16)).next).toBe(300)
            expect(yield* Effect.flip(log.read(victim.i, () => undefined, victim.position))).toMatchObject({
              _tag: "SegmentCorrupt",
              file,
              offset: victim.position.offset
            })
            // From the record after it, at its position: the damage before it in the segment is not read.
            const after = seen[victim.i + 1]!
            expect(yield* log.read(after.i, (i) => i < after.i, after.position)).toBe(after.i + 1)
          }))
        // Its length made larger than the segment: the scan stops there, naming file and byte.
        new DataView(bytes.buffer, bytes.byteOffset).setUint32(victim.position.offset, 1 << 20, true)
        b.setBytes(file, bytes)
        yield* withLog(b.segments, "hdr", options, (log) =>
          Effect.gen(function*() {
            const error = yield* Effect.flip(scan(log, 0, 16))
            expect(error).toMatchObject({ _tag: "SegmentCorrupt", file, offset: victim.position.offset })
            expect(error.message).toContain(`a record of ${1 << 20} bytes runs past the end of the segment`)
          }))
        // A closed segment cut short by a record: the count its successor's name gives is not met.
        b.setBytes(file, bytes.subarray(0, victim.position.offset))
        yield* withLog(b.segments, "hdr", options, (log) =>
          Effect.gen(function*() {
            const error = yield* Effect.flip(scan(log, 0, 16))
            expect(error).toMatchObject({ _tag: "SegmentCorrupt", file, offset: victim.position.offset })
            expect(error.message).toContain("records, but the next segment begins at record")
          }))
      }))

    it.scopedLive("with indexBytes, a closed segment's header index is read instead of the segment; one that is not sound is read around; retention deletes it", () =>
      Effect.gen(function*() {
        const b = yield* backend.make
        const options = { segmentBytes: 4096, indexBytes: 16, verifyClosedSegments: false }
        yield* withLog(b.segments, "idx", options, (log) => appendAll(log, 0, 200))
        const segs = b.files("idx").filter((f) => f.endsWith(".seg"))
        // Every segment but the one being written has its index.
        expect(b.files("idx").filter((f) => f.endsWith(".idx"))).toEqual(
          segs.slice(0, -1).map((f) => f.replace(/\.seg$/, ".idx"))
        )
        const headers = (headerBytes: number) =>
          withLog(b.segments, "idx", options, (log) =>
            Effect.gen(function*() {
              const seen: Array<[number, Uint8Array, number]> = []
              expect(
                yield* log.scanHeaders(
                  0,
                  headerBytes,
                  (i, header, length) => void seen.push([i, header.slice(), length])
                )
              ).toBe(200)
              return seen
            }))
        const expected = (headerBytes: number) =>
          Array.from({ length: 200 }, (_, i) => [i, record(i).subarray(0, headerBytes), record(i).length])
        expect(yield* headers(16)).toEqual(expected(16))
        // The first bytes of a record in the second segment changed behind the index's back: the index's copy is what the scan gives.
        const base = Number(/(\d{20})\.seg$/.exec(segs[1]!)![1])
        const seg = b.bytes(segs[1]!)
        seg[8 + 3]! ^= 0xff
        b.setBytes(segs[1]!, seg)
        expect((yield* headers(16))[base]![1]).toEqual(record(base).subarray(0, 16))
        // More bytes than the index holds: the segment is read.
        expect((yield* headers(24))[base]![1][3]).toBe(record(base)[3]! ^ 0xff)
        // An index whose checksum fails is read around, as is one counting other records.
        const idx = segs[1]!.replace(/\.seg$/, ".idx")
        const sound = b.bytes(idx)
        const damaged = sound.slice()
        damaged[20]! ^= 1
        b.setBytes(idx, damaged)
        expect((yield* headers(16))[base]![1][3]).toBe(record(base)[3]! ^ 0xff)
        b.setBytes(idx, sound)
        expect((yield* headers(16))[base]![1]).toEqual(record(base).subarray(0, 16))
        b.setBytes(segs[1]!, seg.subarray(0, offsetOf(base, 3)))
        const short = yield* Effect.either(headers(16))
        expect(short._tag === "Left" ? short.left : "scanned whole").toMatchObject({
          _tag: "SegmentCorrupt",
          file: segs[1]!
        })

        // Retention takes a segment's index with it.
        yield* withLog(
          b.segments,
          "idx-kept",
          { ...options, retention: { maxBytes: 3 * 4096 } },
          (log) => appendAll(log, 0, 200)
        )
        const kept = b.files("idx-kept")
        const bases = (ext: string) => kept.filter((f) => f.endsWith(ext)).map((f) => f.slice(-24, -4))
        expect(bases(".seg").length).toBeLessThan(segs.length)
        expect(bases(".idx")).toEqual(bases(".seg").slice(0, -1))
      }))

    it.scopedLive("retention deletes whole old segments by size and by age; reading before them is SegmentOutOfRange", () =>
      Effect.gen(function*() {
        const b = yield* backend.make
        yield* withLog(
          b.segments,
          "size",
          { segmentBytes: 1024, retention: { maxBytes: 3000 } },
          (log) =>
            Effect.gen(function*() {
              yield* appendAll(log, 0, 200)
              const files = b.files("size")
              let held = 0
              for (const f of files) held += b.bytes(f).length
              expect(held).toBeLessThanOrEqual(3000 + 1024)
              expect(log.first()).toBeGreaterThan(100)
              expect(Number(files[0]!.slice(-24, -4))).toBe(log.first())
              expectRecords(yield* readAll(log), log.first(), 200)
              expect(yield* Effect.flip(log.read(0, () => undefined))).toMatchObject({
                _tag: "SegmentOutOfRange",
                from: 0,
                first: log.first()
              })
            })
        )

        const options = { segmentBytes: 1024, retention: { maxAgeMs: 60_000 } }
        yield* withLog(b.segments, "age", options, (log) => appendAll(log, 0, 60))
        const files = b.files("age")
        expect(files.length).toBeGreaterThan(3)
        b.age(files[0]!, 120_000)
        b.age(files[1]!, 120_000)
        yield* withLog(b.segments, "age", options, (log) =>
          Effect.gen(function*() {
            expect(yield* log.retain()).toBe(2)
            expect(log.first()).toBe(Number(files[2]!.slice(-24, -4)))
            expectRecords(yield* readAll(log), log.first(), 60)
          }))
        expect(b.files("age")).toEqual(files.slice(2))
      }))

    it.scopedLive("one opener per stream: a second open while it is open is StreamLocked naming the holder; after closing it opens", () =>
      Effect.gen(function*() {
        const b = yield* backend.make
        yield* withLog(b.segments, "locked", {}, (log) =>
          Effect.gen(function*() {
            yield* appendAll(log, 0, 3)
            const error = yield* Effect.flip(withLog(b.segments, "locked", {}, () => Effect.void))
            expect(error).toMatchObject({ _tag: "StreamLocked", stream: "locked", pid: process.pid })
            // What a user given another head's data directory reads: who holds it and what to do.
            expect(error.message).toMatch(
              new RegExp(`is open in process ${process.pid} .*: stop it, or give this one a data directory of its own`)
            )
            // The holder was not disturbed.
            yield* appendAll(log, 3, 5)
          }))
        yield* withLog(b.segments, "locked", {}, (log) => Effect.sync(() => expect(log.recovery.records).toBe(5)))
      }))

    it.scopedLive("a stream name that could leave the data directory is InvalidStreamName", () =>
      Effect.gen(function*() {
        const b = yield* backend.make
        for (const stream of ["../x", "a/b", "", ".hidden"]) {
          expect(yield* Effect.flip(withLog(b.segments, stream, {}, () => Effect.void))).toMatchObject({
            _tag: "InvalidStreamName",
            stream
          })
        }
      }))
  })
}

describe("Segments on the local disk", () => {
  it.scopedLive("a lock left by a process that died is taken over", () =>
    Effect.gen(function*() {
      const directory = yield* segmentsDir
      const { segments } = yield* liveBackend(directory)
      const dead = spawnSync(process.execPath, ["-e", ""]).pid!
      mkdirSync(join(directory, "s"))
      writeFileSync(join(directory, "s", "LOCK"), `${dead}\n`)
      yield* withLog(segments, "s", {}, (log) => appendAll(log, 0, 2))
      expect(existsSync(join(directory, "s", "LOCK"))).toBe(false)
    }))

  it.scopedLive("a lock held by a zombie (killed, not yet reaped) is taken over, as the head's takeover counts it gone", () =>
    Effect.gen(function*() {
      const directory = yield* segmentsDir
      const { segments } = yield* liveBackend(directory)
      // A child that exits after its parent became one that never reaps it (sh exec'd into sleep): a zombie while sleep runs.
      const parent = yield* Effect.acquireRelease(
        Effect.sync(() =>
          spawn("sh", ["-c", "sleep 1 & echo $!; exec sleep 60"], { stdio: ["ignore", "pipe", "ignore"] })
        ),
        (child) => Effect.sync(() => child.kill("SIGKILL"))
      )
      const zombie = yield* Effect.async<number>((resume) => {
        parent.stdout!.once("data", (chunk: Buffer) => resume(Effect.succeed(Number(chunk.toString().trim()))))
      }).pipe(
        Effect.timeoutFail({
          duration: 5_000,
          onTimeout: () => new Error("the zombie's pid was not printed within 5 s")
        })
      )
      const state = () => {
        const stat = readFileSync(`/proc/${zombie}/stat`, "utf8")
        return stat[stat.lastIndexOf(")") + 2]
      }
      for (let n = 0; n < 5_000 && state() !== "Z"; n++) yield* Effect.sleep(1)
      expect(state()).toBe("Z")
      mkdirSync(join(directory, "s"))
      writeFileSync(join(directory, "s", "LOCK"), `${zombie}\n`)
      yield* withLog(segments, "s", {}, (log) => appendAll(log, 0, 2))
      expect(existsSync(join(directory, "s", "LOCK"))).toBe(false)
    }))

  it.scopedLive("a lock whose pid a later process now has (another start time) is taken over; one naming a live holder's start time is not", () =>
    Effect.gen(function*() {
      const directory = yield* segmentsDir
      const { segments } = yield* liveBackend(directory)
      const holder = process.ppid
      const tag = startTagOf(holder)
      mkdirSync(join(directory, "s"))
      writeFileSync(join(directory, "s", "LOCK"), `${holder} ${tag}\n`)
      expect(yield* Effect.flip(withLog(segments, "s", {}, () => Effect.void))).toMatchObject({
        _tag: "StreamLocked",
        pid: holder
      })
      writeFileSync(join(directory, "s", "LOCK"), `${holder} ${laterStartTag(tag)}\n`)
      yield* withLog(segments, "s", {}, (log) => appendAll(log, 0, 2))
      expect(existsSync(join(directory, "s", "LOCK"))).toBe(false)
    }))

  it.scopedLive("a lock naming this process's pid that this process does not hold (a restarted container's pid 1) is taken over", () =>
    Effect.gen(function*() {
      const directory = yield* segmentsDir
      const { segments } = yield* liveBackend(directory)
      mkdirSync(join(directory, "s"))
      writeFileSync(join(directory, "s", "LOCK"), `${process.pid}\n`)
      yield* withLog(segments, "s", {}, (log) => appendAll(log, 0, 2))
      expect(existsSync(join(directory, "s", "LOCK"))).toBe(false)
      expect(readdirSync(join(directory, "s")).filter((f) => f.startsWith("LOCK"))).toEqual([])
    }))
})

describe("Segments on the in-process disk", () => {
  it.scopedLive("the durable frontier moves only after the fdatasync covering it returned; a crash keeps exactly what was durable", () =>
    Effect.gen(function*() {
      const disk = makeMemoryDisk()
      const { segments } = yield* memoryBackend(disk)
      const seen: Array<{ readonly synced: number; readonly durable: number }> = []
      yield* withLog(segments, "s", {}, (log) =>
        Effect.gen(function*() {
          disk.onSync = () => seen.push({ synced: disk.datasyncs, durable: log.durable() })
          const frontiers: Array<number> = []
          log.onDurable((d) => frontiers.push(d))
          for (let i = 0; i < 5; i++) {
            yield* log.append(record(i), 5_000)
            yield* log.awaitDurable(i + 1, 5_000)
          }
          yield* Effect.sync(() => [5, 6, 7].forEach((i) => log.tryAppend(record(i))))
          yield* log.awaitDurable(8, 5_000)
          // When each sync returned, the frontier still showed only the records before it.
          expect(seen).toEqual([1, 2, 3, 4, 5, 6].map((n) => ({ synced: n, durable: [0, 1, 2, 3, 4, 5][n - 1] })))
          expect(frontiers).toEqual([1, 2, 3, 4, 5, 8])
          disk.onSync = undefined
          // Record 8 is written but its sync is held: the crash comes first.
          let release = () => {}
          disk.gate = new Promise((resolve) => (release = resolve))
          yield* Effect.sync(() => log.tryAppend(record(8)))
          const file = disk.files.get([...disk.files.keys()][0]!)!
          while (file.size === file.syncedSize) yield* Effect.sleep(1)
          crash(disk)
          disk.gate = undefined
          release()
          expect(yield* Effect.flip(log.awaitDurable(9, 5_000))).toMatchObject({ _tag: "SegmentIoError", code: "EIO" })
          expect(log.durable()).toBe(8)
        }))
      restart(disk)
      yield* withLog(segments, "s", {}, (log) =>
        Effect.gen(function*() {
          expect(log.recovery).toEqual({ records: 8, cutBytes: 0, segments: 1 })
          expectRecords(yield* readAll(log), 0, 8)
        }))
    }))

  it.scopedLive("a full disk is DiskFull naming the directory; every record durable before it stays readable", () =>
    Effect.gen(function*() {
      const disk = makeMemoryDisk({ capacity: 20_000 })
      const { segments } = yield* memoryBackend(disk)
      const durable = yield* withLog(segments, "full", {}, (log) => fillUntilFull(log, "/data"))
      disk.capacity = Number.POSITIVE_INFINITY
      yield* withLog(segments, "full", {}, (log) =>
        Effect.gen(function*() {
          expect(log.recovery).toMatchObject({ records: durable, cutBytes: 0 })
          expectRecords(yield* readAll(log), 0, durable, 1000)
        }))
    }))
})

/** Appends 1000-byte records in groups until the writer fails; checks the failure and returns the durable count. */
const fillUntilFull = (log: SegmentLog, directory: string) =>
  Effect.gen(function*() {
    let i = 0
    let lastDurable = 0
    for (;;) {
      const r = log.tryAppend(record(i, 1000))
      if (typeof r !== "number") {
        expect(r).toMatchObject({ _tag: "DiskFull", directory })
        break
      }
      i++
      if (i % 4 === 0) {
        const waited = yield* Effect.either(log.awaitDurable(i, 5_000))
        if (waited._tag === "Left") {
          expect(waited.left).toMatchObject({ _tag: "DiskFull", directory })
          expect(waited.left.message).toContain(directory)
          break
        }
        lastDurable = waited.right
      }
    }
    expect(log.durable()).toBe(lastDurable)
    expect(lastDurable).toBeGreaterThan(0)
    // Later appends and waits fail the same way: nothing is taken that cannot be kept.
    expect(log.tryAppend(record(0, 1000))).toMatchObject({ _tag: "DiskFull" })
    expect(yield* Effect.flip(log.awaitDurable(lastDurable + 1, 1_000))).toMatchObject({ _tag: "DiskFull" })
    // The durable records are intact now, before any reopening.
    expectRecords(yield* readAll(log), 0, lastDurable, 1000)
    return lastDurable
  })

describe("Segments on a full disk", () => {
  it.scopedLive("a 1 MiB tmpfs that fills up is DiskFull naming the directory; every durable record stays readable after reopening", () =>
    Effect.gen(function*() {
      const dir = yield* smallTmpfs("1m")
      const directory = join(dir, "data")
      mkdirSync(directory)
      const { segments } = yield* liveBackend(directory)
      const durable = yield* withLog(segments, "full", {}, (log) => fillUntilFull(log, directory))
      yield* withLog(segments, "full", {}, (log) =>
        Effect.gen(function*() {
          expect(log.recovery).toMatchObject({ records: durable, cutBytes: 0 })
          expectRecords(yield* readAll(log), 0, durable, 1000)
        }))
    }))
})
