/**
 * `cxlog/testing`: a whole cxlog cluster in memory for an app's tests (docs/testing.md). Effect
 * apps provide `CxlogTesting.layer(...)` where they provide the live layers; Promise apps
 * `CxlogTesting.start(...)` a cluster and open `CxlogPublisher.openWith` / `CxlogSubscriber.openWith`
 * on its layers.
 */
export * as CxlogTesting from "./layers/testing/TestCluster.js"
export {
  type RunningTestCluster,
  TestCluster,
  type TestClusterOptions,
  type TestPublisherOptions,
  type TestTopic
} from "./layers/testing/TestCluster.js"
