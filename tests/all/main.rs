//! weft's integration tests, one binary: every sample end to end over real
//! HTTP, every resolution error, the sandbox's limits, and the manifest
//! golden files.

mod errors;
mod linking;
mod manifests;
mod samples;
mod sandbox;
