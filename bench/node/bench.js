// bench/node/bench.js: contender 6, Google's generated Node client (@google-ai/generativelanguage,
// v1beta3) in REST fallback mode, pointed at the local nginx. It sends what it always sends:
// POST /v1beta3/models/...:generateText?$alt=json%3Benum-encoding=int with x-goog-api-key.
//
//   node bench/node/bench.js --url http://127.0.0.1:PORT --check generate|embed [--n N] [--time S] [--conc C]
// Trust for https comes from NODE_EXTRA_CA_CERTS (set by bench/run). Prints the RESULT line.
'use strict';
const { v1beta3 } = require('@google-ai/generativelanguage');

const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];
const u = new URL(args.url);
const n = Number(args.n || 100);
const maxTime = Number(args.time || 5);
const conc = Number(args.conc || 1);
const kind = args.check || 'generate';

const opts = {
  apiKey: 'bench-key',
  fallback: 'rest',
  apiEndpoint: u.hostname,
  port: Number(u.port),
  protocol: u.protocol.replace(':', ''),
};
const texts = [];
for (let i = 1; i <= 100; i++) texts.push(`benchmark text number ${i}: the quick brown fox jumps over the lazy dog`);

let call;
if (kind === 'embed') {
  const client = new v1beta3.TextServiceClient(opts);
  call = async () => {
    const [res] = await client.batchEmbedText({ model: 'models/embedding-gecko-001', texts });
    if (res.embeddings.length !== 100 || res.embeddings[0].value.length !== 768) throw new Error('bad embed reply');
  };
} else {
  const client = new v1beta3.TextServiceClient(opts);
  call = async () => {
    const [res] = await client.generateText({ model: 'models/text-bison-001', prompt: { text: 'hi' } });
    if (!res.candidates || !res.candidates[0] || typeof res.candidates[0].output !== 'string') {
      throw new Error('bad generateText reply: ' + JSON.stringify(res).slice(0, 200));
    }
  };
}

async function main() {
  await call(); // warm-up: connection, TLS, lazy loading of protos
  let done = 0;
  let started = 0;
  const t0 = process.hrtime.bigint();
  const elapsed = () => Number(process.hrtime.bigint() - t0) / 1e9;
  async function worker() {
    while (started < n && elapsed() < maxTime) {
      started++;
      await call();
      done++;
    }
  }
  const workers = [];
  for (let i = 0; i < conc; i++) workers.push(worker());
  await Promise.all(workers);
  const secs = elapsed();
  console.log(`RESULT n=${done} secs=${secs.toFixed(6)} node=${process.version}`);
  process.exit(0);
}
main().catch((e) => {
  console.error('node bench failed:', e && (e.stack || e.message || e));
  process.exit(1);
});
