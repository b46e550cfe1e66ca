//! The `weft` subcommands, one module each.

pub mod deploy;
pub mod run;
pub mod worker;
