#!/usr/bin/env node
// kafkajs 2.2.4 as a third-party peer of the Strom broker.
//
// Usage: kafkajs_peer.js BOOTSTRAP SCENARIO [ARGS]
//
// kafkajs consumes only through a consumer group: the produce scenarios check what was
// written through the admin API's offset look-ups (fetchTopicOffsets /
// fetchTopicOffsetsByTimestamp); `group-member` consumes as a member of a group.
//
// Scenarios:
//   admin             create a 3-partition topic with a config, list and describe it,
//                     grow it to 4 partitions, delete it
//   roundtrip CODEC   200 keyed records with headers; CODEC none or gzip (snappy, lz4 and
//                     zstd need extra npm codec packages: skipped with a printed reason);
//                     checks acknowledged offsets and the watermarks
//   timestamps        explicit timestamps, fetchTopicOffsetsByTimestamp, watermarks
//   idempotent        idempotent producer, acks=all, 1000 records, offsets 0..999 in order
//   large             ~1,000,000-byte record accepted, 2,000,000-byte one refused with
//                     MESSAGE_TOO_LARGE, then the producer still works
//   produce TOPIC N   N numbered records to partition 0; prints `ack I OFFSET` lines
//   offsets TOPIC N   partition 0 of TOPIC holds exactly offsets 0..N-1
//   group-member GROUP TOPIC
//                     joins GROUP subscribed to TOPIC from the earliest offsets, with a
//                     Java-compatible `range` assigner, committing after every batch, until
//                     stdin closes; prints `assigned P,P,..` per rebalance and `record P O
//                     VALUE` per record, then leaves the group and prints `closed`
//
// kafkajs is loaded from $STROM_PEERS_DIR/node (default: REPO/.peers/node), where
// scripts/install-peers.sh puts it.
'use strict'

const path = require('path')

const PEERS_DIR = process.env.STROM_PEERS_DIR || path.join(__dirname, '..', '..', '.peers')
const { Kafka, CompressionTypes, ConfigResourceTypes, Partitioners, AssignerProtocol, logLevel } = require(
  path.join(PEERS_DIR, 'node', 'node_modules', 'kafkajs')
)

const SCENARIO_TIMEOUT_MS = 30000
const ROUNDTRIP_RECORDS = 200
const IDEMPOTENT_RECORDS = 1000
const LARGE_OK_BYTES = 1000000
const LARGE_REFUSED_BYTES = 2000000

class PeerFailure extends Error {}

const log = (msg) => process.stderr.write(`${msg}\n`)
const check = (cond, msg) => {
  if (!cond) throw new PeerFailure(typeof msg === 'function' ? msg() : msg)
}
const freshTopic = (prefix) => `${prefix}-${Math.random().toString(16).slice(2, 12)}`
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

// TLS from STROM_PEER_SSL_CA / _CERT / _KEY (set by the TLS tests), or none.
function tls() {
  const fs = require('fs')
  const read = (name) => (process.env[name] ? fs.readFileSync(process.env[name], 'utf8') : undefined)
  const ca = read('STROM_PEER_SSL_CA')
  if (!ca) return undefined
  return { ca: [ca], cert: read('STROM_PEER_SSL_CERT'), key: read('STROM_PEER_SSL_KEY') }
}

// SASL from STROM_PEER_SASL_MECHANISM / _USER / _PASSWORD, or none.
function sasl() {
  const mechanism = process.env.STROM_PEER_SASL_MECHANISM
  if (!mechanism) return undefined
  return {
    mechanism: mechanism.toLowerCase(),
    username: process.env.STROM_PEER_SASL_USER,
    password: process.env.STROM_PEER_SASL_PASSWORD,
  }
}

function client(bootstrap) {
  return new Kafka({
    clientId: 'strom-interop-kafkajs',
    brokers: [bootstrap],
    ssl: tls(),
    sasl: sasl(),
    logLevel: logLevel.WARN,
    connectionTimeout: 5000,
    requestTimeout: 15000,
    retry: { retries: 5, initialRetryTime: 100, maxRetryTime: 2000 },
  })
}

