/**
 * `cxlog/effect-rpc`: @effect/rpc's protocol over cxlog's rings — an application's `RpcGroup`
 * served and called by name in the region (docs/ipc.md). Its own entry, so that `import "cxlog"`
 * never loads @effect/rpc: an app that uses it installs `@effect/rpc` itself (an optional peer dependency).
 */
export * as EffectRpcLayers from "./layers/ipc/EffectRpc.js"
