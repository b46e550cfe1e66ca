//! weft's integration tests, one binary: every sample end to end over real
//! HTTP (in one process, and deployed as a monolith and split), the
//! boutique shop in each of its placements, deployment and its failures,
//! the WIT layouts weft links and every resolution error, profiles and the
//! plans chosen from them, the sandbox's limits, protocol stalls on
//! kept-alive connections, the manifest golden files, and `weft kube`'s Kubernetes objects (golden YAML
//! checked against the Kubernetes schemas).

mod blobstore;
mod boutique;
mod cluster;
mod colocated;
mod deploy;
mod errors;
mod fast_values;
mod flow;
mod fused;
mod keyvalue;
mod kube;
mod kube_rollout;
mod latency;
mod layouts;
mod linking;
mod manifests;
mod plan;
mod resources;
mod rollout;
mod samples;
mod sandbox;
mod security;
mod telemetry;
