/**
 * One GET of a role's `/metrics`, as the dashboard scrapes it. Over node:http rather than fetch:
 * fetch refuses the ports a browser blocks (6000, 6665-6669, 10080, …, which a role's
 * `--metrics-port` may well be) and says of every failure only `fetch failed`, its cause hidden;
 * a target's row on the page is to say why it is down (`connect ECONNREFUSED …`, `HTTP 404`,
 * `no answer within 1000 ms`).
 */
import { get } from "node:http"

/** The text `target` (`host:port`) serves at `/metrics`; rejects with an Error saying why not within `timeoutMs`. */
export const scrapeMetrics = (target: string, timeoutMs: number): Promise<string> =>
  new Promise<string>((resolve, reject) => {
    const request = get(`http://${target}/metrics`, (response) => {
      if (response.statusCode !== 200) {
        response.resume()
        return reject(new Error(`HTTP ${response.statusCode}`))
      }
      let text = ""
      response.setEncoding("utf8")
      response.on("data", (chunk: string) => (text += chunk))
      response.on("end", () => resolve(text))
      response.on("error", reject)
    })
    request.on("error", reject)
    // The whole answer within the bound (a target that trickles its text holds the round up as one that is silent).
    const timer = setTimeout(() => request.destroy(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs)
    request.on("close", () => clearTimeout(timer))
  })
