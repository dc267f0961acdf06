#!/usr/bin/env node
// kafkajs 2.2.4 consumer groups against a Kafka-protocol broker (issue 6).
//
// Usage: node kafkajs_groups_test.js BOOTSTRAP            e.g. 127.0.0.1:9092
//
// Scenario (one 6-partition topic, one group; every wait is bounded):
//   1. Two kafkajs consumers (sessionTimeout 10 s, heartbeatInterval 1 s) subscribe to the topic
//      in one group and consume with consumer.run({ eachMessage }) and auto commit; they must
//      split the partitions 3/3 (disjoint, all 6; kafkajs's RoundRobinAssigner) as their
//      GROUP_JOIN events report.
//   2. 300 keyed records are produced after that split; every one must be consumed (value
//      checked), both consumers must take part, and each only from its own partitions.
//   3. admin.fetchOffsets must come to return the log end (ListOffsets high) of every
//      partition: the consumers' commits. admin.describeGroups must show the group Stable,
//      protocol RoundRobinAssigner, with two members whose assignments are what they reported;
//      admin.listGroups must list it with protocol type "consumer".
//   4. Both disconnect (LeaveGroup); 60 more records; a third consumer in the group
//      (fromBeginning: true) must start every partition at the committed offset (no record of
//      step 2 again), consume the 60, and commit them (fetchOffsets = the new log ends).
// KAFKAJS_IDEMPOTENT=0 produces without idempotence (as in kafkajs_test.js).
'use strict'

const { Kafka, logLevel, AssignerProtocol } = require('kafkajs')

const NUM_PARTITIONS = 6
const NUM_KEYS = 37
const JOIN_DEADLINE_MS = 60000 // a balanced assignment, KIP-134's initial delay included
const CONSUME_DEADLINE_MS = 60000
const COMMIT_DEADLINE_MS = 30000
const SESSION_TIMEOUT_MS = 10000
const HEARTBEAT_INTERVAL_MS = 1000
const IDEMPOTENT = process.env.KAFKAJS_IDEMPOTENT !== '0'
const LOG_LEVEL = process.env.KAFKAJS_LOG === 'debug' ? logLevel.DEBUG : logLevel.WARN

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

class Fail extends Error {}

async function waitFor (what, limitMs, probe) {
  // probe() -> [done, detail]
  const t0 = Date.now()
  let detail = '(never probed)'
  for (;;) {
    const [done, d] = await probe()
    detail = d
    if (done) return (Date.now() - t0) / 1000
    if (Date.now() - t0 > limitMs) throw new Fail(`${what}: not within ${limitMs / 1000}s; last seen: ${detail}`)
    await sleep(200)
  }
}

function sameParts (a, b) {
  return JSON.stringify([...a].sort((x, y) => x - y)) === JSON.stringify([...b].sort((x, y) => x - y))
}

class Member {
  constructor (kafka, name, groupId, topic) {
    this.name = name
    this.topic = topic
    this.consumer = kafka.consumer({
      groupId,
      sessionTimeout: SESSION_TIMEOUT_MS,
      heartbeatInterval: HEARTBEAT_INTERVAL_MS,
      maxWaitTimeInMs: 100,
      retry: { retries: 10, initialRetryTime: 200, maxRetryTime: 5000 }
    })
    this.assignment = null // partitions of the latest GROUP_JOIN
    this.memberId = null
    this.got = [] // {partition, offset, value}
    this.crashes = []
    const ev = this.consumer.events
    this.consumer.on(ev.GROUP_JOIN, e => {
      this.assignment = (e.payload.memberAssignment[topic] || []).slice().sort((x, y) => x - y)
      this.memberId = e.payload.memberId
      const role = e.payload.isLeader ? 'leader' : 'follower'
      console.log(`  ${name}: joined as ${role}, assigned ${JSON.stringify(this.assignment)}`)
    })
    this.consumer.on(ev.CRASH, e => { this.crashes.push(String(e.payload.error)) })
  }

  async start () {
    await this.consumer.connect()
    await this.consumer.subscribe({ topics: [this.topic], fromBeginning: true })
    await this.consumer.run({
      eachMessage: async ({ partition, message }) => {
        this.got.push({ partition, offset: BigInt(message.offset), value: message.value ? message.value.toString() : null })
      }
    })
  }

  async stop () {
    await this.consumer.disconnect()
  }
}

async function produce (kafka, topic, values) {
  const producer = kafka.producer({ idempotent: IDEMPOTENT, maxInFlightRequests: 1, allowAutoTopicCreation: false })
  await producer.connect()
  try {
    for (let i = 0; i < values.length; i += 50) {
      await producer.send({
        topic,
        acks: -1,
        messages: values.slice(i, i + 50).map(([key, value]) => ({ key, value }))
      })
    }
  } finally {
    await producer.disconnect()
  }
}

function makeValues (run, phase, n) {
  const pad = (x, w) => String(x).padStart(w, '0')
  return Array.from({ length: n }, (_, seq) => [`key-${pad(seq % NUM_KEYS, 3)}`, `${run}|${phase}|${pad(seq, 6)}`])
}

