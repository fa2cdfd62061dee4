/**
 * The head's lane server as a layer (TopicLanes.ts has the protocol): it answers writers' lane
 * requests for as long as the layer lives, as the directory's writer — the head's log (Roles.headLog).
 */
import { Effect, Layer } from "effect"
import { CxlMemory } from "../../services/region/CxlMemory.js"
import { DirectoryWriter } from "../../services/region/Directory.js"
import { Doorbell } from "../../services/region/Doorbell.js"
import type { LogArea } from "./Layout.js"
import { readTopic } from "./TopicDescriptors.js"
import { serveLanes } from "./TopicLanes.js"

/** The head's lane server as a layer: it answers for as long as the layer lives (headLog and the tests' `writingTopics`). */
export const layerServer = (area: LogArea): Layer.Layer<never, never, CxlMemory | Doorbell | DirectoryWriter> =>
  Layer.scopedDiscard(
    Effect.gen(function*() {
      const region = yield* CxlMemory
      const doorbell = yield* Doorbell
      const writer = yield* DirectoryWriter
      yield* serveLanes(region, area, writer, doorbell, (t) => readTopic(region, area, t))
    })
  )
