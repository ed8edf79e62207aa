//! Choosing a target within an upstream. One file per algorithm.

mod round_robin;

pub use round_robin::RoundRobin;
