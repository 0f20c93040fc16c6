#!/usr/bin/env python3
"""confluent-kafka-python (librdkafka) as a third-party peer of the Strom broker.

Usage: confluent_kafka_peer.py BOOTSTRAP SCENARIO [ARGS]

Scenarios:
  admin                     create a 3-partition topic with a config, list and describe
                            it, grow it to 4 partitions, delete it
  roundtrip CODEC           200 keyed records with headers, CODEC in none/gzip/snappy/lz4/zstd,
                            consumed from the beginning and compared
  timestamps                explicit timestamps, offsets_for_times, watermarks
  idempotent                enable.idempotence=true, acks=all, 1000 records, no gaps or dups
  large                     ~1,000,000-byte record accepted, 2,000,000-byte one refused with
                            MSG_SIZE_TOO_LARGE, then the producer still works
  produce TOPIC N [FIRST]   N numbered records (FIRST, FIRST+1, ..; default 0) to partition 0;
                            prints `ack I OFFSET` lines
  consume TOPIC N           exactly records 0..N-1 from the beginning of partition 0
  dump TOPIC                every record of partition 0 up to the high watermark, printed
                            as `OFFSET KEY VALUE` lines (for the crash tests)
  produce-until-killed TOPIC OUTFILE
                            numbered records with acks=all until killed, appending
                            `I OFFSET` per acknowledged record to OUTFILE (flushed per ack)
  group-member GROUP TOPIC  joins GROUP subscribed to TOPIC (auto.offset.reset=earliest,
                            manual commits after every poll) until stdin closes; prints
                            `assigned P,P,..` after each rebalance and `record P O VALUE` per
                            record, then commits, leaves the group and prints `closed`
  acls PRINCIPAL PREFIX     (as a user allowed to alter the cluster) allows PRINCIPAL
                            everything on topics and groups starting with PREFIX
                            (CreateAcls), then finds both bindings with DescribeAcls
  acls-delete PRINCIPAL     deletes every binding of PRINCIPAL (DeleteAcls); prints
                            `deleted N`
  mock-broker               (development aid) starts librdkafka's mock cluster, prints
                            `mock broker listening on HOST:PORT`, runs until killed;
                            BOOTSTRAP is ignored

Consumption is group-less (assign + OFFSET_BEGINNING). confluent-kafka insists on a
group.id, so a throwaway one is set, but nothing joins, commits or fetches group offsets.
"""

import concurrent.futures
import sys
import time

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicCollection,
    TopicPartition,
)
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ConfigResource,
    NewPartitions,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)

import peer_common as pc

OP_TIMEOUT_S = 15.0


def base_conf(bootstrap):
    conf = {"bootstrap.servers": bootstrap, "log_level": 4}
    tls = pc.tls_files()
    if tls:
        conf["security.protocol"] = "ssl"
        conf["ssl.ca.location"] = tls["ca"]
        if "cert" in tls:
            conf["ssl.certificate.location"] = tls["cert"]
            conf["ssl.key.location"] = tls["key"]
    sasl = pc.sasl_settings()
    if sasl:
        conf["security.protocol"] = "sasl_ssl" if tls else "sasl_plaintext"
        conf["sasl.mechanisms"] = sasl["mechanism"]
        conf["sasl.username"] = sasl["user"]
        conf["sasl.password"] = sasl["password"]
    return conf


def producer(bootstrap, **extra):
    conf = base_conf(bootstrap)
    conf.update({"acks": "all", "linger.ms": 5, "message.timeout.ms": 20000})
    conf.update({k.replace("_", "."): v for k, v in extra.items()})
    return Producer(conf)


def consumer(bootstrap, **extra):
    conf = base_conf(bootstrap)
    conf.update({
        "group.id": pc.fresh_topic("strom-interop-unused-group"),
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": False,
    })
    conf.update({k.replace("_", "."): v for k, v in extra.items()})
    return Consumer(conf)


