#!/usr/bin/env node
// `pnpm bench:lab`: one kernel-lab boot, four targets on identical 256 MiB images in the guest's
// tmpfs (our memory disk and file disk via `tcmu serve`, tcmu-runner with its file handler, LIO's
// in-kernel fileio backstore), fio jobs interleaved round by round (tools/bench/lab-guest.sh), then
// medians, ratios to tcmu-runner and to fileio, and for ours the server's CPU per 1000 I/Os, peak
// RSS, context switches per I/O and fio's p50/p99 completion latency.
// Options: --json (print one JSON object), --rounds N (default 3), --seconds N (per fio run,
// default 5), --jobs a,b (subset), --from DIR (re-read a finished run's folder, no lab boot),
// --out FILE (also write the JSON there).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join, resolve } from 'node:path';

const repo = resolve(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '../..');
const args = process.argv.slice(2);
const json = args.includes('--json');
const value = (name, fallback) => {
  const at = args.indexOf(name);
  return at >= 0 ? args[at + 1] : fallback;
};
const fromDir = value('--from');
// A finished run's parameters (written when it started) win over the defaults.
const saved =
  fromDir && existsSync(join(fromDir, 'params.json'))
    ? JSON.parse(readFileSync(join(fromDir, 'params.json'), 'utf8'))
    : {};
const rounds = Number(value('--rounds', saved.rounds ?? 3));
const seconds = Number(value('--seconds', saved.seconds ?? 5));
const log = (...parts) => {
  if (!json) console.error(...parts);
};

export const jobNames = [
  'randread-4k-qd1',
  'randread-4k-qd16',
  'randread-4k-qd32',
  'randwrite-4k-qd16',
  'randrw-64k-qd8',
  'read-1m-qd4',
  'write-1m-qd4',
];
const jobs = value('--jobs') ? value('--jobs').split(',') : (saved.jobs ?? jobNames);
const targets = ['ours-memory', 'ours-file', 'runner-file', 'fileio'];
const ours = ['ours-memory', 'ours-file'];
const targetsGoal = {
  'ours-file': { vsRunner: 1.25 },
  'ours-memory': { vsRunner: 1.5 },
  vsFileio4kQd16: 0.7,
};

let dir = fromDir;
if (!dir) {
  const setup = spawnSync('bash', [join(repo, 'tools/bench/setup-peers.sh')], {
    stdio: ['ignore', 'pipe', 'inherit'],
    encoding: 'utf8',
  });
  if (setup.status !== 0) {
    console.error('bench:lab: cannot build the tcmu-runner file handler (tools/bench/setup-peers.sh)');
    process.exit(1);
  }
  const handlerDir = setup.stdout.trim().split('\n').at(-1);
  dir = join(repo, '.results', `bench-lab-${new Date().toISOString().replace(/[:.]/g, '-')}`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'params.json'), `${JSON.stringify({ rounds, seconds, jobs })}\n`);
  log(
    `bench:lab: one lab boot, ${jobs.length} jobs × ${rounds} rounds × 4 targets × ${seconds} s; results in ${dir}`,
  );
  const budget = 300 + jobs.length * rounds * targets.length * (seconds + 25);
  const lab = spawnSync(
    join(repo, 'tools/lab/run'),
    [
      '--timeout',
      String(budget),
      '--memory',
      '3072',
      '--',
      'bash',
      join(repo, 'tools/bench/lab-guest.sh'),
      dir,
      handlerDir,
      String(rounds),
      String(seconds),
      ...jobs,
    ],
    { cwd: repo, stdio: ['ignore', 'inherit', 'inherit'] },
  );
  if (lab.status !== 0) {
    console.error(`bench:lab: the lab run failed (exit ${lab.status}); see ${dir}`);
    process.exit(1);
  }
}

const median = (values) => {
  const sorted = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (sorted.length === 0) return undefined;
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};
const lines = (file) =>
  existsSync(file)
    ? readFileSync(file, 'utf8')
        .trim()
        .split('\n')
        .filter(Boolean)
        .map((line) => line.trim().split(/\s+/))
    : [];
const clockTicks = Number(lines(join(dir, 'clk-tck.txt'))[0]?.[0] ?? 100);

/** One fio run: IOPS, MiB/s, p50/p99 clat (µs) of the job's main direction, total I/Os. */
function readRun(file) {
  const job = JSON.parse(readFileSync(file, 'utf8')).jobs[0];
  const { read, write } = job;
  const main = read.total_ios >= write.total_ios ? read : write;
  const percentile = (p) => (main.clat_ns?.percentile?.[p] ?? Number.NaN) / 1000;
  return {
    iops: read.iops + write.iops,
    mibPerSecond: (read.bw + write.bw) / 1024,
    p50: percentile('50.000000'),
    p99: percentile('99.000000'),
    ios: read.total_ios + write.total_ios,
  };
}

