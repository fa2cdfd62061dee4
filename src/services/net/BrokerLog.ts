/**
 * BrokerLog: the log core as one broker uses it — its Appender, the AckTracker and the topic
 * table — with their types and errors as they are (services/log/*): the live layer only picks
 * the methods, and `layerMemory` is the same over the in-process store.
 */
import { Context } from "effect"
import type { AckTrackerShape } from "../log/AckTracker.js"
import type { AppenderShape } from "../log/Appender.js"
import type { TopicsShape } from "../log/Topics.js"

export interface BrokerLogShape
  extends
    Pick<AppenderShape, "brokerId" | "append" | "appendWith" | "tryAppendWith" | "registerSession" | "closeSession">,
    Pick<AckTrackerShape, "sessionAcks" | "progress" | "awaitProgress">
{
  /** Looks a topic up (a handshake naming an unknown topic is refused). */
  readonly topic: TopicsShape["lookup"]
}

export class BrokerLog extends Context.Tag("cxlog/BrokerLog")<BrokerLog, BrokerLogShape>() {}