async function highs (admin, topic) {
  const out = {}
  for (const o of await admin.fetchTopicOffsets(topic)) out[o.partition] = BigInt(o.high)
  return out
}

async function committed (admin, groupId, topic) {
  const res = await admin.fetchOffsets({ groupId, topics: [topic] })
  const out = {}
  for (const t of res) {
    if (t.topic !== topic) continue
    for (const p of t.partitions) out[p.partition] = BigInt(p.offset)
  }
  return out
}

const show = o => JSON.stringify(o, (_k, v) => typeof v === 'bigint' ? String(v) : v)
const sameOffsets = (a, b) => [...Array(NUM_PARTITIONS).keys()].every(p => a[p] !== undefined && a[p] === b[p])

function missing (want, members) {
  const seen = new Set(members.flatMap(m => m.got.map(g => g.value)))
  return [...want].filter(v => !seen.has(v))
}

async function main () {
  const bootstrap = process.argv[2]
  if (!bootstrap) { console.error('usage: kafkajs_groups_test.js BOOTSTRAP'); return 2 }
  console.log(`kafkajs ${require('kafkajs/package.json').version} consumer groups; bootstrap ${bootstrap}`)
  const kafka = new Kafka({
    brokers: [bootstrap],
    clientId: 'sluice-systest-kafkajs-groups',
    connectionTimeout: 5000,
    requestTimeout: 30000,
    retry: { retries: 5, initialRetryTime: 200, maxRetryTime: 5000 },
    logLevel: LOG_LEVEL
  })
  const run = `${Math.floor(Date.now() / 1000) % 1000000}-${process.pid}`
  const topic = `sys-groups-kafkajs-${run}`
  const groupId = `groups-kafkajs-${run}`
  const admin = kafka.admin()
  const members = []
  const problems = []
  await admin.connect()
  try {
    const created = await admin.createTopics({
      waitForLeaders: true,
      timeout: 30000,
      topics: [{ topic, numPartitions: NUM_PARTITIONS, replicationFactor: 1 }]
    })
    if (!created) throw new Fail(`createTopics reported that ${topic} already exists`)

    // 1. Two members split the partitions.
    const a = new Member(kafka, 'js-A', groupId, topic)
    const b = new Member(kafka, 'js-B', groupId, topic)
    members.push(a, b)
    await Promise.all([a.start(), b.start()])
    let took = await waitFor('two kafkajs consumers split the partitions 3/3', JOIN_DEADLINE_MS, () => {
      const as = [a.assignment || [], b.assignment || []]
      const flat = as.flat().sort((x, y) => x - y)
      const ok = as.every(x => x.length === 3) && JSON.stringify(flat) === JSON.stringify([0, 1, 2, 3, 4, 5])
      return [ok, `A=${JSON.stringify(a.assignment)} B=${JSON.stringify(b.assignment)}`]
    })
    console.log(`  split: A=${JSON.stringify(a.assignment)} B=${JSON.stringify(b.assignment)} after ${took.toFixed(1)}s`)
    const split = { A: a.assignment.slice(), B: b.assignment.slice() }

    // 2. Records produced after the split are all consumed, each by the owner of its partition.
    const values = makeValues(run, 'p1', 300)
    await produce(kafka, topic, values)
    const want = new Set(values.map(([, v]) => v))
    took = await waitFor('every record consumed by the two members', CONSUME_DEADLINE_MS, () => {
      const left = missing(want, [a, b]).length
      return [left === 0, `${left} of ${want.size} not consumed yet (A read ${a.got.length}, ` +
        `B read ${b.got.length}); crashes ${a.crashes.concat(b.crashes)}`]
    })
    console.log(`  300 records consumed in ${took.toFixed(1)}s: A read ${a.got.length}, B read ${b.got.length}`)
    for (const m of [a, b]) {
      const unknown = m.got.filter(g => !want.has(g.value))
      if (unknown.length) problems.push(`${m.name} consumed ${unknown.length} unknown records, e.g. ${show(unknown[0])}`)
      if (m.got.length === 0) problems.push(`${m.name} consumed nothing: the group did not split the work`)
      const own = m === a ? split.A : split.B
      const foreign = m.got.filter(g => !own.includes(g.partition))
      if (foreign.length && sameParts(m.assignment, own)) {
        const from = [...new Set(foreign.map(g => g.partition))]
        problems.push(`${m.name} owns ${JSON.stringify(own)} but consumed from partitions ${from}`)
      }
    }

    // 3. Commits, DescribeGroups, ListGroups.
    const high1 = await highs(admin, topic)
    let last = {}
    took = await waitFor('fetchOffsets returns the log ends (auto commit)', COMMIT_DEADLINE_MS, async () => {
      last = await committed(admin, groupId, topic)
      return [sameOffsets(last, high1), `fetchOffsets ${show(last)}, log ends ${show(high1)}`]
    })
    console.log(`  fetchOffsets = log ends ${show(high1)} after ${took.toFixed(1)}s`)
    const described = await admin.describeGroups([groupId])
    const g = described.groups.find(x => x.groupId === groupId)
    if (!g) {
      problems.push(`describeGroups([${groupId}]) does not return the group: ${JSON.stringify(described)}`)
    } else {
      const shown = {}
      for (const m of g.members) {
        const asg = AssignerProtocol.MemberAssignment.decode(m.memberAssignment)
        shown[m.memberId] = ((asg && asg.assignment[topic]) || []).slice().sort((x, y) => x - y)
      }
      const reported = { [a.memberId]: a.assignment, [b.memberId]: b.assignment }
      console.log(`  describeGroups: state ${g.state}, protocolType ${g.protocolType}, protocol ${g.protocol}, ` +
        `members ${JSON.stringify(shown)}, errorCode ${g.errorCode}`)
      if (g.errorCode !== 0 || g.state !== 'Stable') {
        problems.push(`describeGroups: state ${g.state} error ${g.errorCode}, want Stable`)
      }
      if (g.protocolType !== 'consumer' || g.protocol !== 'RoundRobinAssigner') {
        problems.push(`describeGroups: protocol type ${g.protocolType} protocol ${g.protocol}, ` +
          'want consumer / RoundRobinAssigner')
      }
      if (JSON.stringify(shown, Object.keys(shown).sort()) !== JSON.stringify(reported, Object.keys(reported).sort())) {
        problems.push(`describeGroups: members ${JSON.stringify(shown)}, the consumers report ${JSON.stringify(reported)}`)
      }
    }
    const listed = await admin.listGroups()
    const mine = listed.groups.find(x => x.groupId === groupId)
    console.log(`  listGroups: ${JSON.stringify(mine)}`)
    if (!mine || mine.protocolType !== 'consumer') {
      problems.push(`listGroups does not list ${groupId} with protocol type consumer: ${show(listed.groups.slice(0, 10))}`)
    }

    // 4. Leave, produce more, a new member resumes at the commits.
    await Promise.all([a.stop(), b.stop()])
    const values2 = makeValues(run, 'p2', 60)
    await produce(kafka, topic, values2)
    const high2 = await highs(admin, topic)
    const c = new Member(kafka, 'js-C', groupId, topic)
    members.push(c)
    await c.start()
    const want2 = new Set(values2.map(([, v]) => v))
    const what = 'a new member consumes the 60 records produced while the group was empty'
    took = await waitFor(what, JOIN_DEADLINE_MS + CONSUME_DEADLINE_MS, () => {
      const left = missing(want2, [c]).length
      return [left === 0, `${left} of 60 not consumed yet; C assigned ${JSON.stringify(c.assignment)}, ` +
        `read ${c.got.length}; crashes ${c.crashes}`]
    })
    const starts = {}
    for (const x of c.got) if (starts[x.partition] === undefined) starts[x.partition] = x.offset
    console.log(`  C (fromBeginning: true) started at ${show(starts)} (committed ${show(high1)}) ` +
      `and read the 60 new records in ${took.toFixed(1)}s`)
    const reread = c.got.filter(x => want.has(x.value))
    if (reread.length) {
      problems.push(`C re-read ${reread.length} records that were committed (e.g. p${reread[0].partition}@` +
        `${reread[0].offset}): it did not resume from the commits`)
    }
    for (const [p, o] of Object.entries(starts)) {
      if (o !== high1[p]) problems.push(`C started p${p} at ${o}, the committed offset was ${high1[p]}`)
    }
    took = await waitFor('fetchOffsets returns the new log ends', COMMIT_DEADLINE_MS, async () => {
      last = await committed(admin, groupId, topic)
      return [sameOffsets(last, high2), `fetchOffsets ${show(last)}, log ends ${show(high2)}`]
    })
    console.log(`  fetchOffsets = log ends ${show(high2)} after ${took.toFixed(1)}s`)
    for (const m of members) if (m.crashes.length) problems.push(`${m.name} crashed: ${m.crashes.slice(0, 3)}`)
  } catch (e) {
    if (!(e instanceof Fail)) throw e
    problems.push(e.message)
  } finally {
    for (const m of members) await m.stop().catch(() => {})
    await admin.disconnect()
  }
  for (const p of problems) console.log(`  FAIL ${p}`)
  console.log(problems.length ? 'groups kafkajs: FAIL' : 'groups kafkajs: PASS')
  return problems.length ? 1 : 0
}

process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1'
// A hard bound on the whole test, whatever a client retry loop does.
const watchdog = setTimeout(() => { console.log('groups kafkajs: FAIL: timed out after 240 s'); process.exit(1) }, 240000)
main().then(
  code => { clearTimeout(watchdog); process.exit(code) },
  err => { clearTimeout(watchdog); console.log(`groups kafkajs: FAIL: ${err && err.stack ? err.stack : err}`); process.exit(1) }
)