// The targets the guest served (a TCMU_BENCH_BASELINE run adds base-memory and base-file).
const served = lines(join(dir, 'targets.txt')).map((fields) => fields[0]);
if (served.length > 0) targets.splice(0, targets.length, ...served);
const files = new Set(readdirSync(dir));
const results = {};
for (const job of jobs) {
  results[job] = {};
  for (const target of targets) {
    const runs = [];
    for (let round = 1; round <= rounds; round++) {
      const base = `${job}.${round}.${target}`;
      if (!files.has(`${base}.json`)) continue;
      let run;
      try {
        run = readRun(join(dir, `${base}.json`));
      } catch {
        continue;
      }
      const proc = lines(join(dir, `${base}.proc`));
      if (proc.length === 2 && run.ios > 0) {
        run.cpuSecondsPer1000 = (Number(proc[1][0]) - Number(proc[0][0])) / clockTicks / (run.ios / 1000);
        run.switchesPerIo = (Number(proc[1][1]) - Number(proc[0][1])) / run.ios;
        // Runs from before the system ticks were sampled have two fields.
        if (proc[0].length > 2)
          run.systemCpuSecondsPer1000 =
            (Number(proc[1][2]) - Number(proc[0][2])) / clockTicks / (run.ios / 1000);
      }
      // The guest's "cpu" line of /proc/stat: user nice system idle iowait irq softirq steal…;
      // busy = everything but idle and iowait, as a percentage of both vCPUs.
      const cpu = lines(join(dir, `${base}.cpu`));
      if (cpu.length === 2) {
        const delta = cpu[1].slice(1).map((v, i) => Number(v) - Number(cpu[0][i + 1]));
        const total = delta.reduce((a, b) => a + b, 0);
        if (total > 0) run.guestBusyPercent = (1 - (delta[3] + delta[4]) / total) * 100;
      }
      runs.push(run);
    }
    if (runs.length === 0) continue;
    const pick = (key) => median(runs.map((run) => run[key]));
    results[job][target] = {
      rounds: runs.length,
      iops: pick('iops'),
      mibPerSecond: pick('mibPerSecond'),
      p50us: pick('p50'),
      p99us: pick('p99'),
      ...(runs[0].cpuSecondsPer1000 !== undefined
        ? { cpuSecondsPer1000Ios: pick('cpuSecondsPer1000'), contextSwitchesPerIo: pick('switchesPerIo') }
        : {}),
      ...(runs[0].systemCpuSecondsPer1000 !== undefined
        ? { systemCpuSecondsPer1000Ios: pick('systemCpuSecondsPer1000') }
        : {}),
      ...(runs[0].guestBusyPercent !== undefined ? { guestBusyPercent: pick('guestBusyPercent') } : {}),
    };
  }
  const runner = results[job]['runner-file']?.iops;
  const fileio = results[job].fileio?.iops;
  for (const target of targets) {
    const r = results[job][target];
    if (!r) continue;
    if (runner) r.vsRunner = r.iops / runner;
    if (fileio) r.vsFileio = r.iops / fileio;
  }
}

// Targets of issue 11, checked on the medians.
const checks = [];
for (const target of ours) {
  for (const job of jobs) {
    const r = results[job][target];
    if (r?.vsRunner !== undefined)
      checks.push({
        target,
        job,
        what: `≥ ${targetsGoal[target].vsRunner}x tcmu-runner`,
        value: r.vsRunner,
        met: r.vsRunner >= targetsGoal[target].vsRunner,
      });
  }
  for (const job of ['randread-4k-qd16', 'randwrite-4k-qd16']) {
    const r = results[job]?.[target];
    if (r?.vsFileio !== undefined)
      checks.push({
        target,
        job,
        what: `≥ ${targetsGoal.vsFileio4kQd16}x fileio`,
        value: r.vsFileio,
        met: r.vsFileio >= targetsGoal.vsFileio4kQd16,
      });
  }
  const qd1 = results['randread-4k-qd1'];
  if (qd1?.[target] && qd1['runner-file'])
    checks.push({
      target,
      job: 'randread-4k-qd1',
      what: 'p50 ≤ tcmu-runner',
      value: qd1[target].p50us / qd1['runner-file'].p50us,
      met: qd1[target].p50us <= qd1['runner-file'].p50us,
    });
}