def produce_all(prod, records):
    """Produces `records` (dicts of Producer.produce kwargs) and waits for every delivery
    report. Returns [(partition, offset)] in produce order; fails on any delivery error."""
    reports = [None] * len(records)

    def on_delivery_for(idx):
        def on_delivery(err, msg):
            reports[idx] = (err, msg.partition() if err is None else None,
                            msg.offset() if err is None else None)
        return on_delivery

    for idx, rec in enumerate(records):
        while True:
            try:
                prod.produce(on_delivery=on_delivery_for(idx), **rec)
                break
            except BufferError:
                prod.poll(0.1)
        prod.poll(0)
    remaining = prod.flush(OP_TIMEOUT_S)
    pc.check(remaining == 0, f"{remaining} records still undelivered after {OP_TIMEOUT_S} s")
    out = []
    for idx, rep in enumerate(reports):
        pc.check(rep is not None, f"no delivery report for record {idx}")
        err, partition, offset = rep
        pc.check(err is None, f"record {idx} not delivered: {err}")
        out.append((partition, offset))
    return out


def partitions_of(client, topic):
    md = client.list_topics(topic=topic, timeout=OP_TIMEOUT_S)
    tmd = md.topics.get(topic)
    pc.check(tmd is not None and tmd.error is None, f"metadata for {topic}: {tmd and tmd.error}")
    return sorted(tmd.partitions)


def consume_from_beginning(bootstrap, topic, partitions, n, timeout_s=OP_TIMEOUT_S):
    """Returns the first `n` messages of `partitions` as Message objects."""
    cons = consumer(bootstrap)
    try:
        cons.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        out = []
        deadline = time.monotonic() + timeout_s
        while len(out) < n and time.monotonic() < deadline:
            for msg in cons.consume(num_messages=min(500, n - len(out)), timeout=0.5):
                if msg.error() is not None:
                    raise pc.PeerFailure(f"consume error: {msg.error()}")
                out.append(msg)
        pc.check(len(out) >= n, f"consumed only {len(out)} of {n} records in {timeout_s:.0f} s")
        return out
    finally:
        cons.close()


def as_rows(msgs):
    return [(m.partition(), m.offset(), m.key(), m.value(), m.headers()) for m in msgs]


def admin_client(bootstrap):
    return AdminClient(base_conf(bootstrap))


def wait_future(fut, what):
    try:
        return fut.result(timeout=OP_TIMEOUT_S)
    except KafkaException as e:
        raise pc.PeerFailure(f"{what}: {e}") from e
    except concurrent.futures.TimeoutError as e:
        raise pc.PeerFailure(f"{what}: no answer in {OP_TIMEOUT_S:.0f} s") from e


def poll_until(cond, what, timeout_s=OP_TIMEOUT_S):
    pc.poll_until(cond, what, timeout_s)


# --- scenarios ----------------------------------------------------------------------------

def scenario_admin(bootstrap):
    admin = admin_client(bootstrap)
    topic = pc.fresh_topic("admin-confluent")
    new = NewTopic(topic, num_partitions=3, replication_factor=1,
                   config={"retention.ms": "3600000", "cleanup.policy": "delete"})
    for t, fut in admin.create_topics([new], operation_timeout=10).items():
        wait_future(fut, f"create_topics {t}")
    pc.log(f"created {topic}")

    def partition_count():
        tmd = admin.list_topics(timeout=OP_TIMEOUT_S).topics.get(topic)
        return True if tmd is not None and len(tmd.partitions) == want else (tmd and len(tmd.partitions))

    want = 3
    poll_until(partition_count, f"list_topics: {topic} with 3 partitions")

    desc = admin.describe_topics(TopicCollection([topic]), request_timeout=10)
    d = wait_future(desc[topic], f"describe_topics {topic}")
    pc.check(d.name == topic and len(d.partitions) == 3, f"describe_topics: {d}")

    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    configs = wait_future(admin.describe_configs([res])[res], f"describe_configs {topic}")
    pc.check("retention.ms" in configs, f"describe_configs: no retention.ms in {sorted(configs)}")
    pc.check(configs["retention.ms"].value == "3600000",
             f"retention.ms = {configs['retention.ms'].value}, expected 3600000")
    pc.log(f"described {topic}: retention.ms={configs['retention.ms'].value}")

    for t, fut in admin.create_partitions([NewPartitions(topic, 4)], operation_timeout=10).items():
        wait_future(fut, f"create_partitions {t}")
    want = 4
    poll_until(partition_count, f"list_topics: {topic} with 4 partitions after create_partitions")
    pc.log(f"grew {topic} to 4 partitions")

    for t, fut in admin.delete_topics([topic], operation_timeout=10).items():
        wait_future(fut, f"delete_topics {t}")
    poll_until(lambda: True if topic not in admin.list_topics(timeout=OP_TIMEOUT_S).topics else "still listed",
               f"list_topics: {topic} gone after delete_topics")
    pc.log(f"deleted {topic}")


