#!/usr/bin/env python3
"""kafka-python (pure-Python client, 3.x) as a third-party peer of the Strom broker.

Usage: kafka_python_peer.py BOOTSTRAP SCENARIO [ARGS]

Scenarios:
  admin               create a 3-partition topic with a config, list and describe it,
                      grow it to 4 partitions, delete it
  roundtrip CODEC     200 keyed records with headers, CODEC in none/gzip/snappy/lz4/zstd
                      (snappy, lz4 and zstd need python-snappy, lz4, zstandard in the venv;
                      without them that codec is skipped with a printed reason)
  timestamps          explicit timestamps, offsets_for_times, beginning/end offsets
  idempotent          enable_idempotence=True, acks=all, 1000 records, no gaps or dups
  large               ~1,000,000-byte record accepted, 2,000,000-byte one refused with
                      MessageSizeTooLargeError by the broker, then the producer still works
  produce TOPIC N     N numbered records to partition 0; prints `ack I OFFSET` lines
  consume TOPIC N     exactly records 0..N-1 from the beginning of partition 0
  group-member GROUP TOPIC
                      joins GROUP subscribed to TOPIC (earliest, commit after every poll)
                      until stdin closes; prints `assigned P,P,..` per rebalance and
                      `record P O VALUE` per record, then commits, leaves, prints `closed`

Consumption is group-less: group_id=None, assign() + seek_to_beginning().

Env KAFKA_PYTHON_API_VERSION (e.g. "2.1"), development aid only: pins the protocol version
instead of probing. librdkafka's mock cluster answers kafka-python 3's ApiVersions v4 probe
with an error reply kafka-python cannot decode, so runs against the mock need it.
"""

import os
import sys
import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka import codec as kafka_codec
from kafka import errors as kerr
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic

import peer_common as pc

OP_TIMEOUT_S = 15.0
COMMON = {"client_id": "strom-interop-kafka-python", "request_timeout_ms": 15000}
if os.environ.get("KAFKA_PYTHON_API_VERSION"):
    COMMON["api_version"] = tuple(int(x) for x in os.environ["KAFKA_PYTHON_API_VERSION"].split("."))
CODEC_SUPPORT = {
    "none": (lambda: True, ""),
    "gzip": (kafka_codec.has_gzip, ""),
    "snappy": (kafka_codec.has_snappy, "python-snappy"),
    "lz4": (kafka_codec.has_lz4, "lz4"),
    "zstd": (kafka_codec.has_zstd, "zstandard"),
}


def producer(bootstrap, **extra):
    conf = {"bootstrap_servers": bootstrap, "acks": "all", "linger_ms": 5, **COMMON}
    conf.update(extra)
    return KafkaProducer(**conf)


def consumer(bootstrap):
    return KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                         auto_offset_reset="earliest", **COMMON)


def produce_all(prod, records):
    """Sends `records` (dicts of KafkaProducer.send kwargs, `topic` included) and waits for
    each acknowledgement. Returns [(partition, offset)] in send order."""
    futures = [prod.send(**rec) for rec in records]
    prod.flush(timeout=OP_TIMEOUT_S)
    out = []
    for idx, fut in enumerate(futures):
        try:
            md = fut.get(timeout=OP_TIMEOUT_S)
        except kerr.KafkaError as e:
            raise pc.PeerFailure(f"record {idx} not delivered: {type(e).__name__}: {e}") from e
        out.append((md.partition, md.offset))
    return out


def partitions_of(cons, topic):
    deadline = time.monotonic() + OP_TIMEOUT_S
    while time.monotonic() < deadline:
        parts = cons.partitions_for_topic(topic)
        if parts:
            return sorted(parts)
        time.sleep(0.1)
    raise pc.PeerFailure(f"no partitions known for {topic}")


