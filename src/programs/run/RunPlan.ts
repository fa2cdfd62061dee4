/**
 * What `cxlog run` is asked to do (`RunOptions`) and what it works out before it starts a process
 * (`RunPlan`), which every room of the run (RunCluster, RunKills, RunOutcome, RunProgress,
 * RunSummary) reads.
 */
import type { Effect } from "effect"
import type { RegionInfo } from "../admin/Regions.js"
import type { ClusterShape } from "./ClusterShape.js"

/** What `run` is asked to do: the cluster, its output, and what it injects or measures besides. */
export interface RunOptions extends ClusterShape {
  /** human: progress line and summary; json: the summary as one JSON line; silent: nothing (for `cxlog bench`). */
  readonly output: "human" | "json" | "silent"
  /** More environment for every role (`bench --tls`: the TLS files and security switches). */
  readonly env?: Record<string, string>
  /** Run an auditing subscriber (end-to-end); without one the run measures publish → ACK only. */
  readonly subscriber?: boolean
  /**
   * Also run this many subscriber processes reading over TCP from the brokers (each starting
   * at a different broker, round-robin), each auditing the whole total order (RemoteAudit.ts).
   */
  readonly remoteSubscribers?: number
  /** Offered load: the publisher paces itself to this many MB/s (latency tests); unset = as fast as the window allows. */
  readonly offeredMBps?: number
  /**
   * A reader that never reads: a named consumer made at the topic's start before the publisher
   * starts, with no member (it holds retention under discard new, nothing under discard old).
   */
  readonly stalledReader?: boolean
  /**
   * Kill this broker (index) with SIGKILL once this fraction of the messages is acked (tests).
   * Without `offeredMBps` the publisher is then paced to take about 2 s, so the kill, decided
   * on the publisher's progress reports (4 a second), lands mid-run however fast the cluster is.
   */
  readonly killBroker?: { readonly index: number; readonly atFraction: number }
  /**
   * Run `standbys` standby heads and SIGKILL the active head once this fraction of the
   * messages is acked (paced like `killBroker`); the summary gives `takeoverMs`.
   */
  readonly killHead?: { readonly standbys: number; readonly atFraction: number }
  /** Metrics ports: the head serves on this one, broker i on +1+i, the publisher and subscriber next; 0 = none. */
  readonly metricsPort?: number
  /** Write an HTML report of the run here (`extra` joins its configuration table: a bench's loopback figure). */
  readonly report?: { readonly path: string; readonly title: string; readonly extra?: Record<string, unknown> }
}

/** What a run works out before it starts a process; every room of the run reads it. */
export interface RunPlan {
  readonly options: RunOptions
  readonly region: string
  /** Orphaned regions of earlier runs (their run gone, nothing using them) this run removed first. */
  readonly reclaimed: ReadonlyArray<RegionInfo>
  /** The measured messages, and their bytes. */
  readonly messages: number
  readonly bytes: number
  /** Messages published first, through the same publisher, and not measured. */
  readonly warmup: number
  /** ACK 2: the topic's copy on disk, in a fresh directory removed after the run, and that directory's filesystem. */
  readonly dataDir: string | undefined
  readonly filesystem: string | undefined
  /** What every role's environment adds. */
  readonly env: Record<string, string>
  /** The publisher's pace in MB/s (undefined: as fast as its window allows). */
  readonly offeredMBps: number | undefined
  readonly withSubscriber: boolean
  readonly human: boolean
  /** Human output on a terminal: the live line is rewritten in place. */
  readonly interactive: boolean
  /** Prints a line of human output (nothing otherwise). */
  readonly say: (line: string) => Effect.Effect<void>
}