def scenario_roundtrip(bootstrap, codec):
    pc.check(codec in pc.CODECS, f"unknown codec {codec}; one of {pc.CODECS}")
    topic = pc.fresh_topic(f"roundtrip-{codec}-confluent")
    n = pc.ROUNDTRIP_RECORDS
    records = []
    for i in range(n):
        key, value, headers = pc.expected_record(i, codec)
        records.append({"topic": topic, "key": key, "value": value, "headers": headers})
    prod = producer(bootstrap, compression_type=codec)
    acks = produce_all(prod, records)
    partitions = partitions_of(prod, topic)
    pc.log(f"produced {n} {codec} records to {topic} ({len(partitions)} partitions), "
           f"last ack {acks[-1]}")
    msgs = consume_from_beginning(bootstrap, topic, partitions, n)
    pc.check_roundtrip(as_rows(msgs), n, codec)
    by_seq = {int(dict(m.headers())["seq"]): (m.partition(), m.offset()) for m in msgs}
    for i, ack in enumerate(acks):
        pc.check(by_seq[i] == ack, f"record {i} acked at {ack}, consumed at {by_seq[i]}")


def scenario_timestamps(bootstrap):
    topic = pc.fresh_topic("timestamps-confluent")
    t0 = pc.now_ms() - 60_000
    prod = producer(bootstrap)
    records = [{"topic": topic, "partition": 0, "key": f"k{i}".encode(), "value": f"v{i}".encode(),
                "timestamp": t0 + 1000 * i} for i in range(3)]
    acks = produce_all(prod, records)
    pc.check([o for _, o in acks] == [0, 1, 2], f"acked offsets {acks}, expected 0,1,2")

    cons = consumer(bootstrap)
    try:
        def lookup(ts):
            res = cons.offsets_for_times([TopicPartition(topic, 0, ts)], timeout=OP_TIMEOUT_S)
            pc.check(res[0].error is None, f"offsets_for_times({ts}): {res[0].error}")
            return res[0].offset

        for ts, want in ((t0 - 1, 0), (t0, 0), (t0 + 500, 1), (t0 + 1000, 1), (t0 + 2000, 2)):
            got = lookup(ts)
            pc.check(got == want, f"offsets_for_times(t0{ts - t0:+d}) = {got}, expected {want}")
        got = lookup(t0 + 2001)
        pc.check(got == -1, f"offsets_for_times(past the last record) = {got}, expected -1 (end)")
        low, high = cons.get_watermark_offsets(TopicPartition(topic, 0), timeout=OP_TIMEOUT_S)
        pc.check((low, high) == (0, 3), f"watermarks ({low}, {high}), expected (0, 3)")
    finally:
        cons.close()
    msgs = consume_from_beginning(bootstrap, topic, [0], 3)
    for i, m in enumerate(msgs):
        ts_type, ts = m.timestamp()
        pc.check(ts == t0 + 1000 * i, f"offset {m.offset()}: timestamp {ts}, expected {t0 + 1000 * i}")
        pc.check(ts_type == 1, f"offset {m.offset()}: timestamp type {ts_type}, expected CreateTime (1)")


