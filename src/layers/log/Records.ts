/**
 * Field offsets inside each record of the log area (see Layout.ts for where records
 * are, RecordViews.ts for the typed accessors that read and write them). Numbers are byte offsets within the record; 64-bit values are f64 (below 2^53);
 * commit words are i32 written last with `Atomics.store` and read with `Atomics.load`.
 */
import { LINE_BYTES } from "../../services/region/CxlMemory.js"

/**
 * A participant line: broker owners, listeners. The claim is the (occurrence, pid) pair, one 64-bit
 * compare-and-swap from (0, 0) or a dead owner's, so a claimer killed at any point leaves its pid; the
 * occurrence carries 16 bits of the claimer's start time, so a later process under that pid is not its owner (Participants.ts).
 * `roomWaits` (broker owners): how many of the owner's appends wait for PBR or Blog room now, so
 * whoever frees room rings only brokers that wait for it. In a listener line the same word counts
 * the owner's fibers waiting for the log to move, so the sequencer rings only lines with a waiter.
 * `ackWaits` (broker owners): how many of the owner's ACK trackers wait for the broker's own
 * batches to be ordered, so a round rings only the brokers whose batches it ordered.
 * `laneRequest` (broker owners, the writer slots of brokers and local publishers): the owner asks
 * the head for its lane in a topic (TopicLanes.ts).
 */
export const Participant = {
  occurrence: 0,
  pid: 4,
  doorbell: 8,
  roomWaits: 12,
  ackWaits: 16,
  /** A writer's lane request (TopicLanes.ts): its count (the head answers it in the lane answers), then the topic's id and generation. */
  laneRequest: 20,
  laneTopic: 24,
  laneGeneration: 32
} as const

/**
 * Topic descriptor (the head): `state` is its commit word; `deleted` is stored before the topic's
 * directory entry is deleted, so a process holding the topic learns it with one load. Name: UTF-8, at most `maxNameBytes`.
 * Third line: the disk copy's retention (replication factor 2), f64 each, 0 for no bound; then the
 * topic's shape (TopicShape.ts), which every process reads its records' places from.
 */
export const Descriptor = {
  state: 0,
  order: 4,
  ackLevel: 8,
  replicationFactor: 12,
  nameBytes: 16,
  name: 20,
  maxNameBytes: 108,
  diskRetentionBytes: 128,
  diskRetentionMs: 136,
  /** f64: the memory its writer lanes share (each takes memory / writers, down to a power of two). */
  memoryBytes: 144,
  writers: 152,
  pbrSlots: 156,
  goiSlots: 160,
  sessionSlots: 164,
  maxBatchBytes: 168,
  maxMessageBytes: 172,
  /** f64 each: the main extent's and each lane's bytes. */
  mainBytes: 176,
  laneBytes: 184,
  /** Fourth line: its retention in the region (f64 each, 0 for no bound), then its discard policy (`DiscardCode`). */
  retentionMaxAgeMs: 192,
  retentionMaxMessages: 200,
  discard: 208
} as const
export const DiscardCode = { new: 0, old: 1 } as const
export const DescriptorState = { free: 0, creating: 1, ready: 2, deleted: 3 } as const

/**
 * Topic order line (the sequencer). `progress` is bumped after every round that moved anything;
 * `rounds` too, but by rounds alone (not the durable tier): a process that orders (the head, or an
 * appender running a round itself) knows its cached state of the topic is current while `rounds`
 * is the value its own last round left (SequencerRound.ts, `syncTopic`);
 * `stalled` is 1 while the topic's GOI is full (durable subscribers behind), so readers that move
 * their cursor ring the sequencer only then. `durableFailure` (the head's durable tier) says why an RF 2
 * topic's copy on disk stopped (`DurableFailureCode`), so brokers refuse its ACK 2 sessions instead of leaving them waiting.
 */
export const OrderLine = {
  committed: 0,
  totalOrder: 8,
  progress: 16,
  epoch: 20,
  fencedSessions: 24,
  sessions: 32,
  stalled: 40,
  durableFailure: 48,
  rounds: 56
} as const

/**
 * A topic's retention line (the head): the first batch (global seq) and the first message offset
 * it holds for readers, under a sequence lock (`version` odd while the head writes them). A trim
 * moves them forward; nothing below them is read or held from then on (TopicRetention.ts).
 */
