//! The processor API on the test driver: a processor of the user's counts records and
//! reports on stream-time and wall-clock punctuations.

use std::time::Duration;

use strom_streams::serde::{I64Serde, StringSerde};
use strom_streams::{
    Consumed, Processor, ProcessorContext, Produced, PunctuationType, Schedules, StreamsBuilder,
    TopologyTestDriver,
};

/// Counts records; reports the count every 10 ms of stream time and every second of
/// wall-clock time, keyed by what fired.
#[derive(Default)]
struct Counter {
    seen: i64,
}

impl Processor<String, String, String, i64> for Counter {
    fn init(&mut self, schedules: &mut Schedules) {
        schedules.schedule(Duration::from_millis(10), PunctuationType::StreamTime);
        schedules.schedule(Duration::from_secs(1), PunctuationType::WallClockTime);
    }

    fn process(&mut self, ctx: &mut ProcessorContext<'_, String, i64>, key: String, _: String) {
        self.seen += 1;
        if key == "echo" {
            ctx.forward(format!("echo@{}", ctx.timestamp()), self.seen);
        }
    }

    fn punctuate(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, i64>,
        kind: PunctuationType,
        timestamp: i64,
    ) {
        let name = match kind {
            PunctuationType::StreamTime => "stream",
            PunctuationType::WallClockTime => "wall",
        };
        ctx.forward(format!("{name}@{timestamp}"), self.seen);
    }
}

#[test]
fn a_processor_punctuates_on_stream_time_and_on_the_wall_clock() {
    let builder = StreamsBuilder::new();
    builder
        .stream("in", Consumed::with(StringSerde, StringSerde))
        .process(Counter::default)
        .to("out", Produced::with(StringSerde, I64Serde));
    let driver = TopologyTestDriver::new(&builder.build());
    let input = driver.input_topic("in", StringSerde, StringSerde);
    let output = driver.output_topic("out", StringSerde, I64Serde);
    let s = |v: &str| v.to_owned();

    // Stream time fires on the first record, then every 10 ms of record time.
    input.pipe_input_at(s("a"), s("x"), 0);
    input.pipe_input_at(s("echo"), s("x"), 5);
    input.pipe_input_at(s("b"), s("x"), 12);
    // Out of order: stream time stays at 12.
    input.pipe_input_at(s("c"), s("x"), 3);
    assert_eq!(
        output.read_key_values_to_list().unwrap(),
        [(s("stream@0"), 1), (s("echo@5"), 2), (s("stream@12"), 3)]
    );

    driver.advance_wall_clock_time(Duration::from_millis(500));
    assert!(output.is_empty());
    driver.advance_wall_clock_time(Duration::from_millis(600));
    let fired = output.read_record().unwrap();
    assert_eq!(
        fired.timestamp, 1_100,
        "stamped with the punctuation's time"
    );
    assert!(output.is_empty());
    driver.advance_wall_clock_time(Duration::from_millis(1_000));
    assert_eq!(
        output.read_key_values_to_list().unwrap(),
        [(s("wall@2100"), 4)]
    );
}