def scenario_idempotent(bootstrap):
    topic = pc.fresh_topic("idempotent-confluent")
    n = pc.IDEMPOTENT_RECORDS
    prod = producer(bootstrap, enable_idempotence=True, acks="all")
    records = [{"topic": topic, "partition": 0, "key": f"{i}".encode(), "value": f"{i}".encode()}
               for i in range(n)]
    acks = produce_all(prod, records)
    offsets = [o for _, o in acks]
    mismatch = next((i for i, o in enumerate(offsets) if o != i), None)
    pc.check(mismatch is None, f"acked offsets are not 0..n-1 in order: record {mismatch} "
             f"acked at offset {offsets[mismatch] if mismatch is not None else None}")
    msgs = consume_from_beginning(bootstrap, topic, [0], n)
    pc.check_numbered([(m.offset(), m.value()) for m in msgs], n)
    cons = consumer(bootstrap)
    try:
        low, high = cons.get_watermark_offsets(TopicPartition(topic, 0), timeout=OP_TIMEOUT_S)
    finally:
        cons.close()
    pc.check((low, high) == (0, n), f"watermarks ({low}, {high}), expected (0, {n}): duplicates?")


def scenario_large(bootstrap):
    topic = pc.fresh_topic("large-confluent")
    # The client's own limit is raised so that the broker is the one refusing.
    prod = producer(bootstrap, message_max_bytes=10_000_000, linger_ms=0)
    big_ok = bytes((i * 7) % 251 for i in range(pc.LARGE_OK_BYTES))
    acks = produce_all(prod, [{"topic": topic, "partition": 0, "key": b"ok", "value": big_ok}])
    pc.check(acks == [(0, 0)], f"large record acked at {acks}, expected partition 0 offset 0")

    errors = []
    prod.produce(topic, partition=0, key=b"too-big", value=b"x" * pc.LARGE_REFUSED_BYTES,
                 on_delivery=lambda err, msg: errors.append(err))
    pc.check(prod.flush(OP_TIMEOUT_S) == 0, "no delivery report for the 2,000,000-byte record")
    pc.check(len(errors) == 1 and errors[0] is not None,
             f"2,000,000-byte record was accepted: {errors}")
    pc.check(errors[0].code() == KafkaError.MSG_SIZE_TOO_LARGE,
             f"2,000,000-byte record refused with {errors[0]}, expected MSG_SIZE_TOO_LARGE")
    pc.log(f"refused as expected: {errors[0]}")

    acks = produce_all(prod, [{"topic": topic, "partition": 0, "key": b"after", "value": b"still works"}])
    pc.check(acks == [(0, 1)], f"record after the refused one acked at {acks}, expected offset 1")
    msgs = consume_from_beginning(bootstrap, topic, [0], 2)
    pc.check(msgs[0].value() == big_ok, f"large record came back with {len(msgs[0].value())} bytes, altered")
    pc.check(msgs[1].value() == b"still works", f"offset 1 holds {msgs[1].value()!r}")


def scenario_produce(bootstrap, topic, n, first="0"):
    n, first = int(n), int(first)
    prod = producer(bootstrap)
    numbers = range(first, first + n)
    acks = produce_all(prod, [{"topic": topic, "partition": 0, "key": str(i).encode(),
                               "value": str(i).encode()} for i in numbers])
    for i, (_, offset) in zip(numbers, acks):
        print(f"ack {i} {offset}")
    sys.stdout.flush()


def scenario_consume(bootstrap, topic, n):
    n = int(n)
    msgs = consume_from_beginning(bootstrap, topic, [0], n) if n > 0 else []
    pc.check_numbered([(m.offset(), m.value()) for m in msgs[:n]], n)
    cons = consumer(bootstrap)
    try:
        low, high = cons.get_watermark_offsets(TopicPartition(topic, 0), timeout=OP_TIMEOUT_S)
    finally:
        cons.close()
    pc.check((low, high) == (0, n), f"watermarks ({low}, {high}), expected exactly (0, {n})")


def scenario_consume_committed(bootstrap, topic, n):
    """Reads partition 0 with isolation.level=read_committed: prints the first `n` values
    and the offset after them, then checks that nothing more arrives for a second."""
    n = int(n)
    cons = consumer(bootstrap, isolation_level="read_committed")
    try:
        cons.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        out = []
        deadline = time.monotonic() + OP_TIMEOUT_S
        while len(out) < n and time.monotonic() < deadline:
            for msg in cons.consume(num_messages=n - len(out), timeout=0.5):
                if msg.error() is not None:
                    raise pc.PeerFailure(f"consume error: {msg.error()}")
                out.append(msg)
        pc.check(len(out) == n, f"read {len(out)} of {n} committed records")
        extra = cons.consume(num_messages=10, timeout=1.0)
        pc.check(not extra, f"read past the committed records: {[m.value() for m in extra]}")
        for m in out:
            print(f"{m.offset()} {(m.value() or b'').decode(errors='replace')}")
        low, high = cons.get_watermark_offsets(TopicPartition(topic, 0), timeout=OP_TIMEOUT_S)
        print(f"end {high}")
    finally:
        cons.close()
    sys.stdout.flush()