const idle = {};
// "target <sample before> <sample after>", each sample two fields (older runs) or three.
for (const [target, ...samples] of lines(join(dir, 'idle.txt'))) {
  const [ticksBefore, ticksAfter] = [samples[0], samples[samples.length / 2]];
  idle[target] = { cpuPercent: ((Number(ticksAfter) - Number(ticksBefore)) / clockTicks / 5) * 100 };
}
const peakRssMiB = {};
for (const [target, kib] of lines(join(dir, 'peak-rss-kib.txt'))) peakRssMiB[target] = Number(kib) / 1024;

const report = {
  benchmark: 'lab',
  folder: dir,
  date: new Date().toISOString(),
  machine: {
    host: `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}`,
    guest: 'QEMU TCG (software emulation), 2 vCPUs, Debian 6.1 kernel',
    loadAverage: loadavg()[0],
  },
  rounds,
  seconds,
  jobs,
  results,
  idle,
  peakRssMiB,
  checks,
};

const fmt = (n, digits = 0) => (n === undefined || !Number.isFinite(n) ? '-' : n.toFixed(digits));
const perf = (job, r) =>
  r
    ? job.includes('1m') || job.includes('64k')
      ? `${fmt(r.mibPerSecond)} MiB/s`
      : `${fmt(r.iops)} IOPS`
    : '-';
const out = [];
out.push(
  `| fio job | ${targets.join(' | ')} | memory ÷ runner | file ÷ runner | memory ÷ fileio | file ÷ fileio |`,
  `|---|${targets.map(() => '---:').join('|')}|---:|---:|---:|---:|`,
);
for (const job of jobs) {
  const row = results[job];
  if (Object.keys(row).length === 0) continue;
  out.push(
    `| ${job} | ${targets.map((t) => perf(job, row[t])).join(' | ')} | ${fmt(row['ours-memory']?.vsRunner, 2)}x | ${fmt(row['ours-file']?.vsRunner, 2)}x | ${fmt(row['ours-memory']?.vsFileio, 2)}x | ${fmt(row['ours-file']?.vsFileio, 2)}x |`,
  );
}
const baselines = targets.filter((t) => t.startsWith('base-'));
if (baselines.length > 0) {
  out.push('', '| fio job | this build ÷ baseline build, memory | file |', '|---|---:|---:|');
  for (const job of jobs) {
    const row = results[job];
    const gain = (kind) =>
      row[`ours-${kind}`] && row[`base-${kind}`]
        ? row[`ours-${kind}`].iops / row[`base-${kind}`].iops
        : undefined;
    out.push(`| ${job} | ${fmt(gain('memory'), 2)}x | ${fmt(gain('file'), 2)}x |`);
  }
}
out.push(
  '',
  '| fio job | target | p50 clat µs | p99 clat µs | server CPU s / 1000 I/Os | of which system | context switches / I/O | guest CPU busy |',
  '|---|---|---:|---:|---:|---:|---:|---:|',
);
for (const job of jobs)
  for (const target of targets) {
    const r = results[job][target];
    if (r)
      out.push(
        `| ${job} | ${target} | ${fmt(r.p50us)} | ${fmt(r.p99us)} | ${fmt(r.cpuSecondsPer1000Ios, 2)} | ${fmt(r.systemCpuSecondsPer1000Ios, 2)} | ${fmt(r.contextSwitchesPerIo, 2)} | ${r.guestBusyPercent === undefined ? '-' : `${fmt(r.guestBusyPercent)}%`} |`,
      );
  }
out.push(
  '',
  `Idle CPU over 5 s with no I/O: ${Object.entries(idle)
    .map(([t, v]) => `${t} ${fmt(v.cpuPercent, 2)}%`)
    .join(', ')}. Peak RSS: ${Object.entries(peakRssMiB)
    .map(([t, v]) => `${t} ${fmt(v, 1)} MiB`)
    .join(', ')}.`,
  '',
  `Targets met: ${checks.filter((c) => c.met).length} of ${checks.length}. Missed: ${
    checks
      .filter((c) => !c.met)
      .map(
        (c) => `${c.target} ${c.job} ${c.what} (${fmt(c.value, 2)}${c.what.startsWith('p50') ? ' of' : 'x'})`,
      )
      .join('; ') || 'none'
  }.`,
);
const outFile = value('--out');
if (outFile) writeFileSync(outFile, `${JSON.stringify(report, null, 2)}\n`);
writeFileSync(join(dir, 'result.json'), `${JSON.stringify(report, null, 2)}\n`);
if (json) console.log(JSON.stringify(report, null, 2));
else console.log(out.join('\n'));