def consume_from_beginning(bootstrap, topic, partitions, n, timeout_s=OP_TIMEOUT_S):
    """Returns the first `n` ConsumerRecords of `partitions`, in consumption order."""
    cons = consumer(bootstrap)
    try:
        tps = [TopicPartition(topic, p) for p in partitions]
        cons.assign(tps)
        cons.seek_to_beginning(*tps)
        out = []
        deadline = time.monotonic() + timeout_s
        while len(out) < n and time.monotonic() < deadline:
            for _tp, recs in cons.poll(timeout_ms=500, max_records=500).items():
                out.extend(recs)
        pc.check(len(out) >= n, f"consumed only {len(out)} of {n} records in {timeout_s:.0f} s")
        return out
    finally:
        cons.close()


def watermarks(bootstrap, topic, partition=0):
    cons = consumer(bootstrap)
    try:
        tp = TopicPartition(topic, partition)
        low = cons.beginning_offsets([tp], timeout_ms=OP_TIMEOUT_S * 1000)[tp]
        high = cons.end_offsets([tp], timeout_ms=OP_TIMEOUT_S * 1000)[tp]
        return low, high
    finally:
        cons.close()


def poll_until(cond, what, timeout_s=OP_TIMEOUT_S):
    pc.poll_until(cond, what, timeout_s)


# --- scenarios ----------------------------------------------------------------------------

def scenario_admin(bootstrap):
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, **COMMON)
    topic = pc.fresh_topic("admin-kafka-python")
    try:
        admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1,
                                      topic_configs={"retention.ms": "3600000"})],
                            timeout_ms=10000)
        pc.log(f"created {topic}")

        def partition_count(want):
            def cond():
                if topic not in admin.list_topics():
                    return "not listed"
                desc = admin.describe_topics([topic])
                got = len(desc[0]["partitions"]) if desc else None
                return True if got == want else f"{got} partitions"
            return cond

        poll_until(partition_count(3), f"{topic} listed with 3 partitions")
        desc = admin.describe_topics([topic])[0]
        pc.check(desc.get("error_code", 0) == 0, f"describe_topics error: {desc}")

        res = ConfigResource(ConfigResourceType.TOPIC, topic)
        configs = admin.describe_configs([res], config_filter="all")
        topic_configs = configs.get("topic", {}).get(topic, {})
        pc.check("retention.ms" in topic_configs,
                 f"describe_configs: no retention.ms in {sorted(topic_configs)}")
        value = topic_configs["retention.ms"].get("value")
        pc.check(value == "3600000", f"retention.ms = {value!r}, expected '3600000'")
        pc.log(f"described {topic}: retention.ms={value}")

        admin.create_partitions({topic: 4}, timeout_ms=10000)
        poll_until(partition_count(4), f"{topic} listed with 4 partitions after create_partitions")
        pc.log(f"grew {topic} to 4 partitions")

        admin.delete_topics([topic], timeout_ms=10000)
        poll_until(lambda: True if topic not in admin.list_topics() else "still listed",
                   f"{topic} gone after delete_topics")
        pc.log(f"deleted {topic}")
    finally:
        admin.close()


def scenario_roundtrip(bootstrap, codec):
    pc.check(codec in pc.CODECS, f"unknown codec {codec}; one of {pc.CODECS}")
    supported, package = CODEC_SUPPORT[codec]
    if not supported():
        print(f"skipped: kafka-python roundtrip {codec}: python package {package} not installed")
        return
    topic = pc.fresh_topic(f"roundtrip-{codec}-kafka-python")
    n = pc.ROUNDTRIP_RECORDS
    records = []
    for i in range(n):
        key, value, headers = pc.expected_record(i, codec)
        records.append({"topic": topic, "key": key, "value": value, "headers": headers})
    prod = producer(bootstrap, compression_type=None if codec == "none" else codec)
    try:
        acks = produce_all(prod, records)
    finally:
        prod.close(timeout=5)
    cons = consumer(bootstrap)
    try:
        partitions = partitions_of(cons, topic)
    finally:
        cons.close()
    pc.log(f"produced {n} {codec} records to {topic} ({len(partitions)} partitions)")
    recs = consume_from_beginning(bootstrap, topic, partitions, n)
    pc.check_roundtrip([(r.partition, r.offset, r.key, r.value, r.headers) for r in recs], n, codec)
    by_seq = {int(dict(r.headers)["seq"]): (r.partition, r.offset) for r in recs}
    for i, ack in enumerate(acks):
        pc.check(by_seq[i] == ack, f"record {i} acked at {ack}, consumed at {by_seq[i]}")


