//! `weft deploy`: one app split over several processes on this machine.
//!
//! - [`manager`]: what `weft deploy` runs. Through a [`workers`] set it
//!   spawns one [`worker`] process per replica of every group of the plan,
//!   hands each its group and the routing table, and restarts a worker that
//!   dies. Outside a rollout the workers accept their listeners'
//!   connections themselves ([`crate::handoff`]); during one, the manager
//!   splits them between versions through an [`ingress`] per listener.
//! - [`store_home`]: where the embedded key-value store is open: in the
//!   manager, which serves it, or in the one worker that uses it.
//! - [`rollout`]: the pure state machine that shifts traffic from one
//!   version to the next, and rolls back a version that fails more; the
//!   [`driver`] runs it between where the traffic goes and where the
//!   counts come from, on one machine (the manager) or in a cluster
//!   (`weft rollout --kube`).
//! - [`worker`]: what `weft worker` runs: one replica of one group, serving
//!   the `Invoke` and `Control` gRPC services and its group's listeners.
//! - [`cluster`]: `cluster.toml`, how the workers of a version find each
//!   other without a manager (Kubernetes, plain machines).
//! - [`state`]: the file in which a running deployment says where it is.
//! - [`proposal`]: whether the manager's re-planning proposes a better
//!   plan, from the last minute's counts (pure).
//! - [`lock`]: one manager per app.
//! - [`versions`]: the snapshots of every deployed version, from which the
//!   workers load.
//!
//! Every worker gets fixed loopback ports from the manager, and keeps them
//! when it is restarted, so the routing table never changes while the
//! deployment runs.

pub mod cluster;
pub mod control;
pub mod driver;
pub mod ingress;
pub mod lock;
pub mod manager;
pub mod proposal;
pub mod rollout;
pub mod state;
pub mod store_home;
pub mod versions;
pub mod worker;
pub mod workers;