export const RetentionLine = { version: 0, firstBatch: 8, firstOffset: 16 } as const

/**
 * A topic's lane table (the head): `lanes` counts the lanes allocated (bumped after each lane's
 * page is stored), then one i32 per writer slot at `pages`: its lane's offset / 4096, 0 for none
 * (a lane never moves while its topic lives).
 */
export const LaneTable = { lanes: 0, pages: 64 } as const

/**
 * The head's lane answers in the log area (TopicLanes.ts): line 0 names the doorbell writers ring
 * with a request; from line 1 each writer slot has 8 bytes: the count of its requests answered,
 * then the answer's `LaneAnswer` code.
 */
/** `granted` counts the lanes the head granted (any topic): a sequencer re-checks its lane-less topics only when it moved. */
export const LaneAnswers = { doorbell: 0, granted: 8, answers: 64, answered: 0, result: 4, bytes: 8 } as const
export const LaneAnswer = { ok: 0, corrupt: 1, regionFull: 2, topicGone: 3 } as const

/** Per (topic, broker), written by the broker. `reclaimVersion` is bumped after the reclaim cursors move. */
export const BrokerLine = {
  pbrHead: 0,
  blogHead: 8,
  appendedMessages: 16,
  pbrReclaimed: 24,
  blogTail: 32,
  reclaimVersion: 40,
  ringFullWaits: 48
} as const

/** Per (topic, broker), written by the sequencer. */
export const SequencerLine = {
  consumedThrough: 0,
  orderedBatches: 8,
  orderedMessages: 16,
  duplicates: 24,
  dropped: 32,
  held: 40
} as const

/**
 * A subscriber cursor line (that subscriber): `cursor` is the next global batch seq it will read.
 * A named consumer's line (`durable` 2, or 3 once cut off, see Consumers.ts) lives as long as the
 * consumer: its committed offset, the pid of its active member (0: none) and its name (UTF-8, ≤ 24 bytes).
 * The word at `nameLength` keeps the name's length in its low 16 bits (NAME_LENGTH_MASK) and 16 bits
 * of the member's start tag above them, so the member and its tag are one 64-bit word, swapped together.
 */
export const SubscriberLine = {
  occurrence: 0,
  pid: 4,
  doorbell: 8,
  durable: 12,
  cursor: 16,
  committed: 24,
  member: 32,
  nameLength: 36,
  name: 40
} as const
export const NAME_LENGTH_MASK = 0xffff
export const CONSUMER_NAME_BYTES = 24

/**
 * A session line (two 64-byte lines under one seqlock): `version` is odd while it is being
 * written. A broker claims a free line when it registers a session (see SessionTable.ts); from
 * then on only the sequencer writes it. `next` counts the session's batches in the total order
 * (0..next-1); once fenced or released it is the committed frontier and never moves again.
 * `durable` (topics with replication factor 2) counts the session's batches whose payload and
 * place in the order are on disk; the head's durable tier writes it (docs/durability.md), in
 * the sequencer's process, so the line still has one writing process. `ahead` (the second
 * line, orders 0/2/4) is a bitmap of the batches ordered above a gap: bit i (word i >> 5, bit
 * i & 31) is batch next + 1 + i. It is where a restarted or new head learns them once the GOI
 * entries that recorded them are overwritten (layout 5).
 */
export const SessionLine = {
  version: 0,
  state: 4,
  clientId: 8,
  sessionEpoch: 12,
  next: 16,
  orderedMessages: 24,
  duplicates: 32,
  held: 40,
  lastActivityMs: 48,
  durable: 56,
  ahead: 64
} as const
/** Batches a session of order 0/2/4 may have ordered above its frontier: the bits of the `ahead` line. */
export const AHEAD_WINDOW = 512
/**
 * `empty` lines end a probe; `released` lines (closed or evicted sessions) keep their key and
 * frontier for late lookups until a new registration reuses them; `claiming` is a broker
 * between its compare-and-swap and its first publication of the line; `lapsed` lines are
 * sessions ended with batches ordered above a gap (orders 0/2/4): free like released ones, but
 * no lookup matches them, so their publisher is told the session is unknown rather than a
 * frontier it would replay from (docs/log.md, "Sessions with a gap"); a claim whose broker died
 * before its write is freed as lapsed too (it may hold a lapsed session's key).
 */
