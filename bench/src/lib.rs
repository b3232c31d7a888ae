//! Shared parts of the benchmarks: driving extauth programs over pipes and
//! the statistics of their latencies.

pub mod driver;
pub mod stats;