async function withAdmin(kafka, fn) {
  const admin = kafka.admin()
  await admin.connect()
  try {
    return await fn(admin)
  } finally {
    await admin.disconnect()
  }
}

async function withProducer(kafka, opts, fn) {
  const producer = kafka.producer({
    allowAutoTopicCreation: true,
    createPartitioner: Partitioners.DefaultPartitioner,
    ...opts,
  })
  await producer.connect()
  try {
    return await fn(producer)
  } finally {
    await producer.disconnect()
  }
}

async function pollUntil(cond, what, timeoutMs = 15000) {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const last = await cond()
    if (last === true) return
    if (Date.now() > deadline) throw new PeerFailure(`${what} (last seen: ${last})`)
    await sleep(100)
  }
}

// Sends `messages` to `topic` in chunks; returns the offset each message was acknowledged
// at, assuming all go to one partition (they must carry `partition`).
async function sendNumbered(producer, topic, messages, extra = {}) {
  const offsets = []
  const chunk = 100
  for (let i = 0; i < messages.length; i += chunk) {
    const batch = messages.slice(i, i + chunk)
    const res = await producer.send({ topic, acks: -1, messages: batch, ...extra })
    check(res.length === 1, () => `send answered for ${res.length} partitions: ${JSON.stringify(res)}`)
    check(res[0].errorCode === 0, () => `send error ${JSON.stringify(res[0])}`)
    const base = parseInt(res[0].baseOffset, 10)
    for (let j = 0; j < batch.length; j++) offsets.push(base + j)
  }
  return offsets
}

async function watermarks(admin, topic) {
  const offs = await admin.fetchTopicOffsets(topic)
  return offs
    .map((p) => ({ partition: p.partition, low: parseInt(p.low, 10), high: parseInt(p.high, 10) }))
    .sort((a, b) => a.partition - b.partition)
}

function expectedRecord(i, tag) {
  const n = String(i).padStart(5, '0')
  return {
    key: `key-${n}`,
    value: `value-${n}-` + 'strom compresses this '.repeat(i % 40),
    headers: { seq: String(i), tag, empty: '' },
  }
}

// --- scenarios ---------------------------------------------------------------------------

async function scenarioAdmin(kafka) {
  const topic = freshTopic('admin-kafkajs')
  await withAdmin(kafka, async (admin) => {
    const created = await admin.createTopics({
      topics: [
        { topic, numPartitions: 3, replicationFactor: 1,
          configEntries: [{ name: 'retention.ms', value: '3600000' }] },
      ],
      waitForLeaders: true,
      timeout: 10000,
    })
    check(created === true, `createTopics returned ${created}, expected true (topic is new)`)
    log(`created ${topic}`)

    const partitionCount = (want) => async () => {
      const topics = await admin.listTopics()
      if (!topics.includes(topic)) return 'not listed'
      const md = await admin.fetchTopicMetadata({ topics: [topic] })
      const got = md.topics[0].partitions.length
      return got === want ? true : `${got} partitions`
    }
    await pollUntil(partitionCount(3), `${topic} listed with 3 partitions`)

    const described = await admin.describeConfigs({
      resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configNames: ['retention.ms'] }],
      includeSynonyms: false,
    })
    const res = described.resources[0]
    check(res.errorCode === 0, () => `describeConfigs error: ${JSON.stringify(res)}`)
    const entry = res.configEntries.find((c) => c.configName === 'retention.ms')
    check(entry, () => `describeConfigs: no retention.ms in ${JSON.stringify(res.configEntries)}`)
    check(entry.configValue === '3600000', `retention.ms = ${entry.configValue}, expected 3600000`)
    log(`described ${topic}: retention.ms=${entry.configValue}`)

    await admin.createPartitions({ topicPartitions: [{ topic, count: 4 }], timeout: 10000 })
    await pollUntil(partitionCount(4), `${topic} listed with 4 partitions after createPartitions`)
    log(`grew ${topic} to 4 partitions`)

    await admin.deleteTopics({ topics: [topic], timeout: 10000 })
    await pollUntil(
      async () => ((await admin.listTopics()).includes(topic) ? 'still listed' : true),
      `${topic} gone after deleteTopics`
    )
    log(`deleted ${topic}`)
  })
}

