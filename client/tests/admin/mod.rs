//! The admin client against the embedded broker.

mod cluster;
mod configs;
mod groups;
mod offsets;
mod quotas;
mod topics;
