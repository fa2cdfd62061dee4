/**
 * A topic's writer lanes: each writer (a broker, a local publisher: a writer slot of the region)
 * gets its lane of a topic — broker line, PBR and Blog (TopicShape.ts) — from the head, when it
 * first writes there; a topic that is never written costs its records alone.
 *
 * The heap has one writer, the head (docs/region.md), so a writer asks it: it names the topic in
 * its owner line and counts the request (`laneRequest`, its commit word), rings the doorbell the
 * head named in the lane answers, and waits (bounded) for the head to count the request answered.
 * The head allocates the lane as another extent of the topic's directory object (freed with the
 * topic), stores its page in the topic's lane table and then counts the lanes (a reader that sees
 * the count move finds the page), answers, and rings the writer. A lane never moves while its
 * topic lives: a writer slot's next owner (a restarted broker) finds it and carries on in it.
 */
import { Data, Effect, type Scope } from "effect"
import { BatchRejected } from "../../services/log/Appender.js"
import { TopicDeleted, type TopicInfo } from "../../services/log/Topics.js"
import { type CxlMemoryShape, LINE_BYTES } from "../../services/region/CxlMemory.js"
import {
  type DirectoryWriterShape,
  type NotDirectoryWriter,
  ObjectDeleted,
  type RegionFull
} from "../../services/region/Directory.js"
import type { DoorbellShape } from "../../services/region/Doorbell.js"
import { alignedDelayMs } from "../region/Cadence.js"
import { regionFullNow } from "../region/DirectorySpace.js"
import { DirectoryTable } from "../region/DirectoryTable.js"
import { unsafeMakeFifoLock } from "../region/FifoLock.js"
import type { LogArea } from "./Layout.js"
import { LaneAnswer, LaneAnswers, LaneTable } from "./Records.js"
import { LaneAnswersView, LaneTableView, ParticipantLineView } from "./RecordViews.js"

const PAGE = 4096

/** One view per region: the lane table is read for every topic in every sequencer round, so reading it allocates nothing. */
const laneTableViews = new WeakMap<CxlMemoryShape, LaneTableView>()
const laneAnswersViews = new WeakMap<CxlMemoryShape, LaneAnswersView>()
const laneTableView = (region: CxlMemoryShape): LaneTableView => {
  let view = laneTableViews.get(region)
  if (view === undefined) laneTableViews.set(region, view = new LaneTableView(region))
  return view
}

/**
 * Why a writer has no lane in a topic: the heap has no room for it (`regionFull`: deleting,
 * trimming or a larger heap cures it), its lane table is corrupt, or the head did not answer.
 */
export class LaneUnavailable extends Data.TaggedError("LaneUnavailable")<{
  readonly topic: string
  readonly broker: number
  readonly reason: string
  readonly regionFull: boolean
}> {
  override get message() {
    return `writer slot ${this.broker} of the region (a broker or a local publisher) has no lane in topic ${this.topic}: ${this.reason}`
  }
}

/** The batch a writer without a lane cannot append, refused for that reason. */
export const laneRejected = (e: LaneUnavailable): BatchRejected =>
  new BatchRejected({ topic: e.topic, reason: e.message, ...(e.regionFull ? { regionFull: true as const } : {}) })

/**
 * Writer slot `broker`'s lane of topic `t` as the lane table says now, recorded in this process's
 * place of the topic: its offset, 0 for none, -1 when the table names bytes that cannot be a lane
 * of this topic (a corrupt region is never trusted).
 */
export const readLane = (region: CxlMemoryShape, area: LogArea, t: number, broker: number): number => {
  const place = area.placeOf(t)
  const known = place.lanes[broker]!
  if (known !== 0) return known
  const table = area.laneTable(t)
  region.invalidate(table + LaneTable.pages + broker * 4, 4)
  const page = laneTableView(region).page(table, broker)
  if (page === 0) return 0
  const offset = page * PAGE
  const { heap, config } = area.directory
  const { laneBytes } = place.shape
  if (!(offset >= heap && offset + laneBytes <= heap + config.heapBytes && (offset - heap) % laneBytes === 0)) return -1
  place.lanes[broker] = offset
  return offset
}

/** How many lanes the topic has (the count moves after each new lane's page is stored). */
export const laneCount = (region: CxlMemoryShape, area: LogArea, t: number): number => {
  const table = area.laneTable(t)
  region.invalidate(table, LINE_BYTES)
  return laneTableView(region).lanes(table)
}

/** Topics granted a lane by this process, for its sequencer (`takeGranted`); bounded: past it, the sequencer looks at every parked topic. */
const grantedHere = new WeakMap<CxlMemoryShape, Array<number>>()
const GRANTED_KEPT = 4096

