/**
 * The reference systems `--peers` may name, apart from their specs (PeerSpecs.ts, which a spec
 * for every name here must fill in): the command table parses the flag without loading the clients.
 */
export const BENCH_PEERS = ["redis", "nats"] as const

export type BenchPeer = typeof BENCH_PEERS[number]
