#!/usr/bin/env node
// kafkajs 2.2.4 (pure JavaScript) against a Kafka-protocol broker.
//
// Usage: node kafkajs_test.js BOOTSTRAP            e.g. 127.0.0.1:9092
//
// The scenario and checks mirror common.py (read that docstring); this file is its JavaScript
// twin because the checker has to see records exactly as kafkajs decoded them. Client specifics:
//   * Codecs: kafkajs implements only gzip itself; snappy, lz4 and zstd need third-party codec
//     plugins registered in CompressionCodecs. We test what a stock kafkajs user gets:
//     none + gzip.
//   * kafkajs speaks only non-flexible protocol versions (Metadata <= 6, Produce <= 7,
//     Fetch <= 11, ApiVersions <= 2, ListOffsets <= 3, CreateTopics <= 3): the broker must keep
//     serving those.
//   * Its 2.x DefaultPartitioner is Java-compatible murmur2: the mapping is checked against an
//     independent murmur2 below (self-tested on Kafka's UtilsTest vectors).
//   * idempotent: true (InitProducerId v0/v1, maxInFlightRequests 1, acks -1). Set
//     KAFKAJS_IDEMPOTENT=0 to test the plain producer (tansu 0.6 answers kafkajs's
//     InitProducerId v1 with UNKNOWN_SERVER_ERROR, so developing against it needs this).
//   * kafkajs has no assign(): its Consumer always joins a group, which Sluice does not
//     implement yet. The read side therefore uses kafkajs's own Cluster and Broker classes
//     (kafkajs/src/cluster) to send Fetch requests and decode the record batches with the
//     kafkajs decoder: the same code path its Consumer uses, minus the group.
'use strict'

const { Kafka, CompressionTypes, logLevel } = require('kafkajs')
const Cluster = require('kafkajs/src/cluster')
const { createLogger, LEVELS } = require('kafkajs/src/loggers')
const LoggerConsole = require('kafkajs/src/loggers/console')
const defaultSocketFactory = require('kafkajs/src/network/socketFactory')

const CODECS = { none: CompressionTypes.None, gzip: CompressionTypes.GZIP }
const NUM_PARTITIONS = 6
const NUM_KEYS = 37
const RECORDS_PER_CODEC = 600
const NULL_VALUE_EVERY = 97
const TIMESTAMP_AGE_MS = 600000
const SEND_CHUNK = 50 // records per producer.send(): several batches per partition
const DEADLINE_MS = 60000
const FETCH_PARTITION_MAX_BYTES = 4096 // several Fetch round trips per partition
const MAX_ERRORS_SHOWN = 25
const IDEMPOTENT = process.env.KAFKAJS_IDEMPOTENT !== '0'

// ------------------------------------------------------------------------------------------
// murmur2, Kafka's Java default partitioner, written independently of kafkajs's copy.

function murmur2 (buf) {
  const m = 0x5bd1e995
  let h = (0x9747b28c ^ buf.length) >>> 0
  const len4 = buf.length >> 2
  for (let i = 0; i < len4; i++) {
    const i4 = i * 4
    let k = (buf[i4] | (buf[i4 + 1] << 8) | (buf[i4 + 2] << 16) | (buf[i4 + 3] << 24)) >>> 0
    k = Math.imul(k, m) >>> 0
    k = (k ^ (k >>> 24)) >>> 0
    k = Math.imul(k, m) >>> 0
    h = Math.imul(h, m) >>> 0
    h = (h ^ k) >>> 0
  }
  const idx = buf.length & ~3
  switch (buf.length % 4) {
    case 3: h = (h ^ (buf[idx + 2] << 16)) >>> 0 // falls through
    case 2: h = (h ^ (buf[idx + 1] << 8)) >>> 0 // falls through
    case 1:
      h = (h ^ buf[idx]) >>> 0
      h = Math.imul(h, m) >>> 0
  }
  h = (h ^ (h >>> 13)) >>> 0
  h = Math.imul(h, m) >>> 0
  h = (h ^ (h >>> 15)) >>> 0
  return h | 0 // signed, like Java
}

const javaPartition = (key, n) => (murmur2(key) & 0x7fffffff) % n

// Kafka's UtilsTest.testMurmur2 vectors.
for (const [s, want] of [['21', -973932308], ['foobar', -790332482],
  ['a-little-bit-long-string', -985981536], ['a-little-bit-longer-string', -1486304829],
  ['lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8', -58897971], ['abc', 479470107]]) {
  if (murmur2(Buffer.from(s)) !== want) throw new Error(`murmur2 self-test failed for ${s}`)
}

