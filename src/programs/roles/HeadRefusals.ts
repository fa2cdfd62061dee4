/**
 * What `cxlog head` refuses to start on: a region that is already there (with what it holds, and
 * the safe ways on), one a head was killed while making, and `--attach` on a region whose head
 * is alive.
 */
import { Data } from "effect"

/** `cxlog head` without `--attach` on a region that exists: what it holds and the safe ways on. */
export class HeadRegionExists extends Data.TaggedError("HeadRegionExists")<{
  readonly region: string
  /** Its head's pid (0 if none is known) and whether that process still runs. */
  readonly headPid: number
  readonly headAlive: boolean
  readonly orderedMessages: number
  readonly topics: ReadonlyArray<{ readonly name: string; readonly ordered: number }>
}> {
  override get message() {
    if (this.headAlive) {
      return `region ${this.region} is already served by a live head (pid ${this.headPid}); give this head another --region (--region / CXLOG_REGION)`
    }
    const held = this.topics.length === 0
      ? "no topics"
      : `${this.orderedMessages} ordered messages (${this.topics.map((t) => `${t.name}: ${t.ordered}`).join(", ")})`
    return `a region named ${this.region} already exists and holds ${held}; its head${
      this.headPid > 0 ? ` (pid ${this.headPid})` : ""
    } is gone. ` +
      `Start the head with --attach to carry on with it, or discard it with \`cxlog regions --remove ${this.region}\`` +
      (this.orderedMessages > 0 ? ` (that destroys those ${this.orderedMessages} messages)` : "")
  }
}

/** A region its creator was killed while making (UnfinishedRegion.ts): it holds nothing and no process maps it. */
export class RegionUnfinished extends Data.TaggedError("RegionUnfinished")<{ readonly region: string }> {
  override get message() {
    return `region ${this.region} was never made (its creator stopped before writing it; it holds nothing): remove it with \`cxlog regions --remove ${this.region}\``
  }
}

/** `cxlog head --attach` on a region that does not exist (RegionMissing would say to start a head first). */
export class HeadAttachRegionMissing extends Data.TaggedError("HeadAttachRegionMissing")<{ readonly region: string }> {
  override get message() {
    return `region ${this.region} does not exist: --attach carries on with a region whose head is gone; ` +
      `drop --attach to create it, or name another with --region (cxlog regions lists them)`
  }
}

/** `cxlog head --attach` on a region whose head is alive and holds its lease. */
export class HeadActive extends Data.TaggedError("HeadActive")<{
  readonly region: string
  readonly pid: number
  readonly expiresAtMs: number
}> {
  override get message() {
    return `region ${this.region} is served by a live head (pid ${this.pid}) that holds the sequencer lease; ` +
      `--attach is for a region whose head is gone. Start this head with --standby to take over when that one stops or dies`
  }
}
