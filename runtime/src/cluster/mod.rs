//! weft in a Kubernetes cluster, the parts that do I/O (the objects
//! themselves are made by the pure [`crate::kube`]):
//!
//! - [`ingress`]: `weft ingress`, the app's listeners in the cluster,
//!   split between versions by the traffic table's weights;
//! - [`api`]: the little of the Kubernetes API that the ingress reads from
//!   inside its pod (the traffic table's ConfigMap);
//! - [`kubectl`]: how `weft rollout --kube` reaches the cluster from
//!   outside, with the user's own kubectl;
//! - [`rollout`]: `weft rollout --kube` and `weft rollback --kube`, the
//!   rollout driver with the traffic table and the ingress's counts as its
//!   seams.

pub mod api;
pub mod ingress;
pub mod kubectl;
pub mod rollout;
