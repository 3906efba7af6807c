#!/usr/bin/env node
// Side by side with s3backer: Debian's s3backer (FUSE file, 1 MiB blocks, 64-block cache, MD5 cache
// and write delay off) and our SCSI disk (`tcmu serve s3://…`, defaults), both through the kernel,
// both on one Ceph RGW started inside the kernel lab, fio direct on a 256 MiB volume.
//
// `pnpm bench:s3` (host): builds, then runs this file inside the lab (tools/lab/run). Options:
//   --json          print one JSON object instead of the table
//   --size N        volume size in MiB (default 256)
//   --seconds N     runtime of the random jobs (default 20)
//   --only NAME     s3backer or tcmu (default both)
// Writes .results/bench-s3.json. Needs `apt-get install s3backer fio` on the host (the guest runs
// the host's root).
//
// Jobs: 1 MiB sequential write QD4 of the whole volume until durable (ours: fio's end_fsync, i.e.
// SYNCHRONIZE CACHE, which waits for every upload; s3backer's fsync does not wait, so: until its
// stats file shows block_cache_dirty_ratio 0); cold 1 MiB sequential read QD4 (servers restarted,
// caches empty); cold 4 KiB random read QD16 for --seconds; 4 KiB random write QD16 for --seconds,
// then until durable (IOPS = writes / (runtime + time to durable)); peak RSS (VmHWM) of each server.
// First, the reference both share: the server's own limit, what one client with no disk in front of
// it gets from the same RGW (1 MiB PUT and GET at 8 in flight, 4 KiB ranged GET at 16).
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = fileURLToPath(new URL('../../', import.meta.url));
const args = process.argv.slice(2);
const json = args.includes('--json');
const option = (name, fallback) => {
  const at = args.indexOf(name);
  return at >= 0 ? args[at + 1] : fallback;
};
const sizeMiB = Number(option('--size', '256'));
const seconds = Number(option('--seconds', '20'));
const only = option('--only', undefined);
const results = join(repo, '.results');
const log = (...parts) => {
  if (!json || args.includes('--inside')) console.error(...parts);
};

if (!args.includes('--inside')) {
  for (const tool of ['s3backer', 'fio']) {
    if (spawnSync('which', [tool]).status !== 0) {
      console.error(
        `bench:s3: ${tool} is missing: apt-get install ${tool} (the lab guest runs the host's root)`,
      );
      process.exit(2);
    }
  }
  execFileSync('pnpm', ['-s', 'build'], { cwd: repo, stdio: ['ignore', 'ignore', 'inherit'] });
  const lab = spawnSync(
    join(repo, 'tools/lab/run'),
    [
      '--timeout',
      '2400',
      '--memory',
      '3072',
      '--',
      process.execPath,
      fileURLToPath(import.meta.url),
      '--inside',
      ...args,
    ],
    { cwd: repo, stdio: ['ignore', 'inherit', 'inherit'] },
  );
  process.exit(lab.status ?? 1);
}

// ---- inside the lab ------------------------------------------------------------------------------

const sh = (file, argv, env = process.env) =>
  execFileSync(file, argv, { env, encoding: 'utf8', maxBuffer: 64 << 20 });
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const MiB = 1024 * 1024;

