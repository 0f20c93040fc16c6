//! Tests of the connector interfaces' data: converters and transforms.
#![allow(clippy::unwrap_used, missing_docs)]

mod converters;
mod transforms;