const noteGranted = (region: CxlMemoryShape, t: number): void => {
  let ids = grantedHere.get(region)
  if (ids === undefined) grantedHere.set(region, ids = [])
  if (ids.length >= GRANTED_KEPT) ids.length = 0
  ids.push(t)
}

/** The topics this process granted a lane of since the last call. */
export const takeGranted = (region: CxlMemoryShape): ReadonlyArray<number> => grantedHere.get(region)?.splice(0) ?? []

/** How many lanes the head has granted, of any topic (a word that moves after each new lane is stored). */
export const lanesGranted = (region: CxlMemoryShape, area: LogArea): number => {
  region.invalidate(area.laneAnswers, LINE_BYTES)
  let view = laneAnswersViews.get(region)
  if (view === undefined) laneAnswersViews.set(region, view = new LaneAnswersView(region))
  return view.granted(area.laneAnswers)
}

/** The writer slots with a lane in the topic, read afresh; a lane that reads corrupt is left out. */
export const laneSlots = (region: CxlMemoryShape, area: LogArea, t: number): Array<number> => {
  const slots: Array<number> = []
  for (let b = 0; b < area.config.maxBrokers; b++) if (readLane(region, area, t, b) > 0) slots.push(b)
  return slots
}

/**
 * The lanes a process follows in one topic (the sequencer's scan, an ACK tracker's brokers): the
 * slot list, read again only when the topic's lane count moved (one load per look).
 */
export const followLanes = (region: CxlMemoryShape, area: LogArea, t: number) => {
  let seen = -1
  let slots: ReadonlyArray<number> = []
  return (): ReadonlyArray<number> => {
    const count = laneCount(region, area, t)
    if (count !== seen) {
      slots = laneSlots(region, area, t)
      // Counted only once all are read: a lane stored but not yet counted is read at the next move.
      seen = count
    }
    return slots
  }
}

/** How long a writer waits for the head's answer unless told otherwise. */
export const DEFAULT_LANE_WAIT_MS = 10_000

/** A writer slot's side: its lane of a topic, known or asked of the head. */
export const laneRequester = (
  region: CxlMemoryShape,
  area: LogArea,
  doorbell: DoorbellShape,
  broker: number,
  waitMs = DEFAULT_LANE_WAIT_MS
) => {
  const owner = area.brokerOwner(broker)
  const owners = new ParticipantLineView(region)
  const answers = new LaneAnswersView(region)
  const at = area.laneAnswers
  // One request at a time: a writer slot has one request word (a FIFO: thousands of topics may wait on it).
  const oneAtATime = unsafeMakeFifoLock()
  const unavailable = (info: TopicInfo, reason: string, regionFull = false) =>
    new LaneUnavailable({ topic: info.name, broker, reason, regionFull })

  const ask = (info: TopicInfo): Effect.Effect<number, LaneUnavailable | TopicDeleted> =>
    Effect.suspend(() => {
      const found = readLane(region, area, info.id, broker)
      if (found !== 0) {
        return found > 0 ? Effect.succeed(found) : Effect.fail(unavailable(info, "its lane table is corrupt"))
      }
      const count = owners.laneRequests(owner) + 1
      owners.request(owner, info.id, info.generation, count)
      region.publish(owner, LINE_BYTES)
      region.invalidate(at, LINE_BYTES)
      const bell = answers.doorbell(at)
      if (bell > 0 && bell % LINE_BYTES === 0 && region.inBounds(bell, LINE_BYTES)) doorbell.ring(bell)
      const answered = () => {
        region.invalidate(at + LaneAnswers.answers + broker * LaneAnswers.bytes, LaneAnswers.bytes)
        return answers.answered(at, broker) === count
      }
      return Effect.flatMap(
        doorbell.await(answered, waitMs),
        (done): Effect.Effect<number, LaneUnavailable | TopicDeleted> => {
          if (!done) {
            return Effect.fail(
              unavailable(info, `the head did not answer its request for one within ${waitMs} ms: is the head running?`)
            )
          }
          const result = answers.result(at, broker)
          if (result === LaneAnswer.topicGone) return Effect.fail(new TopicDeleted({ name: info.name }))
          if (result === LaneAnswer.corrupt) return Effect.fail(unavailable(info, "its lane table is corrupt"))
          if (result === LaneAnswer.regionFull) {
            const { laneBytes } = area.placeOf(info.id).shape
            return Effect.fail(unavailable(info, regionFullNow(region, area.directory, laneBytes).message, true))
          }
          const lane = readLane(region, area, info.id, broker)
          return lane > 0 ? Effect.succeed(lane) : Effect.fail(unavailable(info, "its lane table is corrupt"))
        }
      )
    })

  return {
    /** Writer slot `broker`'s lane of the topic: known, or asked of the head (bounded). */
    lane: (info: TopicInfo): Effect.Effect<number, LaneUnavailable | TopicDeleted> => oneAtATime(ask(info))
  }
}