// ------------------------------------------------------------------------------------------
// Workload (same shape as common.make_records; a small seeded PRNG keeps it reproducible).

function prng (seed) {
  let x = seed >>> 0 || 1
  return () => { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; return x }
}

function makeRecords (run, codec) {
  let seed = 0
  for (const ch of `${run}/${codec}`) seed = (Math.imul(seed, 31) + ch.charCodeAt(0)) >>> 0
  const rnd = prng(seed)
  const words = ['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot', 'golf', 'hotel']
  const baseTs = Math.floor((Date.now() - TIMESTAMP_AGE_MS) / 1000) * 1000
  const out = []
  for (let seq = 0; seq < RECORDS_PER_CODEC; seq++) {
    const rid = `${codec}-${String(seq).padStart(6, '0')}`
    const key = Buffer.from(`key-${String(rnd() % NUM_KEYS).padStart(3, '0')}`)
    let value = null
    if (seq % NULL_VALUE_EVERY !== NULL_VALUE_EVERY - 1) {
      const body = Array.from({ length: 1 + (rnd() % 39) }, () => words[rnd() % words.length]).join(' ')
      value = Buffer.from(`${run}|${rid}|${body}|${rnd().toString(16)}`)
    }
    // Headers as a list of [key, Buffer]; kafkajs takes an object, so a repeated key becomes
    // an array value, which kafkajs 2.x encodes as repeated headers in order.
    const headers = [
      ['seq', Buffer.from(rid)],
      ['codec', Buffer.from(codec)],
      ['bin', Buffer.from([seq % 256, 0, 255, (seq * 7) % 256])],
      ['empty', Buffer.alloc(0)],
      ['dup', Buffer.from('first')],
      ['dup', Buffer.from('second')]
    ]
    out.push({ rid, seq, key, value, headers, timestamp: baseTs + seq * 3, ackPartition: null, ackOffset: null })
  }
  return out
}

function headersToObject (list) {
  const obj = {}
  for (const [k, v] of list) {
    if (obj[k] === undefined) obj[k] = v
    else obj[k] = [].concat(obj[k], [v])
  }
  return obj
}

function headersFromObject (obj) {
  const list = []
  for (const k of Object.keys(obj || {})) {
    for (const v of [].concat(obj[k])) list.push([k, v])
  }
  return list
}

// ------------------------------------------------------------------------------------------
// Produce, read back, check.

async function produce (kafka, topic, codec, recs) {
  const producer = kafka.producer({ idempotent: IDEMPOTENT, maxInFlightRequests: 1, allowAutoTopicCreation: false })
  await producer.connect()
  try {
    for (let i = 0; i < recs.length; i += SEND_CHUNK) {
      const chunk = recs.slice(i, i + SEND_CHUNK)
      const result = await producer.send({
        topic,
        acks: -1,
        compression: CODECS[codec],
        messages: chunk.map(r => ({
          key: r.key, value: r.value, headers: headersToObject(r.headers), timestamp: String(r.timestamp)
        }))
      })
      // One result per partition with the base offset of the batch kafkajs sent there. kafkajs
      // keeps the order of the messages within each partition, so record i of partition p
      // got baseOffset + i.
      const base = {}
      for (const r of result) {
        if (r.errorCode !== 0) throw new Error(`produce to ${topic}/${r.partition}: error ${r.errorCode}`)
        base[r.partition] = BigInt(r.baseOffset)
      }
      const nextIdx = {}
      for (const r of chunk) {
        const p = javaPartition(r.key, NUM_PARTITIONS) // what kafkajs's DefaultPartitioner chose
        if (base[p] === undefined) throw new Error(`${r.rid}: kafkajs did not send it to p${p}, the murmur2 partition`)
        nextIdx[p] = (nextIdx[p] || 0n)
        r.ackPartition = p
        r.ackOffset = base[p] + nextIdx[p]
        nextIdx[p] += 1n
      }
    }
  } finally {
    await producer.disconnect()
  }
}

