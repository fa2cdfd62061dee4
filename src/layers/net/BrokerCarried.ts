/** A broker connection's batches awaiting their ACK: added by its receive path (BrokerBatches.ts), taken by its ACK tracker (BrokerAcks.ts). */

/**
 * The batches a connection carried that its ACKs have not covered yet, in arrival order: batch
 * seq and where it went (PBR position), so an ACK can name each one's total order.
 */
export class Carried {
  /** The highest batch seq carried (-1: none). */
  highest = -1
  private seqs: Array<number> = []
  private pbrSeqs: Array<number> = []
  /** Scratch for one ACK's (batch seq, total order) pairs. */
  orders = new Float64Array(32)

  /** Whether some batch carried awaits its ACK. */
  get inFlight(): boolean {
    return this.seqs.length > 0
  }

  /** Called once by the next `add` (the ACK tracker waiting for a batch to acknowledge), then cleared. */
  onCarried: (() => void) | undefined = undefined

  add(batchSeq: number, pbrSeq: number): void {
    if (batchSeq > this.highest) this.highest = batchSeq
    this.seqs.push(batchSeq)
    this.pbrSeqs.push(pbrSeq)
    const carried = this.onCarried
    if (carried !== undefined) {
      this.onCarried = undefined
      carried()
    }
  }

  /**
   * Takes the batches below `frontier` (an ACK up to it covers them) and writes the pairs of
   * those with a known total order into `orders` (grown as needed); returns how many pairs, or
   * -1 when no batch carried is below `frontier` (then an ACK up to it would cover none of ours).
   */
  take(frontier: number, orderOf: (pbrSeq: number) => number | undefined): number {
    let pairs = 0
    const { seqs, pbrSeqs } = this
    let kept = 0
    for (let i = 0; i < seqs.length; i++) {
      const seq = seqs[i]!
      if (seq >= frontier) {
        // Resends can arrive out of order: keep it for a later ACK.
        seqs[kept] = seq
        pbrSeqs[kept++] = pbrSeqs[i]!
        continue
      }
      const order = orderOf(pbrSeqs[i]!)
      if (order === undefined) continue
      if (2 * pairs + 2 > this.orders.length) {
        const grown = new Float64Array(this.orders.length * 2)
        grown.set(this.orders)
        this.orders = grown
      }
      this.orders[2 * pairs] = seq
      this.orders[2 * pairs + 1] = order
      pairs++
    }
    if (kept === seqs.length) return -1
    seqs.length = kept
    pbrSeqs.length = kept
    return pairs
  }
}
