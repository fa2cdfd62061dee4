/**
 * One self-contained HTML page of uPlot charts, for the dashboard (live: it polls a JSON
 * URL) and the run reports (static: the data is in the page). uPlot's script and style are
 * inlined from node_modules, so the page loads nothing from anywhere.
 */
import { readFileSync } from "node:fs"
import { createRequire } from "node:module"
import { join } from "node:path"
import { packageRoot } from "../../PackageRoot.js"

/** One chart: x values, then one y series per label (null = no value at that x). */
export interface ChartSpec {
  readonly id: string
  readonly title: string
  /** The y axis's unit, shown on the axis. */
  readonly unit: string
  /** `time`: x is Unix seconds; `seconds`: x is seconds since the start; `log`: x on a log scale (a CDF's latency). */
  readonly x: "time" | "seconds" | "log"
  readonly xLabel?: string
  readonly xs: ReadonlyArray<number>
  readonly series: ReadonlyArray<{ readonly label: string; readonly values: ReadonlyArray<number | null> }>
}

export interface PageData {
  readonly charts: ReadonlyArray<ChartSpec>
  /** Extra HTML placed under the charts (tables); escaped by whoever built it. */
  readonly html?: string
}

interface UplotAssets {
  readonly script: string
  readonly style: string
}

/** uPlot's files as the CLI bundle carries them (scripts/bundle.mjs defines it), so an installed CLI needs no uplot package. */
declare const __CXLOG_UPLOT__: UplotAssets | undefined

let assets: UplotAssets | undefined

/** uPlot's IIFE build and stylesheet: the bundle's, else (the compiled sources, in the repository) read once from uplot. */
const uplotAssets = () => {
  if (assets === undefined) {
    if (typeof __CXLOG_UPLOT__ !== "undefined") {
      assets = __CXLOG_UPLOT__
    } else {
      const require = createRequire(join(packageRoot(), "package.json"))
      assets = {
        script: readFileSync(require.resolve("uplot/dist/uPlot.iife.min.js"), "utf8"),
        style: readFileSync(require.resolve("uplot/dist/uPlot.min.css"), "utf8")
      }
    }
  }
  return assets
}

export const escapeHtml = (text: string): string =>
  text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;")

/** JSON that is safe inside a <script> element. */
const scriptJson = (value: unknown): string => JSON.stringify(value).replace(/</g, "\\u003c")

/** A two-column table of `rows` (keys and values escaped). */
export const keyValueTable = (caption: string, rows: Record<string, unknown>): string =>
  `<table><caption>${escapeHtml(caption)}</caption>${
    Object.entries(rows).map(([k, v]) =>
      `<tr><th>${escapeHtml(k)}</th><td>${
        escapeHtml(typeof v === "object" && v !== null ? JSON.stringify(v) : String(v))
      }</td></tr>`
    ).join("")
  }</table>`

/**
 * Runs in the browser: draws every chart of the data, and in live mode fetches the data again
 * every `everyMs` and redraws. Each chart's status line says how many points it has and the
 * last value of each series, so a reader (or a test) sees that data is coming in.
 */
const pageScript = `
(function () {
  const palette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"];
  const plots = new Map();
  const root = document.getElementById("charts");
  const fmt = (v) => v == null ? "–" : Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 1 ? v.toFixed(1) : v.toPrecision(2);
  function options(spec, width) {
    const x = spec.x === "time" ? { time: true } : spec.x === "log" ? { time: false, distr: 3 } : { time: false };
    return {
      width, height: 260,
      scales: { x },
      axes: [{ label: spec.xLabel || (spec.x === "seconds" ? "s" : "") }, { label: spec.unit, size: 60 }],
      series: [{}].concat(spec.series.map((s, i) => ({ label: s.label, stroke: palette[i % palette.length], width: 1.5, spanGaps: true }))),
    };
  }
  function status(spec) {
    const last = spec.series.map((s) => {
      for (let i = s.values.length - 1; i >= 0; i--) if (s.values[i] != null) return s.label + " " + fmt(s.values[i]);
      return s.label + " –";
    });
    return spec.xs.length + " points; last: " + last.join(", ");
  }
  function draw(data) {
    const width = Math.max(320, Math.min(root.clientWidth || 900, 1100));
    for (const spec of data.charts) {
      let entry = plots.get(spec.id);
      const labels = spec.series.map((s) => s.label).join("\\u0000");
      if (entry !== undefined && entry.labels !== labels) {
        entry.plot.destroy();
        entry.box.remove();
        entry = undefined;
      }
      const columns = [spec.xs].concat(spec.series.map((s) => s.values));
      if (entry === undefined) {
        const box = document.createElement("section");
        box.className = "chart";
        box.id = "chart-" + spec.id;
        box.innerHTML = "<h2></h2><div class=status></div><div class=plot></div>";
        box.querySelector("h2").textContent = spec.title;
        root.appendChild(box);
        const plot = new uPlot(options(spec, width), columns, box.querySelector(".plot"));
        entry = { plot, box, labels };
        plots.set(spec.id, entry);
      } else {
        entry.plot.setData(columns);
      }
      entry.box.dataset.points = String(spec.xs.length);
      entry.box.querySelector(".status").textContent = status(spec);
    }
    if (data.html !== undefined) document.getElementById("extra").innerHTML = data.html;
  }
  const initial = JSON.parse(document.getElementById("cxlog-data").textContent);
  draw(initial);
  const live = JSON.parse(document.getElementById("cxlog-live").textContent);
  if (live !== null) {
    const tick = () => fetch(live.url).then((r) => r.json()).then((data) => {
      draw(data);
      document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
    }).catch((e) => { document.getElementById("updated").textContent = "fetch failed: " + e; });
    setInterval(tick, live.everyMs);
  }
})();
`

const pageStyle = `
body { font: 14px system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.1em; margin: 0.2em 0; }
.chart { margin: 1em 0 2em; } .status { color: #555; font-size: 12px; margin-bottom: 4px; }
table { border-collapse: collapse; margin: 1em 2em 1em 0; display: inline-table; vertical-align: top; }
caption { text-align: left; font-weight: bold; padding: 4px 0; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; font-size: 13px; }
th { background: #f4f4f4; font-weight: normal; }
#updated { color: #555; font-size: 12px; }
`

/** The whole page: uPlot and the drawing script inlined, the data in a JSON script element. */
export const chartPage = (options: {
  readonly title: string
  readonly subtitle?: string
  readonly data: PageData
  /** Poll this URL for fresh `PageData` every `everyMs` (the dashboard); absent = a static report. */
  readonly live?: { readonly url: string; readonly everyMs: number }
}): string => {
  const { script, style } = uplotAssets()
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(options.title)}</title>
<style>${style}</style><style>${pageStyle}</style></head>
<body><h1>${escapeHtml(options.title)}</h1>
<div>${escapeHtml(options.subtitle ?? "")} <span id="updated"></span></div>
<div id="charts"></div><div id="extra"></div>
<script type="application/json" id="cxlog-data">${scriptJson(options.data)}</script>
<script type="application/json" id="cxlog-live">${scriptJson(options.live ?? null)}</script>
<script>${script}</script>
<script>${pageScript}</script>
</body></html>
`
}