def scenario_timestamps(bootstrap):
    topic = pc.fresh_topic("timestamps-kafka-python")
    t0 = pc.now_ms() - 60_000
    prod = producer(bootstrap)
    try:
        acks = produce_all(prod, [{"topic": topic, "partition": 0, "key": f"k{i}".encode(),
                                   "value": f"v{i}".encode(), "timestamp_ms": t0 + 1000 * i}
                                  for i in range(3)])
    finally:
        prod.close(timeout=5)
    pc.check([o for _, o in acks] == [0, 1, 2], f"acked offsets {acks}, expected 0,1,2")
    tp = TopicPartition(topic, 0)
    cons = consumer(bootstrap)
    try:
        for ts, want in ((t0 - 1, 0), (t0, 0), (t0 + 500, 1), (t0 + 1000, 1), (t0 + 2000, 2)):
            got = cons.offsets_for_times({tp: ts}, timeout_ms=OP_TIMEOUT_S * 1000)[tp]
            pc.check(got is not None and got.offset == want,
                     f"offsets_for_times(t0{ts - t0:+d}) = {got}, expected offset {want}")
            pc.check(got.timestamp == t0 + 1000 * want,
                     f"offsets_for_times(t0{ts - t0:+d}) timestamp {got.timestamp}, "
                     f"expected {t0 + 1000 * want}")
        got = cons.offsets_for_times({tp: t0 + 2001}, timeout_ms=OP_TIMEOUT_S * 1000)[tp]
        pc.check(got is None, f"offsets_for_times(past the last record) = {got}, expected None")
    finally:
        cons.close()
    low, high = watermarks(bootstrap, topic)
    pc.check((low, high) == (0, 3), f"beginning/end offsets ({low}, {high}), expected (0, 3)")
    recs = consume_from_beginning(bootstrap, topic, [0], 3)
    for i, r in enumerate(recs):
        pc.check(r.timestamp == t0 + 1000 * i, f"offset {r.offset}: timestamp {r.timestamp}, "
                 f"expected {t0 + 1000 * i}")
        pc.check(r.timestamp_type == 0, f"offset {r.offset}: timestamp type {r.timestamp_type}, "
                 "expected CreateTime (0)")


def scenario_idempotent(bootstrap):
    topic = pc.fresh_topic("idempotent-kafka-python")
    n = pc.IDEMPOTENT_RECORDS
    prod = producer(bootstrap, enable_idempotence=True, acks="all")
    try:
        acks = produce_all(prod, [{"topic": topic, "partition": 0, "key": f"{i}".encode(),
                                   "value": f"{i}".encode()} for i in range(n)])
    finally:
        prod.close(timeout=5)
    offsets = [o for _, o in acks]
    mismatch = next((i for i, o in enumerate(offsets) if o != i), None)
    pc.check(mismatch is None, f"acked offsets are not 0..n-1 in order: record {mismatch} "
             f"acked at offset {offsets[mismatch] if mismatch is not None else None}")
    recs = consume_from_beginning(bootstrap, topic, [0], n)
    pc.check_numbered([(r.offset, r.value) for r in recs], n)
    low, high = watermarks(bootstrap, topic)
    pc.check((low, high) == (0, n), f"beginning/end offsets ({low}, {high}), expected (0, {n})")