async function consumeAll (cluster, admin, topic) {
  const offsets = await admin.fetchTopicOffsets(topic) // ListOffsets latest and earliest
  const high = {}
  const next = {}
  for (const o of offsets) {
    high[o.partition] = BigInt(o.high)
    next[o.partition] = BigInt(o.low)
  }
  await cluster.addTargetTopic(topic)
  await cluster.refreshMetadata()
  const got = []
  const deadline = Date.now() + DEADLINE_MS
  for (let p = 0; p < NUM_PARTITIONS; p++) {
    const leaders = cluster.findLeaderForPartitions(topic, [p])
    const broker = await cluster.findBroker({ nodeId: Object.keys(leaders)[0] })
    let partMax = FETCH_PARTITION_MAX_BYTES
    while (next[p] < high[p]) {
      if (Date.now() > deadline) throw new Error(`consume of ${topic} timed out at p${p}@${next[p]} (high ${high[p]})`)
      const resp = await broker.fetch({
        replicaId: -1,
        isolationLevel: 1, // read_committed: all we wrote is non-transactional anyway
        maxWaitTime: 100,
        minBytes: 1,
        maxBytes: 65536,
        topics: [{ topic, partitions: [{ partition: p, fetchOffset: String(next[p]), maxBytes: partMax }] }]
      })
      const part = resp.responses[0].partitions[0]
      if (part.errorCode !== 0) throw new Error(`fetch ${topic}/${p}@${next[p]}: error ${part.errorCode}`)
      let advanced = false
      for (const m of part.messages) {
        const off = BigInt(m.offset)
        // A fetch may start inside a batch; the client must drop records before fetchOffset.
        if (off < next[p] || m.isControlRecord) continue
        got.push({
          partition: p,
          offset: off,
          key: m.key,
          value: m.value,
          headers: headersFromObject(m.headers),
          timestamp: Number(m.timestamp),
          timestampType: m.batchContext ? m.batchContext.timestampType : null
        })
        next[p] = off + 1n
        advanced = true
      }
      if (!advanced) {
        // Nothing usable: a batch larger than maxBytes came back truncated (kafkajs drops a
        // partial batch), or only control records. Retry with room for a bigger batch.
        if (partMax >= 16 * 1024 * 1024) throw new Error(`fetch ${topic}/${p}@${next[p]} makes no progress`)
        partMax *= 4
      }
    }
  }
  return got
}

function check (label, recs, got) {
  const errors = []
  const byRid = new Map(recs.map(r => [r.rid, r]))
  const seen = new Map()
  const eqBuf = (a, b) => (a === null || b === null) ? a === b : Buffer.compare(a, b) === 0
  for (const g of got) {
    const sh = g.headers.find(([k]) => k === 'seq')
    const rid = sh ? sh[1].toString() : ''
    const r = byRid.get(rid)
    if (!r) { errors.push(`unknown record p${g.partition}@${g.offset} key=${g.key}`); continue }
    if (seen.has(rid)) { errors.push(`${rid} read twice`); continue }
    seen.set(rid, g)
    if (!eqBuf(g.key, r.key)) errors.push(`${rid} key ${g.key} != ${r.key}`)
    if (!eqBuf(g.value, r.value)) errors.push(`${rid} value ${g.value} != ${r.value}`)
    const hOk = g.headers.length === r.headers.length &&
      g.headers.every(([k, v], i) => k === r.headers[i][0] && eqBuf(v, r.headers[i][1]))
    if (!hOk) errors.push(`${rid} headers ${JSON.stringify(g.headers)} != ${JSON.stringify(r.headers)}`)
    if (g.timestamp !== r.timestamp) errors.push(`${rid} timestamp ${g.timestamp} != ${r.timestamp}`)
    if (g.timestampType !== null && g.timestampType !== 0) errors.push(`${rid} timestamp type ${g.timestampType}, expected CreateTime`)
    if (g.partition !== r.ackPartition || g.offset !== r.ackOffset) {
      errors.push(`${rid} read at p${g.partition}@${g.offset}, produce ack said p${r.ackPartition}@${r.ackOffset}`)
    }
    const want = javaPartition(r.key, NUM_PARTITIONS)
    if (g.partition !== want) errors.push(`${rid} key ${r.key} in p${g.partition}, murmur2 says p${want}`)
  }
  const missing = recs.filter(r => !seen.has(r.rid)).map(r => r.rid)
  if (missing.length) errors.push(`${missing.length} acknowledged record(s) never read back, e.g. ${missing.slice(0, 5)}`)
  const keyParts = new Map()
  const perPart = new Map()
  for (const [rid, g] of seen) {
    const k = byRid.get(rid).key.toString()
    if (!keyParts.has(k)) keyParts.set(k, new Set())
    keyParts.get(k).add(g.partition)
    if (!perPart.has(g.partition)) perPart.set(g.partition, [])
    perPart.get(g.partition).push([g.offset, byRid.get(rid).seq])
  }
  for (const [k, ps] of keyParts) if (ps.size > 1) errors.push(`key ${k} landed in partitions ${[...ps]}`)
  for (const [p, items] of perPart) {
    items.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
    for (let i = 1; i < items.length; i++) {
      if (items[i][0] === items[i - 1][0]) errors.push(`p${p}: two records at offset ${items[i][0]}`)
      else if (items[i][1] <= items[i - 1][1]) { errors.push(`p${p}: produce order broken at offset ${items[i][0]}`); break }
    }
  }
  if (perPart.size < 2) errors.push(`all records landed in ${perPart.size} partition(s)`)
  if (errors.length === 0) {
    console.log(`  ok   ${label}\n       ${seen.size} records over ${perPart.size} partitions verified`)
    return true
  }
  console.log(`  FAIL ${label}: ${errors.length} problem(s)`)
  for (const e of errors.slice(0, MAX_ERRORS_SHOWN)) console.log(`       - ${e}`)
  if (errors.length > MAX_ERRORS_SHOWN) console.log(`       ... and ${errors.length - MAX_ERRORS_SHOWN} more`)
  return false
}

