/**
 * `cxlog consume`: a member of a consumer group, on the region's host or (`--brokers`) through a
 * broker, which holds the member for it (docs/consumers.md, "Remote members"). It creates the group when
 * `--topic` names one that does not exist, joins it, and for each message it is given either
 * prints it and acks it, or (`--exec CMD`) runs `sh -c CMD` with the message's value on stdin
 * and acks when the command exits 0, naks it (delivered again, to any member) otherwise (but for a
 * command killed by SIGPIPE: stdout's reader is gone, and the member stops); the
 * commands of every message it holds run at once, and each message's deadline is renewed from
 * the moment it is handed over until it is settled. A message is printed (written out of this
 * process, not just buffered) before it is acked, so a member killed between them has its message
 * printed again elsewhere: at least once, never lost.
 * With an orchestrator (an IPC parent) it reports each message as it gets it (`{ event: "delivered" }`) and
 * what it acked (`{ event: "acked", messages }`).
 */
import { Chunk, Data, Deferred, Effect, Exit, FiberId, FiberSet, identity, Option, Schedule, Stream } from "effect"
import { layerRemote, type RemoteGroupsOptions } from "../../layers/groups/ConsumerGroupsRemote.js"
import { giveBackUnseen } from "../../layers/groups/GroupDelivery.js"
import { groupToJoin } from "../../layers/groups/GroupSpecs.js"
import { groupMember, type RegionAccess } from "../../layers/Roles.js"
import {
  ConsumerGroups,
  type DeadLetterFailed,
  type Delivery,
  type GroupInfo,
  type GroupSpec,
  type InvalidNakDelay
} from "../../services/groups/ConsumerGroups.js"
import { type CommandEnd, commandRunner, endedHow, type RunCommand } from "./ConsumeCommands.js"
import { base64, headersField, putBytes, textOf } from "./PrintTopics.js"
import { report } from "./Report.js"

export interface ConsumeOptions {
  readonly region: RegionAccess
  /** Through these brokers instead of the region in place. */
  readonly remote?: RemoteGroupsOptions
  readonly group: string
  /** With `--topic`: the group to create when it does not exist (and what of it the user asked for, which an existing one must be). */
  readonly spec: { readonly make: GroupSpec; readonly asked: Omit<GroupSpec, "name"> } | undefined
  readonly maxInFlight: number
  readonly exec: string | undefined
  readonly nakDelayMs: number
  readonly limit: number | undefined
  /** Leave once no message came for this long with nothing in hand (undefined: wait for as long as it runs). */
  readonly idleExitMs: number | undefined
  readonly json: boolean
}

/** A key for the orchestrator's events: text, any bytes that are not UTF-8 replaced. */
const decoder = new TextDecoder("utf-8", { ignoreBOM: true })

/**
 * A message as printed: `offset (delivery n) [key] value`, or a JSON object. As `cxlog subscribe`
 * prints them, a key, header value or value that is not UTF-8 is given in base64 (JSON: under
 * `…Base64`), never as text with its bytes replaced.
 */
const line = (d: Delivery, json: boolean): string => {
  if (!json) {
    return `${d.offset}${d.deliveryCount > 1 ? ` (delivery ${d.deliveryCount})` : ""}${
      d.key === undefined ? "" : ` [${textOf(d.key) ?? base64(d.key)}]`
    } ${textOf(d.value) ?? base64(d.value)}`
  }
  const fields: Record<string, unknown> = {
    group: d.group,
    topic: d.topic,
    offset: d.offset,
    deliveryCount: d.deliveryCount,
    timestamp: d.timestamp
  }
  if (d.key !== undefined) putBytes(fields, "key", d.key)
  if (d.headers !== undefined) fields["headers"] = headersField(d.headers)
  putBytes(fields, "value", d.value)
  return JSON.stringify(fields)
}

/** The output closed: nothing printed from here on would be read, so nothing more is acked. */
export class OutputClosed extends Data.TaggedError("OutputClosed")<{ readonly reason: string }> {
  override get message() {
    return `stdout closed (${this.reason}): the messages not printed stay the group's`
  }
}

/**
 * Prints a line and waits until it left this process (handed to the pipe or file): a member
 * killed after its ack has printed the message, not just buffered it.
 */
const print = (text: string): Effect.Effect<void, OutputClosed> =>
  Effect.async<void, OutputClosed>((resume) => {
    process.stdout.write(`${text}\n`, (error) =>
      resume(
        error === null || error === undefined ? Effect.void : Effect.fail(new OutputClosed({ reason: error.message }))
      ))
  })

/** Renews `d`'s deadline every half ackWait, from half an ackWait on, until interrupted: it is being worked on. */
const renewing = (d: Delivery, ackWaitMs: number): Effect.Effect<never> =>
  Effect.zipRight(
    Effect.sleep(ackWaitMs / 2),
    Effect.repeat(d.inProgress, Schedule.spaced(Math.max(1, Math.floor(ackWaitMs / 2))))
  ).pipe(Effect.zipRight(Effect.never))

