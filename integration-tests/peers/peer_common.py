"""Shared helpers for the Python interop peers (confluent-kafka and kafka-python).

Every peer is `PROG BOOTSTRAP SCENARIO [ARGS]`: exit 0 on success, non-zero with a
`FAIL:` line on stderr on any mismatch. A watchdog thread ends the process if a scenario
runs past its deadline, so a peer never hangs a test run.
"""

import os
import sys
import threading
import time
import uuid

SCENARIO_TIMEOUT_S = 30.0
CODECS = ("none", "gzip", "snappy", "lz4", "zstd")
ROUNDTRIP_RECORDS = 200
IDEMPOTENT_RECORDS = 1000
# Under the broker's default message.max.bytes (1048588) with room for batch overhead.
LARGE_OK_BYTES = 1_000_000
# Well over it: the broker must refuse this with MESSAGE_TOO_LARGE.
LARGE_REFUSED_BYTES = 2_000_000


class PeerFailure(Exception):
    """A check failed: the message says what was expected and what was seen."""


def tls_files():
    """TLS files from STROM_PEER_SSL_CA / _CERT / _KEY (set by the TLS tests): the CA
    certificate, and the client certificate and key for brokers that ask for one."""
    names = (("ca", "STROM_PEER_SSL_CA"), ("cert", "STROM_PEER_SSL_CERT"),
             ("key", "STROM_PEER_SSL_KEY"))
    return {k: os.environ[v] for k, v in names if os.environ.get(v)}


def sasl_settings():
    """SASL settings from STROM_PEER_SASL_MECHANISM / _USER / _PASSWORD (set by the
    security tests), or an empty dict."""
    names = (("mechanism", "STROM_PEER_SASL_MECHANISM"), ("user", "STROM_PEER_SASL_USER"),
             ("password", "STROM_PEER_SASL_PASSWORD"))
    return {k: os.environ[v] for k, v in names if os.environ.get(v)}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def check(cond, msg):
    if not cond:
        raise PeerFailure(msg)


def start_watchdog(seconds, what):
    """Ends the process with exit code 3 if it is still running after `seconds`."""

    def expire():
        log(f"FAIL: {what}: timed out after {seconds:.0f} s")
        sys.stdout.flush()
        os._exit(3)

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()
    return timer


def fresh_topic(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def now_ms():
    return int(time.time() * 1000)


def expected_record(i, tag):
    """The key, value and headers of record number `i` in a roundtrip run tagged `tag`."""
    key = f"key-{i:05d}".encode()
    value = (f"value-{i:05d}-" + "strom compresses this " * (i % 40)).encode()
    headers = [("seq", str(i).encode()), ("tag", tag.encode()), ("empty", b"")]
    return key, value, headers


def normalize_headers(headers):
    return [(k, bytes(v) if v is not None else None) for k, v in (headers or [])]


def check_roundtrip(consumed, n, tag):
    """`consumed`: list of (partition, offset, key, value, headers) in consumption order."""
    check(len(consumed) == n, f"consumed {len(consumed)} records, expected {n}")
    seen = set()
    last_by_partition = {}
    for partition, offset, key, value, headers in consumed:
        headers = normalize_headers(headers)
        seq_values = [v for k, v in headers if k == "seq"]
        check(len(seq_values) == 1, f"p{partition}@{offset}: no single seq header in {headers!r}")
        i = int(seq_values[0])
        check(0 <= i < n, f"p{partition}@{offset}: seq {i} out of range")
        check(i not in seen, f"p{partition}@{offset}: duplicate record seq {i}")
        seen.add(i)
        exp_key, exp_value, exp_headers = expected_record(i, tag)
        check(key == exp_key, f"p{partition}@{offset}: key {key!r}, expected {exp_key!r}")
        check(value == exp_value, f"p{partition}@{offset}: value of seq {i} differs "
              f"(len {len(value or b'')} vs {len(exp_value)})")
        check(headers == exp_headers, f"p{partition}@{offset}: headers {headers!r}, expected {exp_headers!r}")
        prev = last_by_partition.get(partition)
        if prev is not None:
            check(offset > prev[0], f"p{partition}: offset {offset} after {prev[0]}")
            check(i > prev[1], f"p{partition}: seq {i} at offset {offset} after seq {prev[1]}: order lost")
        last_by_partition[partition] = (offset, i)
    check(len(seen) == n, f"saw {len(seen)} distinct records, expected {n}")


def check_numbered(values_by_offset, n):
    """`values_by_offset`: list of (offset, value bytes) of one partition in order; the
    values must be b"0" .. b"n-1" at offsets 0 .. n-1."""
    check(len(values_by_offset) == n, f"consumed {len(values_by_offset)} records, expected {n}")
    for expected, (offset, value) in enumerate(values_by_offset):
        check(offset == expected, f"record {expected} at offset {offset}")
        check(value == str(expected).encode(), f"offset {offset}: value {value!r}, expected {expected}")


def run_main(prog, scenarios, argv):
    """Dispatches `PROG BOOTSTRAP SCENARIO [ARGS]` to `scenarios[SCENARIO](bootstrap, *args)`."""
    if len(argv) < 3 or argv[2] not in scenarios:
        log(f"usage: {prog} BOOTSTRAP SCENARIO [ARGS]; scenarios: {', '.join(sorted(scenarios))}")
        return 2
    bootstrap, scenario, args = argv[1], argv[2], argv[3:]
    func, timeout = scenarios[scenario]
    what = f"{prog} {scenario} {' '.join(args)}".strip()
    if timeout is not None:
        start_watchdog(timeout, what)
    started = time.monotonic()
    try:
        func(bootstrap, *args)
    except PeerFailure as e:
        log(f"FAIL: {what}: {e}")
        return 1
    except Exception as e:  # noqa: BLE001 - any client error is a failed scenario
        log(f"FAIL: {what}: {type(e).__name__}: {e}")
        import traceback
        traceback.print_exc()
        return 1
    log(f"ok: {what} ({time.monotonic() - started:.1f} s)")
    return 0


def poll_until(cond, what, timeout_s):
    """Calls `cond` every 0.1 s until it returns True; fails with its last answer after
    `timeout_s` seconds."""
    deadline = time.monotonic() + timeout_s
    while True:
        last = cond()
        if last is True:
            return
        if time.monotonic() > deadline:
            raise PeerFailure(f"{what} (last seen: {last})")
        time.sleep(0.1)


def stdin_closed_event():
    """An event set once stdin reaches EOF: the test's way to tell a long-running peer to
    finish (it closes the pipe)."""
    closed = threading.Event()

    def wait():
        while sys.stdin.read(4096):
            pass
        closed.set()

    threading.Thread(target=wait, daemon=True).start()
    return closed


def say(line):
    """One line of the peer's protocol with the test, on stdout, flushed."""
    print(line, flush=True)


# A group member runs until the test closes its stdin.
GROUP_MEMBER_TIMEOUT_S = 120.0
