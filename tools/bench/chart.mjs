#!/usr/bin/env node
// Draws the bench:lab result as an SVG bar chart: per fio job, each target's throughput as a ratio
// to tcmu-runner's file handler (1.0 = tcmu-runner), with the targets of issue 11 as dashed lines.
// Usage: node tools/bench/chart.mjs LAB_RESULT.json OUT.svg
import { readFileSync, writeFileSync } from 'node:fs';

const [input, output] = process.argv.slice(2);
if (!input || !output) {
  console.error('usage: node tools/bench/chart.mjs LAB_RESULT.json OUT.svg');
  process.exit(2);
}
const report = JSON.parse(readFileSync(input, 'utf8'));
const series = [
  { key: 'ours-memory', label: 'tcmu serve memory:', color: '#2b6cb0' },
  { key: 'ours-file', label: 'tcmu serve file:', color: '#38a169' },
  { key: 'runner-file', label: 'tcmu-runner file handler', color: '#a0aec0' },
  { key: 'fileio', label: 'LIO fileio (in-kernel)', color: '#dd6b20' },
];
const jobs = report.jobs.filter((job) => report.results[job]?.['runner-file']);
const ratio = (job, key) => report.results[job][key]?.vsRunner ?? 0;
const maxRatio = Math.max(2, ...jobs.flatMap((job) => series.map((s) => ratio(job, s.key))));
// Clipped at 3x so the userspace targets stay readable (in-kernel fileio often runs far above: its
// bars stop at the top and carry their real value).
const top = Math.min(3, Math.ceil(maxRatio));

const width = 900;
const height = 420;
const margin = { left: 56, right: 16, top: 48, bottom: 92 };
const plotWidth = width - margin.left - margin.right;
const plotHeight = height - margin.top - margin.bottom;
const groupWidth = plotWidth / Math.max(1, jobs.length);
const barWidth = (groupWidth * 0.8) / series.length;
const y = (value) => margin.top + plotHeight - (value / top) * plotHeight;
const escapeXml = (text) => String(text).replace(/&/g, '&amp;').replace(/</g, '&lt;');

const parts = [];
parts.push(
  `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
  `<title>bench:lab throughput as a ratio to tcmu-runner's file handler, per fio job</title>`,
  `<rect width="${width}" height="${height}" fill="white"/>`,
  `<text x="${margin.left}" y="20" font-size="14" font-weight="bold">bench:lab: throughput ÷ tcmu-runner (file handler), median of ${report.rounds} rounds × ${report.seconds} s</text>`,
  `<text x="${margin.left}" y="36" fill="#555">${escapeXml(report.machine?.guest ?? '')}; run ${escapeXml(
    String(report.folder ?? '')
      .split('/')
      .pop(),
  )}</text>`,
);
for (let tick = 0; tick <= top; tick += 0.5) {
  parts.push(
    `<line x1="${margin.left}" x2="${width - margin.right}" y1="${y(tick)}" y2="${y(tick)}" stroke="#e2e8f0"/>`,
    `<text x="${margin.left - 6}" y="${y(tick) + 4}" text-anchor="end">${tick}x</text>`,
  );
}
for (const [goal, label] of [
  [1.25, 'file goal 1.25x'],
  [1.5, 'memory goal 1.5x'],
]) {
  parts.push(
    `<line x1="${margin.left}" x2="${width - margin.right}" y1="${y(goal)}" y2="${y(goal)}" stroke="#718096" stroke-dasharray="4 3"/>`,
    `<text x="${width - margin.right - 4}" y="${y(goal) - 3}" text-anchor="end" fill="#4a5568">${label}</text>`,
  );
}
jobs.forEach((job, j) => {
  const x0 = margin.left + j * groupWidth + groupWidth * 0.1;
  series.forEach((s, i) => {
    const value = ratio(job, s.key);
    const shown = Math.min(value, top);
    const x = x0 + i * barWidth;
    parts.push(
      `<rect x="${x.toFixed(1)}" y="${y(shown).toFixed(1)}" width="${(barWidth - 2).toFixed(1)}" height="${(y(0) - y(shown)).toFixed(1)}" fill="${s.color}"><title>${escapeXml(`${s.label} ${job}: ${value.toFixed(2)}x`)}</title></rect>`,
    );
    if (value > 0)
      parts.push(
        `<text x="${(x + barWidth / 2 - 1).toFixed(1)}" y="${(y(shown) - 3).toFixed(1)}" text-anchor="middle" font-size="9">${value.toFixed(2)}</text>`,
      );
  });
  parts.push(
    `<text x="${(x0 + groupWidth * 0.4).toFixed(1)}" y="${margin.top + plotHeight + 16}" text-anchor="middle">${escapeXml(job)}</text>`,
  );
});
series.forEach((s, i) => {
  const x = margin.left + i * 200;
  const yLegend = height - 28;
  parts.push(
    `<rect x="${x}" y="${yLegend - 10}" width="12" height="12" fill="${s.color}"/>`,
    `<text x="${x + 16}" y="${yLegend}">${escapeXml(s.label)}</text>`,
  );
});
parts.push('</svg>');
writeFileSync(output, `${parts.join('\n')}\n`);
console.log(`wrote ${output}`);