const CODECS = {
  none: CompressionTypes.None,
  gzip: CompressionTypes.GZIP,
  snappy: null,
  lz4: null,
  zstd: null,
}

async function scenarioRoundtrip(kafka, codec) {
  check(codec in CODECS, `unknown codec ${codec}; one of ${Object.keys(CODECS)}`)
  if (CODECS[codec] === null) {
    process.stdout.write(
      `skipped: kafkajs roundtrip ${codec}: kafkajs needs a separate npm codec package for ${codec}\n`
    )
    return
  }
  const topic = freshTopic(`roundtrip-${codec}-kafkajs`)
  const n = ROUNDTRIP_RECORDS
  const acked = new Map() // partition -> [offset]
  await withProducer(kafka, {}, async (producer) => {
    for (let i = 0; i < n; i += 50) {
      const messages = []
      for (let j = i; j < Math.min(n, i + 50); j++) messages.push(expectedRecord(j, codec))
      const res = await producer.send({ topic, acks: -1, compression: CODECS[codec], messages })
      for (const r of res) {
        check(r.errorCode === 0, () => `send error ${JSON.stringify(r)}`)
        const list = acked.get(r.partition) || []
        list.push(parseInt(r.baseOffset, 10))
        acked.set(r.partition, list)
      }
    }
  })
  for (const [partition, bases] of acked) {
    for (let k = 1; k < bases.length; k++) {
      check(bases[k] > bases[k - 1], `p${partition}: base offsets not increasing: ${bases}`)
    }
  }
  await withAdmin(kafka, async (admin) => {
    const marks = await watermarks(admin, topic)
    const total = marks.reduce((sum, p) => sum + (p.high - p.low), 0)
    check(total === n, () => `watermarks hold ${total} records, expected ${n}: ${JSON.stringify(marks)}`)
    for (const p of marks) check(p.low === 0, `p${p.partition}: log start ${p.low}, expected 0`)
    log(`produced ${n} ${codec} records to ${topic}: ${JSON.stringify(marks)}`)
  })
}

async function scenarioTimestamps(kafka) {
  const topic = freshTopic('timestamps-kafkajs')
  const t0 = Date.now() - 60000
  await withProducer(kafka, {}, async (producer) => {
    const messages = [0, 1, 2].map((i) => ({
      partition: 0, key: `k${i}`, value: `v${i}`, timestamp: String(t0 + 1000 * i),
    }))
    const offsets = await sendNumbered(producer, topic, messages)
    check(offsets.join() === '0,1,2', `acked offsets ${offsets}, expected 0,1,2`)
  })
  await withAdmin(kafka, async (admin) => {
    const cases = [[t0 - 1, 0], [t0, 0], [t0 + 500, 1], [t0 + 1000, 1], [t0 + 2000, 2],
      // Past the last record the broker answers -1 and kafkajs substitutes the high watermark.
      [t0 + 2001, 3]]
    for (const [ts, want] of cases) {
      const res = await admin.fetchTopicOffsetsByTimestamp(topic, ts)
      const p0 = res.find((p) => p.partition === 0)
      check(p0 && parseInt(p0.offset, 10) === want,
        () => `fetchTopicOffsetsByTimestamp(t0${ts - t0 >= 0 ? '+' : ''}${ts - t0}) = ${JSON.stringify(res)}, expected ${want}`)
    }
    const marks = await watermarks(admin, topic)
    check(marks.length >= 1 && marks[0].low === 0 && marks[0].high === 3,
      () => `watermarks ${JSON.stringify(marks)}, expected p0 low 0 high 3`)
  })
}

