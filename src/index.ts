/** cxlog: a totally ordered shared log whose hot tier lives in CXL (shared) memory. */
export * from "./services/CxlMemory.js"
export * as CxlMemoryLayers from "./layers/CxlMemory.js"
export * from "./services/Doorbell.js"
export * as DoorbellLayers from "./layers/Doorbell.js"
export { NativeError, NativeUnavailable, loadAddon } from "./native/Native.js"
export {
  AckTimeout,
  type BrokerAddress,
  type BrokerCounts,
  BrokerRejected,
  InvalidPublisherOptions,
  MessageTooLarge,
  Publisher,
  PublisherClosed,
  type PublishError,
  type PublisherOptions,
  type PublisherShape,
  type PublisherStats
} from "./services/Publisher.js"
export * as PublisherLayers from "./layers/Publisher.js"
export { CxlogPublisher } from "./client/CxlogPublisher.js"
export { Broker, BrokerListenFailed, type BrokerOptions, type BrokerShape, type BrokerStats } from "./services/Broker.js"
export * as BrokerLayers from "./layers/Broker.js"
export { BrokerLog, type BrokerLogShape } from "./services/BrokerLog.js"
export * as BrokerLogLayers from "./layers/BrokerLog.js"
export { checkBatchPayload, forEachMessage, messageRecordBytes } from "./wire/BatchPayload.js"
export { parseAddresses } from "./wire/ClientConnection.js"
export { PROTOCOL_VERSION } from "./wire/Control.js"
export * from "./services/Rings.js"
export * as RingsLayers from "./layers/Rings.js"
export {
  type AnyRpcMethod,
  type DeferredReply,
  type Failure as RpcFailure,
  handle as rpcHandle,
  method as rpcMethod,
  notice as rpcNotice,
  type Payload as RpcPayload,
  Rpc,
  type RpcCallError,
  type RpcClient,
  type RpcClientOptions,
  RpcHandlerDefect,
  type RpcHandler,
  RpcInvalidPayload,
  RpcInvalidReply,
  type RpcMethod,
  type RpcNotice,
  type RpcOpenError,
  RpcProtocolError,
  type RpcRequest,
  type RpcServer,
  type RpcServerOptions,
  type RpcShape,
  RpcTimeout,
  RpcUnknownMethod,
  type Success as RpcSuccess
} from "./services/Rpc.js"
export * as RpcLayers from "./layers/Rpc.js"
export * from "./services/Topics.js"
export * as TopicsLayers from "./layers/Topics.js"
export * from "./services/Appender.js"
export * as AppenderLayers from "./layers/Appender.js"
export * from "./services/Sequencer.js"
export * as SequencerLayers from "./layers/Sequencer.js"
export {
  AckTimeout as LogAckTimeout,
  AckTracker,
  type AckTrackerShape,
  type BrokerCounts as LogBrokerCounts,
  type SessionAcks,
  SessionFenced
} from "./services/AckTracker.js"
export * as AckTrackerLayers from "./layers/AckTracker.js"
export * from "./services/LogReader.js"
export * as LogReaderLayers from "./layers/LogReader.js"
export * from "./services/HeadWatch.js"
export * as LogLayout from "./layers/LogLayout.js"
export { makeMemoryStore as makeLogMemoryStore, type MemoryLogStore } from "./layers/LogMemory.js"
export * from "./services/Coordinator.js"
export * as CoordinatorLayers from "./layers/Coordinator.js"
export * from "./services/ProcessSlot.js"
export * as ProcessSlotLayers from "./layers/ProcessSlot.js"
export * as RegionLayout from "./layers/RegionLayout.js"
export * as Roles from "./layers/Roles.js"
