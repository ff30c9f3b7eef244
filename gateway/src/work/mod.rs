//! The gateway's background work: every job (drain, repair, metadata
//! shipping, ...) is a [`runner::Job`] driven by one [`runner::run`] loop,
//! which owns back-off, idle waits, a shutdown that lets a step finish, and
//! the status `cairn status` shows.

pub mod drain;
pub mod repair;
pub mod runner;
pub mod ship;
#[cfg(test)]
mod ship_tests;
