/** Types for parse-prometheus-text-format (the package ships none): the prom2json shape it returns. */
declare module "parse-prometheus-text-format" {
  type Labels = Record<string, string>
  type Sample = { readonly value: string; readonly labels?: Labels }
  type HistogramSample = {
    readonly buckets: Record<string, string>
    readonly count: string
    readonly sum: string
    readonly labels?: Labels
  }
  type SummarySample = {
    readonly quantiles: Record<string, string>
    readonly count: string
    readonly sum: string
    readonly labels?: Labels
  }
  export type MetricFamily = {
    readonly name: string
    readonly help: string
    readonly type: "COUNTER" | "GAUGE" | "HISTOGRAM" | "SUMMARY" | "UNTYPED"
    readonly metrics: ReadonlyArray<Sample | HistogramSample | SummarySample>
  }
  export default function parsePrometheusTextFormat(text: string): Array<MetricFamily>
}
