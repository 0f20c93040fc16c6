//! The admin client against the embedded broker.

mod cluster;
mod configs;
mod offsets;
mod topics;
