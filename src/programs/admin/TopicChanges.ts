/**
 * `cxlog topics create|delete|trim|purge` (and `cxlog create-topic`): on the region's host, join the cluster
 * and ask the head's coordinator; with `--brokers`, ask any broker over TCP (it forwards the change
 * to the head's coordinator). Both say the same when they are done.
 */
import { Console, Effect, Layer } from "effect"
import { makeRemoteTopics, type RemoteTopicsOptions } from "../../layers/net/TopicsRemote.js"
import {
  attachRegion,
  controlTransport,
  coordinatorClient,
  processSlot,
  type RegionAccess
} from "../../layers/Roles.js"
import { Coordinator } from "../../services/control/Coordinator.js"
import type { TopicBounds, TopicInfo, TopicSpec, TrimTarget } from "../../services/log/Topics.js"
import { showSize } from "../../Settings.js"
import { headPresent } from "./HeadPresent.js"

/** Where a topics command works: the region on this host, or through brokers (`remote`). */
export interface TopicsAt {
  readonly region: RegionAccess
  readonly remote?: RemoteTopicsOptions
}

/** What a command changes topics through: the head's coordinator, or a broker's admin connection. */
interface TopicChanges<E> {
  readonly create: (spec: TopicSpec) => Effect.Effect<TopicInfo, E>
  readonly delete: (name: string) => Effect.Effect<void, E>
  readonly trim: (name: string, target: TrimTarget) => Effect.Effect<TopicBounds, E>
  readonly purge: (name: string) => Effect.Effect<TopicBounds, E>
}

/** Runs `use` with the changes of `at`: as a client of the region's coordinator (joined for the change, gone after it), or through brokers. */
const withChanges = <A, E>(at: TopicsAt, use: (changes: TopicChanges<unknown>) => Effect.Effect<A, E>) =>
  at.remote === undefined
    ? Effect.zipRight(
      // Looked for before the change is sent: with no head it is not, which the failure says, as a broker's does.
      headPresent(at.region, "its coordinator to change topics (not sent: nothing changed)"),
      Effect.flatMap(
        Coordinator,
        (c) => use({ create: c.createTopic, delete: c.deleteTopic, trim: c.trimTopic, purge: c.purgeTopic })
      ).pipe(
        Effect.provide(
          coordinatorClient().pipe(
            Layer.provideMerge(controlTransport),
            Layer.provideMerge(processSlot("client")),
            Layer.provideMerge(attachRegion(at.region))
          )
        )
      )
    )
    : Effect.scoped(
      Effect.flatMap(makeRemoteTopics(at.remote), ({ topics }) => use(topics))
    )

/**
 * `cxlog topics create` and `cxlog create-topic`: each spec in turn; the first that cannot be made
 * stops the command with its error, unless it is a name taken already and `ifNotExists` says to
 * leave that as it is.
 */
export const createTopics = (at: TopicsAt, specs: ReadonlyArray<TopicSpec>, ifNotExists = false) =>
  withChanges(
    at,
    (changes) =>
      Effect.forEach(specs, (spec) =>
        changes.create(spec).pipe(
          Effect.flatMap((info) =>
            Console.log(
              `created topic ${info.name} (id ${info.id}, order ${info.order}, ack ${info.ackLevel}, rf ${info.replicationFactor}` +
                (info.memory === undefined ? "" : `, memory ${showSize(info.memory)}`) +
                (info.writers === undefined ? "" : ` for ${info.writers} writer${info.writers === 1 ? "" : "s"}`) +
                (info.maxMessageBytes === undefined ? "" : `, messages up to ${showSize(info.maxMessageBytes)}`) +
                ")"
            )
          ),
          Effect.catchIf(
            (e) => ifNotExists && (e as { readonly _tag?: string })._tag === "TopicExists",
            () => Console.log(`topic ${spec.name} exists already: left as it is (--if-not-exists)`)
          )
        ), { discard: true })
  )

/**
 * `cxlog topics delete NAME…`: each in turn, over one connection; the first that cannot be deleted
 * (an unknown name, a right missing) stops the command with its error, those before it deleted.
 */
export const deleteTopics = (at: TopicsAt, names: ReadonlyArray<string>) =>
  withChanges(at, (changes) =>
    Effect.forEach(names, (name) =>
      Effect.zipRight(
        changes.delete(name),
        Console.log(`deleted topic ${name} (its memory is freed once no process still holds it, within about a second)`)
      ), { discard: true }))

/** `cxlog topics trim NAME` (`target`) and `cxlog topics purge NAME` (no target): the head drops the oldest messages. */
export const trimTopic = (at: TopicsAt, name: string, target: TrimTarget | undefined) =>
  withChanges(at, (changes) =>
    Effect.flatMap(
      target === undefined ? changes.purge(name) : changes.trim(name, target),
      ({ earliest, end }) =>
        Console.log(
          `${target === undefined ? "purged" : "trimmed"} topic ${name}: it holds ${
            earliest === end ? "no message" : `offsets ${earliest}..${end - 1}`
          }; the next message is offset ${end}`
        )
    ))
