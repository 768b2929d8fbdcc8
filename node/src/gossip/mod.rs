//! Tx gossip, both directions: txs this node accepted go out to its peers ([`TxGossip`]),
//! and txs peers gossip come in to this node's CheckTx ([`route`]), off the consensus task.

mod receive;
mod send;

pub use receive::route;
pub use send::TxGossip;