export const SessionState = { empty: 0, active: 1, fenced: 2, released: 3, claiming: 4, lapsed: 5 } as const

/**
 * Per topic, next to the order line: `epochs` hands out session epochs (brokers add 1 per
 * registration, so no two sessions of a topic ever share one); `live` counts lines that are
 * not free (claimed by a registration, dropped by the sequencer's release).
 */
export const RegistryLine = { epochs: 0, live: 4 } as const

/** PBR slot: line 0 by the broker (its commit word: `positionMark`), line 1 by the sequencer (its finish word: the same). */
export const PbrSlot = {
  clientId: 0,
  sessionEpoch: 4,
  batchSeq: 8,
  messageCount: 16,
  payloadBytes: 20,
  blogPosition: 24,
  crc32c: 32,
  brokerId: 36,
  receivedAtMs: 40,
  pbrSeq: 48,
  kind: 56,
  commit: 60,
  /** Line 1, the sequencer's. */
  sequencerLine: 64,
  globalSeq: 64,
  totalOrder: 72,
  /** The epoch of the sequencer that finished the slot (which head ordered the batch). */
  epoch: 80,
  finish: 124
} as const

/**
 * What a PBR slot carries: a batch of messages, or a session's close marker (no payload;
 * `batchSeq` is the number of batches the session sent), which the sequencer handles in
 * the session's order so the session is released only after its last batch.
 */
export const PbrKind = { batch: 0, close: 1 } as const
export type PbrKindCode = (typeof PbrKind)[keyof typeof PbrKind]

/** What line 1 of a finished PBR slot says instead of a global seq when the batch is not in the GOI. */
export const Dropped = { duplicate: -1, fenced: -2, refused: -3, corrupt: -4, marker: -5 } as const

/** GOI entry, one per batch; the global batch seq (`seqHi`, then `seqLo` as commit word) is written last. */
export const GoiEntry = {
  totalOrder: 0,
  blogPosition: 8,
  pbrSeq: 16,
  batchSeq: 24,
  brokerId: 32,
  payloadBytes: 36,
  messageCount: 40,
  clientId: 44,
  sessionEpoch: 48,
  crc32c: 52,
  seqHi: 56,
  seqLo: 60
} as const

/** `seqLo` while the entry is being rewritten: never a valid low half. */
export const GOI_INVALID = -1
const LOW = 2 ** 31
export const goiSeqLo = (g: number): number => g % LOW
export const goiSeqHi = (g: number): number => Math.floor(g / LOW) + 1

/**
 * The sequencer lease line in the superblock (`Superblock.Offsets.sequencerLease`). `waiting`
 * is 1 while the sequencer waits on its doorbell for batches: appenders ring it only then (its
 * process's doorbell also serves other waiters, which a ring would wake for nothing).
 * `round` is the round marker, one 64-bit word: the pid (low half) and start tag (high half) of
 * the process inside a round — the head's sequencer or an appender ordering its own batches —
 * and 0 between rounds. Rounds are serial because each is entered by a compare-and-swap of it
 * from 0, and it is the fence a new lease holder waits on (see SequencerLease.ts). `ready` is
 * the occurrence of the holder that has taken every topic on (recovered it from the region):
 * appenders run rounds only while it is the lease's `occurrence`.
 */
export const LeaseLine = {
  occurrence: 0,
  pid: 4,
  epoch: 8,
  doorbell: 12,
  expiresAtMs: 16,
  waiting: 24,
  round: 32,
  ready: 40
} as const

/**
 * What a ring slot's commit word says for absolute position `position`: the position itself modulo
 * 2^31 - 1, plus 1, so a zeroed slot is never committed and a slot written for an earlier position
 * (a lap before, or 2^31 - 1 positions before) is never taken for this one. It names the position,
 * not the lap, so it does not depend on the ring's size, which is each topic's own.
 */
export const positionMark = (position: number): number => (position % 0x7fffffff) + 1

export const alignLine = (n: number): number => Math.ceil(n / LINE_BYTES) * LINE_BYTES