/** When a message may run: after the one before it of its key (`before`), and what lets the next one run (`done`). */
interface Turn {
  readonly before: Effect.Effect<void>
  readonly done: Effect.Effect<void>
}

const ANY_TIME: Turn = { before: Effect.void, done: Effect.void }

/**
 * Turns in key order: each message's turn is taken when the member takes it (in offset order),
 * so it runs after the one before it of the same key, whatever order the fibers start in. A
 * message without a key, or any outside a byKey group, runs at any time.
 */
const keyTurns = (byKey: boolean) => {
  const last = new Map<string, Deferred.Deferred<void>>()
  return (d: Delivery): Turn => {
    if (!byKey || d.key === undefined) return ANY_TIME
    // latin1: one character per byte, so two keys are one string only if their bytes are equal.
    const key = Buffer.from(d.key.buffer, d.key.byteOffset, d.key.byteLength).toString("latin1")
    const previous = last.get(key)
    const mine = Deferred.unsafeMake<void>(FiberId.none)
    last.set(key, mine)
    return {
      before: previous === undefined ? Effect.void : Deferred.await(previous),
      done: Effect.suspend(() => {
        if (last.get(key) === mine) last.delete(key)
        return Deferred.done(mine, Exit.void)
      })
    }
  }
}

/**
 * Handles one message; whether it settled it as its own (false: it had been taken over). With
 * `--exec` its deadline is renewed from the moment it is handed over, while it waits behind its
 * key and while its command runs.
 */
const handle = (d: Delivery, o: ConsumeOptions, info: GroupInfo, turn: Turn, run: RunCommand | undefined) =>
  Effect.gen(function*() {
    if (o.exec === undefined || run === undefined) {
      yield* print(line(d, o.json))
      return yield* d.ack
    }
    const command = Effect.zipRight(turn.before, run(o.exec, d)).pipe(Effect.ensuring(turn.done))
    const end = yield* Effect.raceFirst(command, renewing(d, info.ackWaitMs))
    if (end === 0) return yield* d.ack
    // Nak'd, its next delivery would meet the same closed stdout, and so would every other
    // message's, all of them going to the dead letters: left unsettled, it is the group's again
    // once this member has stopped.
    if (diedOfClosedOutput(end)) return yield* new OutputClosed({ reason: `the command ${endedHow(end)}` })
    yield* Effect.sync(() => process.stderr.write(`${commandFailed(d, end, info)}\n`))
    // Its last delivery: the dead letter says how the command ended, not only how often it was nak'd.
    return yield* isLast(d, info)
      ? d.term(`the command ${endedHow(end)} on delivery ${d.deliveryCount} of ${info.maxDeliver}`)
      : d.nak(o.nakDelayMs)
  })

/**
 * Whether a command ended as one writing to a pipe nobody reads does (SIGPIPE, or its shell's
 * 128 + 13 for a command it waited for): its output is this member's stdout, whose reader is gone.
 */
const diedOfClosedOutput = (end: CommandEnd): boolean => end === "SIGPIPE" || end === 128 + 13

/** Whether this delivery of the message is its last one before the dead letters (`maxDeliver`). */
const isLast = (d: Delivery, group: Pick<GroupInfo, "maxDeliver">): boolean =>
  group.maxDeliver > 0 && d.deliveryCount >= group.maxDeliver

/** What a member says when a message's command failed: which message, how it ended, and where the message goes now. */
export const commandFailed = (
  d: Delivery,
  end: CommandEnd,
  group: Pick<GroupInfo, "maxDeliver" | "deadLetterTopic">
): string => {
  const next = !isLast(d, group)
    ? "it is delivered again"
    : group.deadLetterTopic === undefined
    ? "that was its last delivery (maxDeliver): it is counted as a dead letter and dropped (the group has no dead-letter topic)"
    : `that was its last delivery (maxDeliver): it goes to the dead-letter topic ${group.deadLetterTopic}`
  const of = group.maxDeliver > 0 ? ` of ${group.maxDeliver}` : ""
  return `cxlog consume: offset ${d.offset} (delivery ${d.deliveryCount}${of}): the command ${endedHow(end)}; ${next}`
}

/**
 * What a member says when its ack (or nak, or term) of a message settled nothing: the message was
 * another's by then, so what this member did with it may be done again.
 */
export const notSettled = (d: Delivery): string =>
  `cxlog consume: offset ${d.offset} (delivery ${d.deliveryCount}): not settled: it was no longer this member's ` +
  `(held past its ackWait, or this member's broker connection was lost), so another member may run it again`

/** A wait for the next messages that the idle bound (`--idle-exit-ms`) ended. */
const IDLE: unique symbol = Symbol("idle")

