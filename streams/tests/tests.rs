//! Integration tests of `strom-streams`: each DSL operation on the synchronous test driver,
//! and the topology description.
#![allow(clippy::unwrap_used, missing_docs)]

mod joins;
mod processor;
mod runtime;
mod sessions;
mod stateful;
mod stateless;
mod windows;

use strom_streams::serde::{I64Serde, StringSerde};
use strom_streams::{Consumed, Grouped, Produced, StreamsBuilder, Topology};

/// The classic word count: sentences split into lower-case words, counted per word.
pub fn word_count() -> Topology {
    let builder = StreamsBuilder::new();
    builder
        .stream("sentences", Consumed::with(StringSerde, StringSerde))
        .flat_map_values(|line: String| {
            line.split_whitespace()
                .map(str::to_lowercase)
                .collect::<Vec<_>>()
        })
        .group_by(
            |_, word| word.clone(),
            Grouped::with(StringSerde, StringSerde),
        )
        .count()
        .to_stream()
        .to("word-counts", Produced::with(StringSerde, I64Serde));
    builder.build()
}
