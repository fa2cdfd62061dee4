/**
 * `cxlog consume`: a member of a consumer group, on the region's host or (`--brokers`) through a
 * broker, which holds the member for it (docs/consumers.md, "Remote members"). It creates the group when
 * `--topic` names one that does not exist, joins it, and for each message it is given either
 * prints it and acks it, or (`--exec CMD`) runs `sh -c CMD` with the message's value on stdin
 * and acks when the command exits 0, naks it (delivered again, to any member) otherwise; the
 * message's deadline is renewed while the command runs. A message is printed (written out of this
 * process, not just buffered) before it is acked, so a member killed between them has its message
 * printed again elsewhere: at least once, never lost.
 * With an orchestrator (an IPC parent) it reports each message as it gets it (`{ event: "delivered" }`) and
 * what it acked (`{ event: "acked", messages }`).
 */
import { Data, Effect, Schedule, Stream } from "effect"
import { spawn } from "node:child_process"
import { layerRemote, type RemoteGroupsOptions } from "../../layers/groups/ConsumerGroupsRemote.js"
import { groupMember, type RegionAccess } from "../../layers/Roles.js"
import {
  ConsumerGroups,
  type Delivery,
  type GroupSpec,
  InvalidGroupSpec
} from "../../services/groups/ConsumerGroups.js"
import { processEnvironment } from "../../Settings.js"
import { report } from "./Report.js"

export interface ConsumeOptions {
  readonly region: RegionAccess
  /** Through these brokers instead of the region in place. */
  readonly remote?: RemoteGroupsOptions
  readonly group: string
  /** With `--topic`: the group to create when it does not exist (and the topic it must read if it does). */
  readonly spec: GroupSpec | undefined
  readonly maxInFlight: number
  readonly exec: string | undefined
  readonly nakDelayMs: number
  readonly limit: number | undefined
  readonly json: boolean
}

const decoder = new TextDecoder()
const textOf = (bytes: Uint8Array | undefined) => (bytes === undefined ? undefined : decoder.decode(bytes))

const line = (d: Delivery, json: boolean): string =>
  json
    ? JSON.stringify({
      group: d.group,
      topic: d.topic,
      offset: d.offset,
      deliveryCount: d.deliveryCount,
      timestamp: d.timestamp,
      key: textOf(d.key),
      headers: d.headers === undefined
        ? undefined
        : Object.fromEntries(d.headers.map((h) => [h.name, textOf(h.value)])),
      value: textOf(d.value)
    })
    : `${d.offset}${d.deliveryCount > 1 ? ` (delivery ${d.deliveryCount})` : ""}${
      d.key === undefined ? "" : ` [${textOf(d.key)}]`
    } ${textOf(d.value)}`

/** Runs `sh -c command` on the message: its exit code (its output is this process's). */
const run = (command: string, d: Delivery): Effect.Effect<number> =>
  Effect.async<number>((resume) => {
    const child = spawn("sh", ["-c", command], {
      stdio: ["pipe", "inherit", "inherit"],
      env: {
        ...processEnvironment(),
        CONSUME_GROUP: d.group,
        CONSUME_TOPIC: d.topic,
        CONSUME_OFFSET: `${d.offset}`,
        CONSUME_DELIVERY_COUNT: `${d.deliveryCount}`,
        ...(d.key === undefined ? {} : { CONSUME_KEY: decoder.decode(d.key) })
      }
    })
    child.stdin!.on("error", () => {}) // a command that does not read its stdin closes it: not a failure
    child.stdin!.end(d.value)
    child.on("error", () => resume(Effect.succeed(127)))
    child.on("close", (code) => resume(Effect.succeed(code ?? 128)))
    return Effect.sync(() => child.kill("SIGTERM"))
  })

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

/** Handles one message; whether it settled it as its own (false: it had been taken over). */
const handle = (d: Delivery, o: ConsumeOptions, ackWaitMs: number) =>
  Effect.gen(function*() {
    if (o.exec === undefined) {
      yield* print(line(d, o.json))
      return yield* d.ack
    }
    const renew = Effect.repeat(d.inProgress, Schedule.spaced(Math.max(1, Math.floor(ackWaitMs / 2))))
    const code = yield* Effect.raceFirst(
      run(o.exec, d),
      Effect.zipRight(Effect.sleep(ackWaitMs / 2), renew).pipe(
        Effect.zipRight(Effect.never)
      )
    )
    return code === 0 ? yield* d.ack : yield* d.nak(o.nakDelayMs)
  })

/** Creates the group if asked to and it does not exist; its description (the group found must read `--topic`). */
const prepare = (o: ConsumeOptions) =>
  Effect.gen(function*() {
    const groups = yield* ConsumerGroups
    if (o.spec !== undefined) {
      yield* groups.create(o.spec).pipe(Effect.catchTag("GroupExists", () => Effect.void))
    }
    const info = yield* groups.describe(o.group)
    if (o.spec !== undefined && info.topic !== o.spec.topic) {
      return yield* new InvalidGroupSpec({
        group: o.group,
        reason: `it reads topic ${info.topic}, not ${o.spec.topic} (delete it to read another)`
      })
    }
    return info
  }).pipe(Effect.provide(groupsOf(o, false)))

/** The groups in place (dead letters through a local publisher when asked), or through brokers (the broker writes them). */
const groupsOf = (o: ConsumeOptions, deadLetters: boolean) =>
  o.remote === undefined ? groupMember(o.region, { deadLetters }) : layerRemote(o.remote)

export const consume = (o: ConsumeOptions) =>
  Effect.gen(function*() {
    const info = yield* prepare(o)
    const member = Effect.gen(function*() {
      const groups = yield* ConsumerGroups
      const handled = groups.join(o.group, { maxInFlight: o.maxInFlight }).pipe(
        Stream.tap((d) =>
          Effect.sync(() => report({ event: "delivered", offset: d.offset, deliveryCount: d.deliveryCount }))
        ),
        Stream.mapEffect((d) =>
          Effect.map(handle(d, o, info.ackWaitMs), (acked) => {
            if (acked) report({ event: "acked", messages: [[d.offset, d.deliveryCount, textOf(d.key) ?? ""]] })
            return d
          })
        )
      )
      yield* Stream.runDrain(o.limit === undefined ? handled : Stream.take(handled, o.limit))
    })
    // Dead letters go through a local publisher, made only for a group that has somewhere to send them.
    yield* member.pipe(Effect.provide(groupsOf(o, info.deadLetterTopic !== undefined)))
  })