async function main () {
  const bootstrap = process.argv[2]
  if (!bootstrap) { console.error('usage: kafkajs_test.js BOOTSTRAP'); return 2 }
  const version = require('kafkajs/package.json').version
  console.log(`kafkajs ${version}; bootstrap ${bootstrap}; idempotent producer: ${IDEMPOTENT}`)
  const common = {
    brokers: [bootstrap],
    clientId: 'sluice-systest-kafkajs',
    connectionTimeout: 5000,
    requestTimeout: 30000,
    retry: { retries: 5, initialRetryTime: 200, maxRetryTime: 5000 }
  }
  const kafka = new Kafka({ ...common, logLevel: logLevel.WARN })
  const cluster = new Cluster({
    ...common,
    logger: createLogger({ level: LEVELS.WARN, logCreator: LoggerConsole }),
    socketFactory: defaultSocketFactory(),
    enforceRequestTimeout: true,
    allowAutoTopicCreation: false,
    isolationLevel: 1
  })
  const admin = kafka.admin()
  await admin.connect()
  await cluster.connect()
  const run = `${Math.floor(Date.now() / 1000) % 1000000}-${process.pid}`
  const topics = Object.fromEntries(Object.keys(CODECS).map(c => [c, `sys-kafkajs-${c}-${run}`]))
  let ok = true
  try {
    const created = await admin.createTopics({
      waitForLeaders: true,
      timeout: 30000,
      topics: Object.values(topics).map(topic => ({ topic, numPartitions: NUM_PARTITIONS, replicationFactor: 1 }))
    })
    if (!created) throw new Error('createTopics reported that the topics already exist')
    for (const [codec, topic] of Object.entries(topics)) {
      const md = await admin.fetchTopicMetadata({ topics: [topic] })
      const n = md.topics[0].partitions.length
      if (n !== NUM_PARTITIONS) throw new Error(`${topic} has ${n} partitions, expected ${NUM_PARTITIONS}`)
      const recs = makeRecords(run, codec)
      const t0 = Date.now()
      await produce(kafka, topic, codec, recs)
      const got = await consumeAll(cluster, admin, topic)
      console.log(`  ${codec}: produced and read ${recs.length} records in ${((Date.now() - t0) / 1000).toFixed(1)}s`)
      ok = check(`kafkajs ${codec}`, recs, got) && ok
    }
  } finally {
    await admin.disconnect()
    await cluster.disconnect()
  }
  console.log(ok ? 'kafkajs: PASS' : 'kafkajs: FAIL')
  return ok ? 0 : 1
}

process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1'
// A hard bound on the whole test, whatever a client retry loop does.
const watchdog = setTimeout(() => { console.log('kafkajs: FAIL: timed out after 240 s'); process.exit(1) }, 240000)
main().then(
  code => { clearTimeout(watchdog); process.exit(code) },
  err => { clearTimeout(watchdog); console.log(`kafkajs: FAIL: ${err && err.stack ? err.stack : err}`); process.exit(1) }
)
