/** cxlog: a totally ordered shared log whose hot tier lives in CXL (shared) memory. */
export * as CoordinatorLayers from "./layers/control/Coordinator.js"
export * as CoordinatorMemoryLayers from "./layers/control/CoordinatorMemory.js"
export * as RingsLayers from "./layers/control/Rings.js"
export * as RingsMemoryLayers from "./layers/control/RingsMemory.js"
export * as RpcLayers from "./layers/control/Rpc.js"
export * as RpcMemoryLayers from "./layers/control/RpcMemory.js"
export { eachChunk } from "./layers/groups/ChunkLoop.js"
export * as ConsumerGroupsLayers from "./layers/groups/ConsumerGroups.js"
export * as ConsumerGroupsMemoryLayers from "./layers/groups/ConsumerGroupsMemory.js"
export * as ConsumerGroupsRemoteLayers from "./layers/groups/ConsumerGroupsRemote.js"
export { CxlogGroup, type CxlogGroupOptions, type CxlogJob, type ProcessOptions } from "./layers/groups/CxlogGroup.js"
export { DeadLetterHeader } from "./layers/groups/GroupDeadLetters.js"
export { ackAll } from "./layers/groups/GroupDelivery.js"
export { channelStream, channelStreams, type FencedChannel } from "./layers/ipc/ChannelFence.js"
export * as ChannelsLayers from "./layers/ipc/Channels.js"
export * as ChannelsMemoryLayers from "./layers/ipc/ChannelsMemory.js"
export { CxlogChannel, CxlogChannelSubscription } from "./layers/ipc/CxlogChannel.js"
export * as DiscoveryLayers from "./layers/ipc/Discovery.js"
export * as DiscoveryMemoryLayers from "./layers/ipc/DiscoveryMemory.js"
export { type DrainConsumer, drainConsumer, drainOnStop, type DrainOptions } from "./layers/ipc/DrainOnStop.js"
export * as ServicesLayers from "./layers/ipc/Services.js"
export * as ServicesMemoryLayers from "./layers/ipc/ServicesMemory.js"
export * as SupervisorLayers from "./layers/ipc/Supervisor.js"
export * as AckTrackerLayers from "./layers/log/AckTracker.js"
export * as AckTrackerMemoryLayers from "./layers/log/AckTrackerMemory.js"
export * as AppenderLayers from "./layers/log/Appender.js"
export * as AppenderMemoryLayers from "./layers/log/AppenderMemory.js"
export * as ConsumersLayers from "./layers/log/Consumers.js"
export * as ConsumersMemoryLayers from "./layers/log/ConsumersMemory.js"
export * as SegmentsLayers from "./layers/log/durable/Segments.js"
export * as SegmentsMemoryLayers from "./layers/log/durable/SegmentsMemory.js"
export * as LogLayout from "./layers/log/Layout.js"
export * as LogReaderLayers from "./layers/log/LogReader.js"
export * as LogReaderMemoryLayers from "./layers/log/LogReaderMemory.js"
export { makeMemoryStore as makeLogMemoryStore, type MemoryLogStore } from "./layers/log/MemoryStore.js"
export * as SequencerLayers from "./layers/log/Sequencer.js"
export * as SequencerMemoryLayers from "./layers/log/SequencerMemory.js"
export * as TopicsLayers from "./layers/log/Topics.js"
export * as TopicsMemoryLayers from "./layers/log/TopicsMemory.js"
export { InvalidAdminRequest } from "./layers/net/AdminProtocol.js"
export {
  CredentialError,
  type Credentials,
  defaultSecretPath,
  localCredentials,
  readSecretFile
} from "./layers/net/Auth.js"
export {
  checkBatchPayload,
  forEachMessage,
  MessageFlags,
  MessageRecord,
  messageRecordBytes
} from "./layers/net/BatchPayload.js"
export * as BrokerLayers from "./layers/net/Broker.js"
export { InvalidBrokerAddress, parseAddresses } from "./layers/net/BrokerAddress.js"
export * as BrokerLogMemoryLayers from "./layers/net/BrokerLogMemory.js"
export { PROTOCOL_VERSION } from "./layers/net/Control.js"
export { CxlogAdmin, type CxlogAdminOptions, InvalidAdminOptions } from "./layers/net/CxlogAdmin.js"
export { type CloseOptions, CxlogPublisher, PublisherCloseUnflushed } from "./layers/net/CxlogPublisher.js"
export {
  type CxlogMessage,
  type CxlogSubscribeOptions,
  CxlogSubscriber,
  type CxlogSubscriberOptions
} from "./layers/net/CxlogSubscriber.js"
export * as PublisherLayers from "./layers/net/Publisher.js"
export * as SubscriberLayers from "./layers/net/Subscriber.js"
export * as SubscriberMemoryLayers from "./layers/net/SubscriberMemory.js"
export * as SubscriberRemoteLayers from "./layers/net/SubscriberRemote.js"
export * as TopicsRemoteLayers from "./layers/net/TopicsRemote.js"
export * as CxlMemoryLayers from "./layers/region/CxlMemory.js"
export * as CxlMemoryMemoryLayers from "./layers/region/CxlMemoryMemory.js"
export * as DirectoryLayers from "./layers/region/Directory.js"
export * as DirectoryMemoryLayers from "./layers/region/DirectoryMemory.js"
export * as DoorbellLayers from "./layers/region/Doorbell.js"
export * as ProcessSlotLayers from "./layers/region/ProcessSlot.js"
export * as RegionLayout from "./layers/RegionLayout.js"
export * as Roles from "./layers/Roles.js"
export { loadAddon, NativeError, NativeUnavailable } from "./native/Native.js"
export * from "./services/control/Coordinator.js"
export * from "./services/control/CoordinatorServer.js"
export * from "./services/control/Rings.js"
export {
  type AnyRpcMethod,
  type DeferredReply,
  type Failure as RpcFailure,
  handle as rpcHandle,
  method as rpcMethod,
  notice as rpcNotice,
  type Payload as RpcPayload,
  Rpc,
  RpcAbandoned,
  type RpcCallError,
  type RpcClient,
  type RpcClientOptions,
  RpcDeadlinePassed,
  type RpcHandler,
  RpcHandlerDefect,
  RpcInvalidPayload,
  RpcInvalidReply,
  type RpcMethod,
  type RpcNotice,
  type RpcOpenError,
  RpcProtocolError,
  RpcRepliesLost,
  RpcReplyLost,
  type RpcRequest,
  type RpcRequestFate,
  RpcRequestUnread,
  type RpcServer,
  type RpcServerOptions,
  type RpcShape,
  RpcTimeout,
  RpcUnknownMethod,
  type Success as RpcSuccess
} from "./services/control/Rpc.js"
export * from "./services/groups/ConsumerGroups.js"
export * from "./services/ipc/Channels.js"
export * from "./services/ipc/Discovery.js"
export * from "./services/ipc/Services.js"
export * from "./services/ipc/Supervisor.js"
export * from "./services/log/AckTracker.js"
export * from "./services/log/Appender.js"
export * from "./services/log/Consumers.js"
export * from "./services/log/HeadWatch.js"
export * from "./services/log/LogReader.js"
export * from "./services/log/Segments.js"
export * from "./services/log/Sequencer.js"
export * from "./services/log/TopicPattern.js"
export * from "./services/log/Topics.js"
export {
  Broker,
  BrokerListenFailed,
  type BrokerLog,
  type BrokerOptions,
  type BrokerShape,
  type BrokerStats,
  InvalidBrokerOptions
} from "./services/net/Broker.js"
export {
  type BrokerAddress,
  type BrokerLink,
  BrokerRejected,
  BrokersUnreachable,
  type HeadersInit,
  InvalidMessage,
  InvalidPublisherOptions,
  type MessageOptions,
  type MessageRange,
  MessageTooLarge,
  type PublishAck,
  PublishAckTimeout,
  Publisher,
  PublisherClosed,
  type PublisherOptions,
  type PublishError,
  type PublisherShape,
  type PublisherStats,
  PublishTopicInvalid,
  type TopicStats
} from "./services/net/Publisher.js"
export {
  CommitRejected,
  InvalidSubscribeOptions,
  type MessageHeader,
  type SubscribeError,
  Subscriber,
  type SubscriberBatch,
  SubscriberBrokersUnreachable,
  SubscriberConnectionFailed,
  type SubscriberMessage,
  type SubscriberShape,
  type Subscription,
  type SubscriptionError,
  type TopicsSubscription
} from "./services/net/Subscriber.js"
export * from "./services/region/CxlMemory.js"
export * from "./services/region/Directory.js"
export type { DirectoryArea, DirectoryConfig } from "./services/region/DirectoryArea.js"
export * from "./services/region/Doorbell.js"
export * from "./services/region/ProcessSlot.js"
