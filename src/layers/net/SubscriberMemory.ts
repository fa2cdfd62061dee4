/** Subscriber fake: `subscriberOver` (Subscriber.ts) reading the in-memory log through its LogReader, Consumers and Topics fakes. */
import { Effect, Layer } from "effect"
import { Subscriber, type SubscriberShape } from "../../services/net/Subscriber.js"
import * as ConsumersMemory from "../log/ConsumersMemory.js"
import * as LogReaderMemory from "../log/LogReaderMemory.js"
import type { MemoryLogStore, NoOptions } from "../log/MemoryStore.js"
import * as TopicsMemory from "../log/TopicsMemory.js"
import { subscriberOver } from "./Subscriber.js"

export const makeMemory = (store: MemoryLogStore, _options: NoOptions = {}): Effect.Effect<SubscriberShape> =>
  Effect.map(
    Effect.all([LogReaderMemory.makeMemory(store), ConsumersMemory.makeMemory(store), TopicsMemory.makeMemory(store)]),
    ([reader, consumers, topics]) => subscriberOver(reader, consumers, topics)
  )

export const layerMemory = (store: MemoryLogStore, options: NoOptions = {}): Layer.Layer<Subscriber> =>
  Layer.effect(Subscriber, makeMemory(store, options))
