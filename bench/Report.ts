/** Benchmark output convention: a human table, then one JSON line with `bench`, figures and `ratio`. */
export { percentile, summarize } from "../src/programs/report/Percentiles.js"
export { table } from "../src/programs/report/Table.js"

export const emit = (text: string, result: { bench: string; ratio: number } & Record<string, unknown>): void => {
  process.stdout.write(`${text}\n${JSON.stringify(result)}\n`)
}
