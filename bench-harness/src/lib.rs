//! The load generator (`tpslab load`): pre-signed transfers sent at a constant rate (open
//! loop), commits tracked through SubscribeCommits on every target, latency measured from each
//! tx's intended send time (coordinated-omission safe) into an HDR histogram.
//!
//! It talks to nodes only through their gRPC API, as a user's tool would.

pub mod load;
pub mod report;
pub mod txsource;

pub use load::{run, LoadConfig};
pub use report::LoadReport;