def scenario_transactions(bootstrap, topic):
    """A transactional producer commits, aborts and commits again; a second producer with
    the same transactional.id fences the first; read_committed sees exactly the committed
    records, read_uncommitted all of them. Prints the committed values read."""
    txn_id = pc.fresh_topic("strom-interop-txn")
    conf = {"transactional.id": txn_id, "linger.ms": 5, "message.timeout.ms": 20000}
    prod = Producer({**base_conf(bootstrap), **conf})
    prod.init_transactions(OP_TIMEOUT_S)

    def run(values, commit):
        prod.begin_transaction()
        for v in values:
            prod.produce(topic, value=v.encode(), partition=0)
        if commit:
            prod.commit_transaction(OP_TIMEOUT_S)
        else:
            prod.flush(OP_TIMEOUT_S)
            prod.abort_transaction(OP_TIMEOUT_S)

    run([f"committed-{i}" for i in range(5)], True)
    run([f"aborted-{i}" for i in range(5)], False)
    run([f"committed-{i}" for i in range(5, 10)], True)

    # A second producer with the same id fences the first.
    zombie_fenced = False
    second = Producer({**base_conf(bootstrap), **conf})
    second.init_transactions(OP_TIMEOUT_S)
    try:
        prod.begin_transaction()
        prod.produce(topic, value=b"zombie", partition=0)
        prod.commit_transaction(OP_TIMEOUT_S)
    except KafkaException as e:
        err = e.args[0]
        zombie_fenced = err.fatal() or err.code() in (KafkaError._FENCED, KafkaError.PRODUCER_FENCED,
                                                      KafkaError.INVALID_PRODUCER_EPOCH)
        pc.log(f"the first producer is fenced: {err}")
    pc.check(zombie_fenced, "the first producer was not fenced by the second")
    second.begin_transaction()
    second.produce(topic, value=b"committed-10", partition=0)
    second.commit_transaction(OP_TIMEOUT_S)

    def read(isolation, n):
        cons = consumer(bootstrap, isolation_level=isolation)
        try:
            cons.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
            out = []
            deadline = time.monotonic() + OP_TIMEOUT_S
            while len(out) < n and time.monotonic() < deadline:
                for msg in cons.consume(num_messages=100, timeout=0.5):
                    if msg.error() is not None:
                        raise pc.PeerFailure(f"consume error: {msg.error()}")
                    out.append(msg.value().decode())
            out.extend(m.value().decode() for m in cons.consume(num_messages=100, timeout=1.0))
            return out
        finally:
            cons.close()

    committed = read("read_committed", 11)
    expected = [f"committed-{i}" for i in range(11)]
    pc.check(committed == expected, f"read_committed read {committed}")
    everything = read("read_uncommitted", 15)
    pc.check(len([v for v in everything if v.startswith("aborted-")]) == 5,
             f"read_uncommitted read {everything}")
    for v in committed:
        print(v)
    sys.stdout.flush()