/**
 * Handles what the member is given until `--limit` messages were taken (or the stream ends),
 * then waits for every one taken to be settled before the member leaves. Printing handles one
 * message after another, the lines in the order given. `--exec` runs every message held at once
 * (up to `--max-in-flight`), so none waits in hand while its ackWait runs out and another member
 * takes it over to run it again; in a byKey group a key's messages run one after another.
 */
const handleAll = <E>(deliveries: Stream.Stream<Delivery, E>, o: ConsumeOptions, info: GroupInfo) =>
  Effect.scoped(Effect.gen(function*() {
    // Closed in the reverse order: the commands running are stopped first (their fibers interrupted,
    // each over once its command and all it started are gone), then the runner's watcher ends, and
    // only then does the member leave, handing what it held to the next: never while one still runs.
    const pull = yield* Stream.toPull(deliveries)
    const run = o.exec === undefined ? undefined : yield* commandRunner
    const running = yield* FiberSet.make()
    const room = yield* Effect.makeSemaphore(o.exec === undefined ? 1 : o.maxInFlight)
    const failed = yield* Deferred.make<void, E | OutputClosed | DeadLetterFailed | InvalidNakDelay>()
    // Printing takes one message at a time anyway.
    const turnOf = keyTurns(info.byKey && o.exec !== undefined)
    let taken = 0
    const more = () => o.limit === undefined || taken < o.limit
    const one = (d: Delivery, turn: Turn) =>
      handle(d, o, info, turn, run).pipe(
        Effect.map((settled) => {
          if (settled) {
            report({
              event: "acked",
              messages: [[d.offset, d.deliveryCount, d.key === undefined ? "" : decoder.decode(d.key)]]
            })
          } else {
            process.stderr.write(`${notSettled(d)}\n`)
          }
        }),
        Effect.catchAllCause((cause) => Deferred.failCause(failed, cause)),
        Effect.ensuring(room.release(1))
      )
    const nextChunk = Effect.catchAll(pull, Option.match({ onNone: () => Effect.void, onSome: Effect.fail }))
    // A wait the idle bound ends leaves only with nothing in hand: a running command may still nak its message.
    const next = o.idleExitMs === undefined
      ? nextChunk
      : Effect.timeoutTo(nextChunk, { duration: o.idleExitMs, onSuccess: identity, onTimeout: (): typeof IDLE => IDLE })
    const takeAll = Effect.gen(function*() {
      while (more()) {
        const chunk = yield* next
        if (chunk === undefined) break
        if (chunk === IDLE) {
          if ((yield* FiberSet.size(running)) === 0) break
          continue
        }
        const given = Chunk.toReadonlyArray(chunk)
        for (let i = 0; i < given.length; i++) {
          // Past the limit: the rest go back to the others unseen, not counted as deliveries.
          if (!more()) {
            yield* giveBackUnseen(given.slice(i))
            break
          }
          const d = given[i]!
          taken++
          report({ event: "delivered", offset: d.offset, deliveryCount: d.deliveryCount })
          yield* room.take(1)
          yield* FiberSet.run(running, one(d, turnOf(d)))
        }
      }
      yield* FiberSet.awaitEmpty(running)
    })
    yield* Effect.raceFirst(takeAll, Deferred.await(failed))
    // A failure as the last one ended: the race may have seen the set empty first.
    const outcome = yield* Deferred.poll(failed)
    if (Option.isSome(outcome)) yield* outcome.value
  }))

/**
 * Creates the group if asked to and it does not exist; its description (the group found must be
 * what the flags ask). A member the group cannot take is refused here, and a group made for it
 * deleted again: a refused `consume --topic` leaves no group behind.
 */
const prepare = (o: ConsumeOptions) =>
  Effect.flatMap(ConsumerGroups, (groups) => groupToJoin(groups, o.group, o.spec, joinedInFlight(o))).pipe(
    Effect.provide(groupsOf(o, false))
  )

/** A member with a --limit takes no more at once than it will handle. */
const joinedInFlight = (o: ConsumeOptions) => Math.min(o.maxInFlight, o.limit ?? Infinity)

/** The groups in place (dead letters through a local publisher when asked), or through brokers (the broker writes them). */
const groupsOf = (o: ConsumeOptions, deadLetters: boolean) =>
  o.remote === undefined ? groupMember(o.region, { deadLetters }) : layerRemote(o.remote)

export const consume = (o: ConsumeOptions) =>
  Effect.gen(function*() {
    const info = yield* prepare(o)
    const member = Effect.flatMap(
      ConsumerGroups,
      (groups) => handleAll(groups.join(o.group, { maxInFlight: joinedInFlight(o) }), o, info)
    )
    // Dead letters go through a local publisher, made only for a group that has somewhere to send them.
    yield* member.pipe(
      Effect.provide(groupsOf(o, info.deadLetterTopic !== undefined)),
      // Nobody reads any more: a normal end (exit 0), as for cxlog subscribe and for a member that
      // found it out with nothing to print (ClosedOutput.ts). It has left: what it did not print is the group's.
      Effect.catchTag("OutputClosed", () => Effect.void)
    )
  })