function vmHwm(pid) {
  try {
    const match = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

function fio(name, filename, extra) {
  const out = sh('fio', [
    `--name=${name}`,
    `--filename=${filename}`,
    '--direct=1',
    '--ioengine=libaio',
    '--output-format=json',
    ...extra,
  ]);
  const job = JSON.parse(out.slice(out.indexOf('{'))).jobs[0];
  return job;
}

async function timed(body) {
  const started = process.hrtime.bigint();
  const value = await body();
  return { value, seconds: Number(process.hrtime.bigint() - started) / 1e9 };
}

/** The four jobs on one device/file; `durable()` waits until every write is stored. */
async function jobs(system, targetOf, durable, restartCold) {
  const out = {};
  log(`${system}: sequential write ${sizeMiB} MiB`);
  const write = await timed(async () => {
    fio('seqwrite', targetOf(), [
      '--rw=write',
      '--bs=1M',
      '--iodepth=4',
      `--size=${sizeMiB}M`,
      '--end_fsync=1',
    ]);
    await durable();
  });
  out.seqWriteMiBs = sizeMiB / write.seconds;
  await restartCold();
  log(`${system}: cold sequential read`);
  const read = fio('seqread', targetOf(), ['--rw=read', '--bs=1M', '--iodepth=4', `--size=${sizeMiB}M`]);
  out.seqReadMiBs = read.read.bw_bytes / MiB;
  await restartCold();
  log(`${system}: cold random read`);
  const randread = fio('randread', targetOf(), [
    '--rw=randread',
    '--bs=4k',
    '--iodepth=16',
    `--size=${sizeMiB}M`,
    '--time_based',
    `--runtime=${seconds}`,
    '--randrepeat=0',
  ]);
  out.randReadIops = randread.read.iops;
  log(`${system}: random write`);
  const randwrite = await timed(async () => {
    const job = fio('randwrite', targetOf(), [
      '--rw=randwrite',
      '--bs=4k',
      '--iodepth=16',
      `--size=${sizeMiB}M`,
      '--time_based',
      `--runtime=${seconds}`,
      '--end_fsync=1',
      '--randrepeat=0',
    ]);
    await durable();
    return job;
  });
  out.randWriteIops = randwrite.value.write.total_ios / randwrite.seconds;
  return out;
}

async function waitFor(what, check, timeoutMs = 600_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function benchS3backer(env) {
  const mount = '/tmp/s3backer-mnt';
  mkdirSync(mount, { recursive: true });
  const accessFile = '/tmp/s3backer-access';
  writeFileSync(accessFile, `${env.AWS_ACCESS_KEY_ID}:${env.AWS_SECRET_ACCESS_KEY}\n`, { mode: 0o600 });
  spawnSync('modprobe', ['fuse']);
  let child;
  let peak = 0;
  const start = async () => {
    child = spawn(
      's3backer',
      [
        '-f',
        `--accessFile=${accessFile}`,
        `--baseURL=${env.TCMU_S3_ENDPOINT}/`,
        '--blockSize=1M',
        `--size=${sizeMiB}M`,
        '--blockCacheSize=64',
        '--md5CacheSize=0',
        '--md5CacheTime=0',
        '--minWriteDelay=0',
        '--directIO',
        '--prefix=s3backer-bench/',
        '--listBlocks',
        env.TCMU_S3_BUCKET,
        mount,
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    let exited;
    child.once('exit', (code) => {
      exited = code;
    });
    await waitFor(
      's3backer mount',
      () => {
        if (exited !== undefined) throw new Error(`s3backer exited (${exited}): ${stderr}`);
        return existsSync(join(mount, 'file'));
      },
      120_000,
    );
  };
  const stop = async () => {
    peak = Math.max(peak, vmHwm(child.pid) ?? 0);
    spawnSync('umount', [mount]);
    await new Promise((resolve) => child.once('exit', resolve));
  };
  const durable = () =>
    waitFor('s3backer dirty blocks to drain', () => {
      const stats = readFileSync(join(mount, 'stats'), 'utf8');
      const match = /block_cache_dirty_ratio\s+([\d.]+)/.exec(stats);
      return match !== null && Number(match[1]) === 0;
    });
  await start();
  const out = await jobs(
    's3backer',
    () => join(mount, 'file'),
    durable,
    async () => {
      await stop();
      await start();
    },
  );
  await stop();
  out.peakRssMB = peak / 1e6;
  return out;
}

async function benchTcmu(env) {
  const cli = join(repo, 'packages/cli/dist/cli.js');
  const url = `s3://${env.TCMU_S3_BUCKET}/tcmu-bench?endpoint=${env.TCMU_S3_ENDPOINT}`;
  let child;
  let device;
  let peak = 0;
  let first = true;
  const start = async () => {
    child = spawn(
      process.execPath,
      [cli, 'serve', url, '--name', 's3bench', ...(first ? ['--size', `${sizeMiB}M`] : []), '--json'],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
        env,
      },
    );
    first = false;
    let stdout = '';
    let stderr = '';
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    device = await new Promise((resolve, reject) => {
      child.stdout.on('data', (d) => {
        stdout += d;
        const line = stdout.split('\n').find((l) => l.includes('"event":"ready"'));
        if (line) resolve(JSON.parse(line).device);
      });
      child.once('exit', (code) => reject(new Error(`tcmu serve exited ${code}: ${stderr}`)));
    });
  };
  const stop = async () => {
    peak = Math.max(peak, vmHwm(child.pid) ?? 0);
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGINT');
    await exited;
  };
  await start();
  // The device node can change with every start: the jobs read it through a getter.
  // fio's end_fsync is a SYNCHRONIZE CACHE: it returns when every upload is done.
  const out = await jobs(
    'tcmu',
    () => device,
    async () => {},
    async () => {
      await stop();
      await start();
    },
  );
  await stop();
  out.peakRssMB = peak / 1e6;
  return out;
}

// The server's own limit, the reference for both: what one client with no disk in front of it gets
// from the same RGW (the package's request code, @tcmu/backend-s3/testing's openObjectStore).
// 1 MiB PUTs and GETs at 8 in flight, and 4 KiB ranged GETs at 16 in flight.
async function benchServer(env) {
  const { openObjectStore } = await import(join(repo, 'packages/backends/s3/dist/testing/index.js'));
  // The SDK's provider chain (which supplies the credentials) reads this process's environment.
  for (const name of ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_REGION'])
    process.env[name] = env[name];
  const store = openObjectStore(
    { bucket: env.TCMU_S3_BUCKET, prefix: '', endpoint: env.TCMU_S3_ENDPOINT },
    { maxSockets: 16 },
  );
  const count = Math.max(16, sizeMiB / 4);
  const keys = Array.from({ length: count }, (_, i) => `server-limit/${i}`);
  const body = Buffer.alloc(MiB);
  for (let i = 0; i < body.length; i += 4) body.writeUInt32LE((i * 2654435761) >>> 0, i);
  const signal = () => AbortSignal.timeout(120_000);
  const pool = async (inFlight, work) => {
    let next = 0;
    const started = performance.now();
    await Promise.all(
      Array.from({ length: inFlight }, async () => {
        while (next < keys.length) await work(keys[next++]);
      }),
    );
    return (performance.now() - started) / 1000;
  };
  log(`server: ${count} PUTs, GETs and ranged GETs`);
  const put = await pool(8, (key) => store.put(key, body, {}, signal()));
  const get = await pool(8, (key) => store.get(key, signal()));
  const ranged = await pool(16, (key) =>
    store.getRange(key, 4096 * (count % 200), 4096 * (count % 200) + 4096, signal()),
  );
  await store.deleteMany(keys, signal());
  store.close();
  return { seqWriteMiBs: count / put, seqReadMiBs: count / get, randReadIops: count / ranged };
}

const rgwEnv = { ...process.env, TCMU_RGW_DIR: '/tmp/tcmu-rgw-lab' };
const rgwStarted = Date.now();
sh(join(repo, 'tools/s3/rgw'), ['start'], rgwEnv);
log(`RGW up in ${((Date.now() - rgwStarted) / 1000).toFixed(0)} s`);
const env = { ...process.env };
for (const line of sh(join(repo, 'tools/s3/rgw'), ['env'], rgwEnv).split('\n')) {
  const match = /^export (\w+)=(.*)$/.exec(line.trim());
  if (match) env[match[1]] = match[2];
}
const report = { sizeMiB, seconds, systems: {} };
try {
  report.server = await benchServer(env);
  if (only !== 'tcmu') report.systems.s3backer = await benchS3backer(env);
  if (only !== 's3backer') report.systems.tcmu = await benchTcmu(env);
} finally {
  spawnSync(join(repo, 'tools/s3/rgw'), ['stop'], { env: rgwEnv });
  rmSync('/tmp/s3backer-access', { force: true });
}
const rows = [
  ['1 MiB sequential write QD4, until durable (MiB/s)', 'seqWriteMiBs', true],
  ['1 MiB sequential read QD4, cold (MiB/s)', 'seqReadMiBs', true],
  [`4 KiB random read QD16, cold, ${seconds} s (IOPS)`, 'randReadIops', true],
  ['4 KiB random write QD16, until durable (IOPS)', 'randWriteIops', true],
  ['peak RSS of the server (MB)', 'peakRssMB', false],
];
const s = report.systems.s3backer ?? {};
const t = report.systems.tcmu ?? {};
report.ratios = Object.fromEntries(
  rows.map(([, key, higher]) => [
    key,
    s[key] && t[key] ? (higher ? t[key] / s[key] : s[key] / t[key]) : null,
  ]),
);
mkdirSync(results, { recursive: true });
writeFileSync(join(results, 'bench-s3.json'), `${JSON.stringify(report, null, 2)}\n`);
if (json) console.log(JSON.stringify(report));
else {
  const f = (v) => (v === undefined || v === null ? '-' : v.toFixed(1));
  const server = report.server ?? {};
  console.log(
    '| job | s3backer | tcmu | ratio (tcmu vs s3backer, >1 = tcmu better) | server limit (one client, no disk) |',
  );
  console.log('|---|---|---|---|---|');
  for (const [label, key] of rows)
    console.log(`| ${label} | ${f(s[key])} | ${f(t[key])} | ${f(report.ratios[key])}x | ${f(server[key])} |`);
}