def scenario_transform(bootstrap, source, sink, group, n):
    """Consume-transform-produce with exactly-once: reads `n` records of `source` in group
    `group`, writes each upper-cased to `sink` in transactions that also commit the
    group's offsets (send_offsets_to_transaction). The first transaction is aborted: its
    output and offsets must vanish. Prints the group's committed offset at the end.

    Logs every batch, rebalance and committed-offset answer to stderr, so a failure shows
    its history. Records handed out again from before a seek (offsets below the next one
    expected) are logged and skipped, as an exactly-once application must."""
    n = int(n)
    cons = consumer(bootstrap, group_id=group, isolation_level="read_committed",
                    auto_offset_reset="earliest")
    prod = Producer({**base_conf(bootstrap), "transactional.id": pc.fresh_topic("strom-transform"),
                     "linger.ms": 5})
    prod.init_transactions(OP_TIMEOUT_S)
    next_offset = {}

    def on_assign(_consumer, parts):
        pc.log(f"transform: assigned {[(tp.partition, tp.offset) for tp in parts]}")
        next_offset.clear()

    def on_revoke(_consumer, parts):
        pc.log(f"transform: revoked {[tp.partition for tp in parts]}")

    cons.subscribe([source], on_assign=on_assign, on_revoke=on_revoke)
    position = 0
    aborted_once = False
    deadline = time.monotonic() + OP_TIMEOUT_S
    try:
        while position < n and time.monotonic() < deadline:
            msgs = []
            for m in cons.consume(num_messages=50, timeout=0.5):
                if m.error() is not None:
                    continue
                expected = next_offset.get(m.partition())
                if expected is not None and m.offset() < expected:
                    pc.log(f"transform: skipped offset {m.offset()} of partition "
                           f"{m.partition()}, next is {expected}")
                    continue
                next_offset[m.partition()] = m.offset() + 1
                msgs.append(m)
            if not msgs:
                continue
            prod.begin_transaction()
            for m in msgs:
                prod.produce(sink, value=m.value().upper(), partition=0)
            offsets = cons.position(cons.assignment())
            pc.log(f"transform: batch {msgs[0].offset()}..{msgs[-1].offset()} "
                   f"({len(msgs)}), position {[(tp.partition, tp.offset) for tp in offsets]}")
            prod.send_offsets_to_transaction(offsets, cons.consumer_group_metadata(),
                                             OP_TIMEOUT_S)
            if not aborted_once:
                aborted_once = True
                prod.abort_transaction(OP_TIMEOUT_S)
                # Back to the last committed offsets, which the abort left as they were.
                committed = cons.committed(cons.assignment(), timeout=OP_TIMEOUT_S)
                pc.check(all(tp.offset < 0 for tp in committed),
                         f"offsets of an aborted transaction were committed: {committed}")
                for tp in cons.assignment():
                    cons.seek(TopicPartition(tp.topic, tp.partition, 0))
                    next_offset[tp.partition] = 0
                continue
            prod.commit_transaction(OP_TIMEOUT_S)
            position = sum(max(tp.offset, 0) for tp in offsets)
        pc.check(position == n, f"transformed up to position {position} of {n}")
        # The offsets count once the commit markers are written, which follows
        # commit_transaction; until then the group answers the previous offset (or, asked
        # for stable offsets, an error).
        while True:
            committed = cons.committed([TopicPartition(source, 0)], timeout=OP_TIMEOUT_S)[0]
            if committed.offset == n or time.monotonic() >= deadline:
                break
            pc.log(f"transform: committed offset {committed.offset} ({committed.error}), "
                   "asking again")
            time.sleep(0.05)
        print(f"committed {committed.offset}")
    finally:
        cons.close()
    sys.stdout.flush()


def scenario_transform_until(bootstrap, source, sink, group, txn_id, n):
    """Exactly-once consume-transform-produce, restartable: reads `source` in group
    `group` (read_committed), writes each record upper-cased to `sink` in transactions of
    up to 50 records that also commit the group's offsets, until the committed position
    reaches `n`. Prints "position P" after each commit, then "done". Meant to be killed
    and started again: the new producer of `txn_id` fences the old one and aborts its open
    transaction, and the group resumes from its committed offsets."""
    n = int(n)
    cons = consumer(bootstrap, group_id=group, isolation_level="read_committed",
                    auto_offset_reset="earliest", session_timeout_ms=6000,
                    heartbeat_interval_ms=500)
    prod = Producer({**base_conf(bootstrap), "transactional.id": txn_id, "linger.ms": 5})
    prod.init_transactions(OP_TIMEOUT_S)
    cons.subscribe([source])
    position = 0
    deadline = time.monotonic() + 240
    try:
        while position < n and time.monotonic() < deadline:
            msgs = [m for m in cons.consume(num_messages=50, timeout=0.5) if m.error() is None]
            if not msgs:
                continue
            prod.begin_transaction()
            for m in msgs:
                prod.produce(sink, value=m.value().upper(), partition=0)
            offsets = cons.position(cons.assignment())
            prod.send_offsets_to_transaction(offsets, cons.consumer_group_metadata(), OP_TIMEOUT_S)
            prod.commit_transaction(OP_TIMEOUT_S)
            position = sum(max(tp.offset, 0) for tp in offsets)
            print(f"position {position}")
            sys.stdout.flush()
        pc.check(position >= n, f"reached position {position} of {n}")
        print("done")
    finally:
        cons.close()
    sys.stdout.flush()


