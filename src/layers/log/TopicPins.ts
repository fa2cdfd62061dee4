/**
 * This process's pins on the topics it uses: every log layer (appender, ACK tracker, reader,
 * sequencer) holds a topic before it touches its extent and lets go once done with it, so a
 * deleted topic's memory is reused only when no live process can still read or write it
 * (Directory.hold's epochs, DirectoryHolders.ts). One holder line per process and region
 * mapping, shared by its layers (pins are a process's: any hold keeps the extent for all).
 *
 * Each tick (500 ms, and only while something is held) a live topic's pin moves up to the
 * directory's newest epoch (a pin left at an old epoch would keep every later deletion's memory
 * too), and a holder whose topic was deleted is told (`onDeleted`): it drops what it kept of the
 * topic, stops whatever may still write into it, and releases its hold. Only then can the memory go.
 */
import { TopicDeleted, type TopicInfo } from "../../services/log/Topics.js"
import type { CxlMemoryShape } from "../../services/region/CxlMemory.js"
import type { HolderLinesFull } from "../../services/region/Directory.js"
import { alignedDelayMs, CADENCE_MS } from "../region/Cadence.js"
import { HolderLine } from "../region/DirectoryHolders.js"
import { DirectoryTable } from "../region/DirectoryTable.js"
import type { LogArea } from "./Layout.js"
import { Descriptor, DescriptorState } from "./Records.js"
import { DescriptorView } from "./RecordViews.js"

/** One holder's hold on a topic, until `release`. */
export interface TopicHold {
  readonly info: TopicInfo
  /** Whether the topic was deleted (its descriptor says so: one load from its still-pinned extent). */
  readonly deleted: () => boolean
  /** Lets the topic go (its memory may be freed once no other hold of this or any process keeps it). */
  readonly release: () => void
}

interface Held {
  readonly info: TopicInfo
  /** Its descriptor's offset, kept: a later topic in the slot moves the area's. */
  readonly descriptor: number
  epoch: number
  readonly onDeleted: () => void
  told: boolean
  released: boolean
}

/** This process's holds on one region's topics (see the module's note); `topicPins` gives the one per mapping. */
export class TopicPins {
  private readonly line: HolderLine
  private readonly table: DirectoryTable
  private readonly descriptors: DescriptorView
  private readonly holds = new Set<Held>()
  /** The holds by topic id (directory slot): a create into a slot tells those of its earlier topic without a walk of every hold. */
  private readonly bySlot = new Map<number, Set<Held>>()
  private timer: ReturnType<typeof setTimeout> | undefined

  constructor(private readonly region: CxlMemoryShape, private readonly area: LogArea) {
    this.line = new HolderLine(region, area.directory)
    this.table = new DirectoryTable(region, area.directory)
    this.descriptors = new DescriptorView(region)
  }

  private descriptorDeleted(at: number): boolean {
    this.region.invalidate(at + Descriptor.state, 4)
    return this.descriptors.state(at) !== DescriptorState.ready
  }

  /**
   * Holds `info`'s topic until the hold's `release`: TopicDeleted if it is gone already. `onDeleted`
   * is called once, at a tick after the topic is deleted, if the hold is still kept then.
   */
  hold(info: TopicInfo, onDeleted: () => void): TopicHold | TopicDeleted | HolderLinesFull {
    const epoch = this.line.pinNow()
    if (typeof epoch !== "number") return epoch
    // Checked after the pin shows: a delete that this check misses retires the extent at a later epoch than the pin's.
    if (!this.table.isCurrent({ slot: info.id, generation: info.generation })) {
      this.line.unpin(epoch)
      return new TopicDeleted({ name: info.name })
    }
    const descriptor = this.area.descriptor(info.id)
    const held: Held = { info, descriptor, epoch, onDeleted, told: false, released: false }
    this.holds.add(held)
    const ofSlot = this.bySlot.get(info.id)
    if (ofSlot === undefined) this.bySlot.set(info.id, new Set([held]))
    else ofSlot.add(held)
    this.schedule()
    return {
      info,
      deleted: () => this.descriptorDeleted(descriptor),
      release: () => {
        if (held.released) return
        held.released = true
        this.holds.delete(held)
        const ofSlot = this.bySlot.get(info.id)
        ofSlot?.delete(held)
        if (ofSlot?.size === 0) this.bySlot.delete(info.id)
        this.line.unpin(held.epoch)
        // Nothing held, nothing to tick for (and the mapping may close next).
        if (this.holds.size === 0 && this.timer !== undefined) {
          clearTimeout(this.timer)
          this.timer = undefined
        }
      }
    }
  }

  private schedule(): void {
    if (this.timer !== undefined || this.holds.size === 0) return
    this.timer = setTimeout(() => {
      this.timer = undefined
      // The mapping closed under a hold its layer failed to let go: nothing is left to pin.
      if (this.region.buffer.byteLength === 0) return
      this.tick()
      this.schedule()
    }, alignedDelayMs(CADENCE_MS))
    // A process is not kept running for its pins.
    this.timer.unref()
  }

  /** Moves live topics' pins to the newest epoch and tells the holders of deleted ones (see the module's note). */
  tick(): void {
    if (this.holds.size === 0) return
    const newest = this.line.epochNow()
    for (const held of [...this.holds]) {
      if (held.released) continue
      if (!this.table.isCurrent({ slot: held.info.id, generation: held.info.generation })) {
        this.tell(held)
        continue
      }
      if (held.epoch >= newest) continue
      const epoch = this.line.pinNow()
      if (typeof epoch !== "number") continue
      // Live after the new pin shows: any delete from now on retires at a later epoch, so the old pin can go.
      if (this.table.isCurrent({ slot: held.info.id, generation: held.info.generation })) {
        this.line.unpin(held.epoch)
        held.epoch = epoch
      } else {
        this.line.unpin(epoch)
      }
    }
  }

  /**
   * A new topic is about to be placed in `slot`: every hold on an earlier topic of that slot is
   * told now, before the slot's offsets name the new one (a holder must not use them for the old).
   */
  supersede(slot: number): void {
    for (const held of [...(this.bySlot.get(slot) ?? [])]) this.tell(held)
  }

  private tell(held: Held): void {
    if (held.told || held.released) return
    held.told = true
    held.onDeleted()
  }

  /** Holds kept now (tests, and the layers' own accounting). */
  held(): number {
    return this.holds.size
  }
}

const byRegion = new WeakMap<CxlMemoryShape, TopicPins>()

/** This process's pins on `region`'s topics: one per mapping, shared by every layer over it. */
export const topicPins = (region: CxlMemoryShape, area: LogArea): TopicPins => {
  let pins = byRegion.get(region)
  if (pins === undefined) {
    pins = new TopicPins(region, area)
    byRegion.set(region, pins)
  }
  return pins
}
