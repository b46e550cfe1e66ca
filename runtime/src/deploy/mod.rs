//! `weft deploy`: one app split over several processes on this machine.
//!
//! - [`manager`]: what `weft deploy` runs. It spawns one [`worker`] process
//!   per replica of every group of the plan, hands each its group and the
//!   routing table, restarts a worker that dies, owns the key-value store,
//!   and serves the listeners through a [`proxy`].
//! - [`worker`]: what `weft worker` runs: one replica of one group, serving
//!   the `Invoke` and `Control` gRPC services and its group's listeners.
//! - [`state`]: the file in which a running deployment says where it is.
//!
//! Every worker gets fixed loopback ports from the manager, and keeps them
//! when it is restarted, so the routing table never changes while the
//! deployment runs.

pub mod manager;
pub mod proxy;
pub mod state;
pub mod worker;