async function scenarioIdempotent(kafka) {
  const topic = freshTopic('idempotent-kafkajs')
  const n = IDEMPOTENT_RECORDS
  await withProducer(kafka, { idempotent: true, maxInFlightRequests: 1 }, async (producer) => {
    const messages = []
    for (let i = 0; i < n; i++) messages.push({ partition: 0, key: String(i), value: String(i) })
    const offsets = await sendNumbered(producer, topic, messages)
    const bad = offsets.findIndex((o, i) => o !== i)
    check(bad === -1, () => `record ${bad} acked at offset ${offsets[bad]}, expected ${bad}`)
  })
  await withAdmin(kafka, async (admin) => {
    const marks = await watermarks(admin, topic)
    check(marks[0].low === 0 && marks[0].high === n,
      () => `watermarks ${JSON.stringify(marks)}, expected p0 low 0 high ${n}: duplicates?`)
  })
}

function protocolErrorType(e) {
  for (let cur = e; cur; cur = cur.cause || cur.originalError) {
    if (cur.type) return cur.type
  }
  return null
}

async function scenarioLarge(kafka) {
  const topic = freshTopic('large-kafkajs')
  await withProducer(kafka, {}, async (producer) => {
    const big = Buffer.alloc(LARGE_OK_BYTES)
    for (let i = 0; i < big.length; i++) big[i] = (i * 7) % 251
    let offsets = await sendNumbered(producer, topic, [{ partition: 0, key: 'ok', value: big }])
    check(offsets[0] === 0, `large record acked at ${offsets[0]}, expected 0`)

    let refused = null
    try {
      await producer.send({ topic, acks: -1,
        messages: [{ partition: 0, key: 'too-big', value: Buffer.alloc(LARGE_REFUSED_BYTES, 120) }] })
    } catch (e) {
      refused = e
    }
    check(refused !== null, '2,000,000-byte record was accepted')
    const type = protocolErrorType(refused)
    check(type === 'MESSAGE_TOO_LARGE',
      `2,000,000-byte record refused with ${refused.name}: ${refused.message} (type ${type}), expected MESSAGE_TOO_LARGE`)
    log(`refused as expected: ${refused.name}: ${refused.message}`)

    offsets = await sendNumbered(producer, topic, [{ partition: 0, key: 'after', value: 'still works' }])
    check(offsets[0] === 1, `record after the refused one acked at ${offsets[0]}, expected 1`)
  })
  await withAdmin(kafka, async (admin) => {
    const marks = await watermarks(admin, topic)
    check(marks[0].low === 0 && marks[0].high === 2, () => `watermarks ${JSON.stringify(marks)}, expected 0..2`)
  })
}

async function scenarioProduce(kafka, topic, n) {
  n = parseInt(n, 10)
  const messages = []
  for (let i = 0; i < n; i++) messages.push({ partition: 0, key: String(i), value: String(i) })
  const offsets = await withProducer(kafka, {}, (producer) => sendNumbered(producer, topic, messages))
  process.stdout.write(offsets.map((o, i) => `ack ${i} ${o}\n`).join(''))
}

async function scenarioOffsets(kafka, topic, n) {
  n = parseInt(n, 10)
  await withAdmin(kafka, async (admin) => {
    const marks = await watermarks(admin, topic)
    const p0 = marks.find((p) => p.partition === 0)
    check(p0 && p0.low === 0 && p0.high === n, () => `watermarks ${JSON.stringify(marks)}, expected p0 0..${n}`)
  })
}