def scenario_dump(bootstrap, topic):
    cons = consumer(bootstrap)
    try:
        low, high = cons.get_watermark_offsets(TopicPartition(topic, 0), timeout=OP_TIMEOUT_S)
    finally:
        cons.close()
    pc.log(f"{topic}/0: log start {low}, high watermark {high}")
    msgs = consume_from_beginning(bootstrap, topic, [0], high - low, timeout_s=60) if high > low else []
    expected = low
    for m in msgs:
        pc.check(m.offset() >= expected, f"offset {m.offset()} went back (expected >= {expected})")
        expected = m.offset() + 1
        key = (m.key() or b"").decode(errors="replace")
        value = (m.value() or b"").decode(errors="replace")
        print(f"{m.offset()} {key} {value}")
    print(f"end {high}")
    sys.stdout.flush()


def scenario_produce_until_killed(bootstrap, topic, outfile):
    prod = producer(bootstrap, linger_ms=1, message_timeout_ms=60_000)
    out = open(outfile, "a", encoding="utf-8")
    failures = []

    def on_delivery(err, msg):
        if err is not None:
            if not failures:
                pc.log(f"delivery failed (broker gone?): {err}")
            failures.append(err)
            return
        out.write(f"{int(msg.value())} {msg.offset()}\n")
        out.flush()

    i = 0
    while True:
        try:
            prod.produce(topic, partition=0, key=str(i).encode(), value=str(i).encode(),
                         on_delivery=on_delivery)
            i += 1
        except BufferError:
            prod.poll(0.05)
        # Bound what is in flight so the loop does not starve the broker of CPU.
        prod.poll(0.01 if len(prod) > 2000 else 0)


def scenario_produce_until_stdin_closed(bootstrap, topic, partitions, outfile):
    """Idempotent acks=all producer writing `c-N` to partition N % PARTITIONS, about a
    thousand records a second, until stdin closes; then waits for every delivery report.
    Each acknowledged record is a line `VALUE PARTITION OFFSET` in OUTFILE; the last stdout
    line is `done SENT ACKED FAILED`."""
    partitions = int(partitions)
    stop = pc.stdin_closed_event()
    prod = producer(bootstrap, linger_ms=1, enable_idempotence=True,
                    message_timeout_ms=120_000)
    out = open(outfile, "w", encoding="utf-8")
    counts = {"acked": 0, "failed": 0}

    def on_delivery(err, msg):
        if err is not None:
            counts["failed"] += 1
            pc.log(f"delivery failed: {err}")
            return
        counts["acked"] += 1
        out.write(f"{msg.value().decode()} {msg.partition()} {msg.offset()}\n")

    sent = 0
    while not stop.is_set():
        try:
            prod.produce(topic, partition=sent % partitions, value=f"c-{sent}".encode(),
                         on_delivery=on_delivery)
            sent += 1
        except BufferError:
            prod.poll(0.05)
        prod.poll(0.001)
    remaining = prod.flush(150)
    out.close()
    pc.check(remaining == 0, f"{remaining} records without a delivery report")
    print(f"done {sent} {counts['acked']} {counts['failed']}")
    sys.stdout.flush()