def scenario_large(bootstrap):
    topic = pc.fresh_topic("large-kafka-python")
    # The client's own limits are raised so that the broker is the one refusing.
    prod = producer(bootstrap, max_request_size=10_000_000, linger_ms=0, retries=0)
    try:
        big_ok = bytes((i * 7) % 251 for i in range(pc.LARGE_OK_BYTES))
        acks = produce_all(prod, [{"topic": topic, "partition": 0, "key": b"ok", "value": big_ok}])
        pc.check(acks == [(0, 0)], f"large record acked at {acks}, expected partition 0 offset 0")

        fut = prod.send(topic, partition=0, key=b"too-big", value=b"x" * pc.LARGE_REFUSED_BYTES)
        try:
            md = fut.get(timeout=OP_TIMEOUT_S)
            raise pc.PeerFailure(f"2,000,000-byte record was accepted at offset {md.offset}")
        except kerr.MessageSizeTooLargeError as e:
            pc.log(f"refused as expected: {e}")
        except kerr.KafkaError as e:
            raise pc.PeerFailure(f"2,000,000-byte record refused with {type(e).__name__}: {e}, "
                                 "expected MessageSizeTooLargeError") from e

        acks = produce_all(prod, [{"topic": topic, "partition": 0, "key": b"after",
                                   "value": b"still works"}])
        pc.check(acks == [(0, 1)], f"record after the refused one acked at {acks}, expected offset 1")
    finally:
        prod.close(timeout=5)
    recs = consume_from_beginning(bootstrap, topic, [0], 2)
    pc.check(recs[0].value == big_ok, f"large record came back with {len(recs[0].value)} bytes, altered")
    pc.check(recs[1].value == b"still works", f"offset 1 holds {recs[1].value!r}")


def scenario_produce(bootstrap, topic, n):
    n = int(n)
    prod = producer(bootstrap)
    try:
        acks = produce_all(prod, [{"topic": topic, "partition": 0, "key": str(i).encode(),
                                   "value": str(i).encode()} for i in range(n)])
    finally:
        prod.close(timeout=5)
    for i, (_, offset) in enumerate(acks):
        print(f"ack {i} {offset}")
    sys.stdout.flush()


def scenario_consume(bootstrap, topic, n):
    n = int(n)
    recs = consume_from_beginning(bootstrap, topic, [0], n) if n > 0 else []
    pc.check_numbered([(r.offset, r.value) for r in recs[:n]], n)
    low, high = watermarks(bootstrap, topic)
    pc.check((low, high) == (0, n), f"beginning/end offsets ({low}, {high}), expected exactly (0, {n})")


def scenario_group_member(bootstrap, group, topic):
    from kafka import ConsumerRebalanceListener

    stop = pc.stdin_closed_event()
    cons = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=10000,
        heartbeat_interval_ms=500,
    )

    class Listener(ConsumerRebalanceListener):
        def on_partitions_revoked(self, revoked):
            pass

        def on_partitions_assigned(self, assigned):
            pc.say("assigned " + ",".join(str(p.partition) for p in sorted(assigned, key=lambda p: p.partition)))

    cons.subscribe([topic], listener=Listener())
    while not stop.is_set():
        batches = cons.poll(timeout_ms=200)
        count = 0
        for tp, records in sorted(batches.items(), key=lambda kv: kv[0].partition):
            for r in records:
                pc.say(f"record {tp.partition} {r.offset} {r.value.decode()}")
                count += 1
        if count:
            cons.commit()
    cons.close()
    pc.say("closed")


SCENARIOS = {
    "group-member": (scenario_group_member, pc.GROUP_MEMBER_TIMEOUT_S),
    "admin": (scenario_admin, pc.SCENARIO_TIMEOUT_S),
    "roundtrip": (scenario_roundtrip, pc.SCENARIO_TIMEOUT_S),
    "timestamps": (scenario_timestamps, pc.SCENARIO_TIMEOUT_S),
    "idempotent": (scenario_idempotent, pc.SCENARIO_TIMEOUT_S),
    "large": (scenario_large, pc.SCENARIO_TIMEOUT_S),
    "produce": (scenario_produce, pc.SCENARIO_TIMEOUT_S),
    "consume": (scenario_consume, pc.SCENARIO_TIMEOUT_S),
}

if __name__ == "__main__":
    sys.exit(pc.run_main("kafka_python_peer", SCENARIOS, sys.argv))