// Java's RangeAssignor under its protocol name `range`: kafkajs's own assigner is named
// RoundRobinAssigner, which the Java-protocol clients (Java, librdkafka, kafka-python,
// Strom) do not offer, so a mixed group needs an assigner they share.
const RangeAssigner = ({ cluster }) => ({
  name: 'range',
  version: 0,
  async assign({ members, topics }) {
    const sorted = [...members].sort((a, b) => (a.memberId < b.memberId ? -1 : 1))
    const subscribed = new Map(
      sorted.map((m) => [m.memberId, AssignerProtocol.MemberMetadata.decode(m.memberMetadata).topics])
    )
    const assignment = Object.fromEntries(sorted.map((m) => [m.memberId, {}]))
    for (const topic of topics) {
      const partitions = cluster
        .findTopicPartitionMetadata(topic)
        .map((p) => p.partitionId)
        .sort((a, b) => a - b)
      const consumers = sorted.filter((m) => subscribed.get(m.memberId).includes(topic))
      const per = Math.floor(partitions.length / consumers.length)
      const extra = partitions.length % consumers.length
      consumers.forEach((m, i) => {
        const start = per * i + Math.min(i, extra)
        assignment[m.memberId][topic] = partitions.slice(start, start + per + (i < extra ? 1 : 0))
      })
    }
    return sorted.map((m) => ({
      memberId: m.memberId,
      memberAssignment: AssignerProtocol.MemberAssignment.encode({
        version: 0,
        assignment: assignment[m.memberId],
        userData: Buffer.alloc(0),
      }),
    }))
  },
  protocol({ topics }) {
    return {
      name: 'range',
      metadata: AssignerProtocol.MemberMetadata.encode({ version: 0, topics, userData: Buffer.alloc(0) }),
    }
  },
})

async function scenarioGroupMember(kafka, group, topic) {
  const stopped = new Promise((resolve) => {
    process.stdin.on('end', resolve)
    process.stdin.resume()
  })
  const consumer = kafka.consumer({
    groupId: group,
    partitionAssigners: [RangeAssigner],
    sessionTimeout: 10000,
    heartbeatInterval: 500,
  })
  consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
    const owned = (payload.memberAssignment[topic] || []).slice().sort((a, b) => a - b)
    process.stdout.write(`assigned ${owned.join(',')}\n`)
  })
  await consumer.connect()
  await consumer.subscribe({ topics: [topic], fromBeginning: true })
  await consumer.run({
    autoCommit: false,
    eachBatch: async ({ batch }) => {
      if (batch.messages.length === 0) return
      for (const m of batch.messages) {
        process.stdout.write(`record ${batch.partition} ${m.offset} ${m.value.toString()}\n`)
      }
      const next = (BigInt(batch.lastOffset()) + 1n).toString()
      await consumer.commitOffsets([{ topic, partition: batch.partition, offset: next }])
    },
  })
  await stopped
  await consumer.disconnect()
  process.stdout.write('closed\n')
}

const SCENARIOS = {
  admin: scenarioAdmin,
  roundtrip: scenarioRoundtrip,
  timestamps: scenarioTimestamps,
  idempotent: scenarioIdempotent,
  large: scenarioLarge,
  produce: scenarioProduce,
  offsets: scenarioOffsets,
  'group-member': scenarioGroupMember,
}

// Scenarios that run until told to stop get longer.
const TIMEOUTS_MS = { 'group-member': 120000 }

async function main(argv) {
  const [bootstrap, scenario, ...args] = argv
  if (!bootstrap || !(scenario in SCENARIOS)) {
    log(`usage: kafkajs_peer.js BOOTSTRAP SCENARIO [ARGS]; scenarios: ${Object.keys(SCENARIOS).join(', ')}`)
    return 2
  }
  const what = `kafkajs_peer ${scenario} ${args.join(' ')}`.trim()
  const timeoutMs = TIMEOUTS_MS[scenario] || SCENARIO_TIMEOUT_MS
  const watchdog = setTimeout(() => {
    log(`FAIL: ${what}: timed out after ${timeoutMs / 1000} s`)
    process.exit(3)
  }, timeoutMs)
  const started = Date.now()
  try {
    await SCENARIOS[scenario](client(bootstrap), ...args)
  } catch (e) {
    if (e instanceof PeerFailure) {
      log(`FAIL: ${what}: ${e.message}`)
    } else {
      log(`FAIL: ${what}: ${e.name}: ${e.message}\n${e.stack}`)
    }
    return 1
  } finally {
    clearTimeout(watchdog)
  }
  log(`ok: ${what} (${((Date.now() - started) / 1000).toFixed(1)} s)`)
  return 0
}

main(process.argv.slice(2)).then((code) => process.exit(code))