def scenario_group_member(bootstrap, group, topic):
    stop = pc.stdin_closed_event()
    conf = base_conf(bootstrap)
    conf.update({
        "group.id": group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "session.timeout.ms": 10000,
        "heartbeat.interval.ms": 500,
    })
    cons = Consumer(conf)

    def on_assign(_consumer, partitions):
        pc.say("assigned " + ",".join(str(p.partition) for p in sorted(partitions, key=lambda p: p.partition)))

    cons.subscribe([topic], on_assign=on_assign)
    while not stop.is_set():
        msgs = cons.consume(num_messages=100, timeout=0.2)
        for msg in msgs:
            pc.check(msg.error() is None, f"consume error: {msg.error()}")
            pc.say(f"record {msg.partition()} {msg.offset()} {msg.value().decode()}")
        if msgs:
            cons.commit(asynchronous=False)
    cons.close()
    pc.say("closed")


def scenario_acls(bootstrap, principal, prefix):
    admin = admin_client(bootstrap)
    bindings = [
        AclBinding(kind, prefix, ResourcePatternType.PREFIXED, principal, "*",
                   AclOperation.ALL, AclPermissionType.ALLOW)
        for kind in (ResourceType.TOPIC, ResourceType.GROUP)
    ]
    for binding, fut in admin.create_acls(bindings, request_timeout=10).items():
        wait_future(fut, f"create_acls {binding}")
    found = wait_future(
        admin.describe_acls(
            AclBindingFilter(ResourceType.ANY, prefix, ResourcePatternType.PREFIXED, principal,
                             None, AclOperation.ANY, AclPermissionType.ANY),
            request_timeout=10),
        f"describe_acls {principal}")
    pc.check(sorted(str(b) for b in found) == sorted(str(b) for b in bindings),
             f"describe_acls {principal}: {found}")
    pc.log(f"allowed {principal} on {prefix}*: {len(found)} bindings")


def scenario_acls_delete(bootstrap, principal):
    admin = admin_client(bootstrap)
    everything = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, principal,
                                  None, AclOperation.ANY, AclPermissionType.ANY)
    deleted = 0
    for _, fut in admin.delete_acls([everything], request_timeout=10).items():
        deleted += len(wait_future(fut, f"delete_acls {principal}"))
    print(f"deleted {deleted}", flush=True)


def scenario_mock_broker(_bootstrap):
    prod = Producer({"bootstrap.servers": "ignored:1", "test.mock.num.brokers": 1, "log_level": 3})
    md = prod.list_topics(timeout=10)
    broker = next(iter(md.brokers.values()))
    print(f"mock broker listening on {broker.host}:{broker.port}", flush=True)
    while True:
        prod.poll(1.0)


SCENARIOS = {
    "admin": (scenario_admin, pc.SCENARIO_TIMEOUT_S),
    "roundtrip": (scenario_roundtrip, pc.SCENARIO_TIMEOUT_S),
    "timestamps": (scenario_timestamps, pc.SCENARIO_TIMEOUT_S),
    "idempotent": (scenario_idempotent, pc.SCENARIO_TIMEOUT_S),
    "large": (scenario_large, pc.SCENARIO_TIMEOUT_S),
    "produce": (scenario_produce, pc.SCENARIO_TIMEOUT_S),
    "consume": (scenario_consume, pc.SCENARIO_TIMEOUT_S),
    "consume-committed": (scenario_consume_committed, pc.SCENARIO_TIMEOUT_S),
    "transactions": (scenario_transactions, pc.SCENARIO_TIMEOUT_S),
    "transform": (scenario_transform, pc.SCENARIO_TIMEOUT_S),
    "transform-until": (scenario_transform_until, 300.0),
    "dump": (scenario_dump, 90.0),
    # Runs until the test kills it; the cap only guards against a forgotten process.
    "produce-until-killed": (scenario_produce_until_killed, 180.0),
    "produce-until-stdin-closed": (scenario_produce_until_stdin_closed, 600.0),
    # Development aid, runs until killed.
    "group-member": (scenario_group_member, pc.GROUP_MEMBER_TIMEOUT_S),
    "acls": (scenario_acls, pc.SCENARIO_TIMEOUT_S),
    "acls-delete": (scenario_acls_delete, pc.SCENARIO_TIMEOUT_S),
    "mock-broker": (scenario_mock_broker, None),
}

if __name__ == "__main__":
    sys.exit(pc.run_main("confluent_kafka_peer", SCENARIOS, sys.argv))
