//! The producer. So far: choosing partitions.

pub mod partitioner;