/**
 * Writer slot `broker`'s lane of `info` (the topic read by this process), allocated if it has none
 * yet (the directory's writer does this: the head): its offset, or 0 when the lane table reads
 * corrupt. A topic's memory is sized for its `writers`; a writer beyond them gets a lane of the
 * same size while the heap has room (its memory then holds more).
 */
export const grantLane = (
  region: CxlMemoryShape,
  area: LogArea,
  writer: DirectoryWriterShape,
  info: TopicInfo,
  broker: number
): Effect.Effect<number, RegionFull | ObjectDeleted | NotDirectoryWriter> =>
  Effect.suspend(() => {
    const t = info.id
    const found = readLane(region, area, t, broker)
    if (found > 0) return Effect.succeed(found)
    const entry = new DirectoryTable(region, area.directory).read(t).entry
    if (entry === undefined || entry.generation !== info.generation) {
      return Effect.fail(new ObjectDeleted({ kind: "topic", name: info.name }))
    }
    const table = area.laneTable(t)
    const lanes = new LaneTableView(region)
    const shape = area.placeOf(t).shape
    if (found < 0) return Effect.succeed(0)
    return Effect.map(writer.allocate(entry, shape.laneBytes), (extent) => {
      lanes.addLane(table, broker, extent.offset / PAGE)
      region.publish(table, LINE_BYTES)
      region.publish(table + LaneTable.pages + broker * 4, 4)
      // Last: a sequencer that sees the count move finds the lane stored.
      noteGranted(region, t)
      new LaneAnswersView(region).countGranted(area.laneAnswers)
      region.publish(area.laneAnswers, LINE_BYTES)
      return readLane(region, area, t, broker)
    })
  })

/** How often the head looks at the requests unrung (a backstop: writers ring it), on the cadence's grid. */
const SERVE_EVERY_MS = 1_000

/**
 * The head's side: answers the writers' lane requests for as long as the scope is open, as the
 * directory's writer (its epoch fences a head that lost its lease: it answers nothing then).
 */
export const serveLanes = (
  region: CxlMemoryShape,
  area: LogArea,
  writer: DirectoryWriterShape,
  doorbell: DoorbellShape,
  readTopic: (t: number) => TopicInfo | undefined
): Effect.Effect<void, never, Scope.Scope> =>
  Effect.gen(function*() {
    const owners = new ParticipantLineView(region)
    const answers = new LaneAnswersView(region)
    const at = area.laneAnswers
    const slots = area.config.maxBrokers
    const pending = () => {
      for (let b = 0; b < slots; b++) {
        const owner = area.brokerOwner(b)
        region.invalidate(owner, LINE_BYTES)
        if (owners.laneRequests(owner) !== answers.answered(at, b)) return true
      }
      return false
    }
    const answer = (b: number, count: number, result: number) => {
      answers.answer(at, b, count, result)
      region.publish(at + LaneAnswers.answers + b * LaneAnswers.bytes, LaneAnswers.bytes)
      const bell = owners.doorbell(area.brokerOwner(b))
      if (bell > 0 && bell % LINE_BYTES === 0 && region.inBounds(bell, LINE_BYTES)) doorbell.ring(bell)
    }
    const serveOne = (b: number): Effect.Effect<void> =>
      Effect.suspend(() => {
        const owner = area.brokerOwner(b)
        const count = owners.laneRequests(owner)
        if (count === answers.answered(at, b)) return Effect.void
        const info = readTopic(owners.laneTopic(owner))
        if (info === undefined || info.generation !== owners.laneGeneration(owner)) {
          return Effect.sync(() => answer(b, count, LaneAnswer.topicGone))
        }
        return grantLane(region, area, writer, info, b).pipe(
          Effect.match({
            onFailure: (e) => {
              // A head fenced out of the directory answers nothing: the head that took over answers.
              if (e._tag !== "NotDirectoryWriter") {
                answer(b, count, e._tag === "RegionFull" ? LaneAnswer.regionFull : LaneAnswer.topicGone)
              }
            },
            onSuccess: (granted) => answer(b, count, granted > 0 ? LaneAnswer.ok : LaneAnswer.corrupt)
          })
        )
      })
    const serveAll = Effect.suspend(() =>
      Effect.forEach(Array.from({ length: slots }, (_, b) => b), serveOne, { discard: true })
    )
    answers.storeDoorbell(at, doorbell.offset)
    region.publish(at, LINE_BYTES)
    yield* Effect.forkScoped(
      Effect.forever(Effect.zipRight(
        Effect.suspend(() => doorbell.await(pending, alignedDelayMs(SERVE_EVERY_MS))),
        serveAll
      ))
    )
  })
