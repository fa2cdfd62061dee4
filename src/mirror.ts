/**
 * `cxlog/mirror`: copying a topic's total order into NATS JetStream (docs/mirror.md). Its own
 * entry, so that `import "cxlog"` never loads the NATS client: an app that mirrors installs
 * `@nats-io/transport-node` and `@nats-io/jetstream` itself (optional peer dependencies).
 */
export * as MirrorLayers from "./layers/mirror/Mirror.js"
export { type MirroredMessage, readMirrored } from "./layers/mirror/MirrorRecord.js"
export * from "./services/mirror/Mirror.js"
