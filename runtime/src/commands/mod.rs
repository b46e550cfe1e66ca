//! The `weft` subcommands, one file each.

pub mod run;
