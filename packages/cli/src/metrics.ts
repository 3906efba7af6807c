import { createServer, type Server } from 'node:http';
import type { CommandDoneInfo } from '@tcmu/core';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { COMMAND_KINDS, type CommandKind, commandKind, senseKeyName } from './command-kinds.js';
import { CliError } from './errors.js';
import { formatListenAddress } from './listen-address.js';

/** The counters of @tcmu/core's device that metrics read (a subset of DeviceStats). */
export interface DeviceCounters {
  readonly inFlight: number;
  readonly queued: number;
  readonly aborted: number;
  readonly busy: number;
  readonly taskManagement: number;
  readonly backendErrors: number;
  readonly handlerFailures: number;
}

export interface ServeMetricsOptions {
  /** Device name: the `device` label of every metric. */
  readonly name: string;
  /** The device's live counters, once it is open. */
  readonly counters?: () => DeviceCounters | undefined;
  /** The backend's own figures, when it has `stats()` (duck-typed; numbers and strings are exported). */
  readonly backendStats?: () => unknown;
  /** Clock in milliseconds (tests). */
  readonly now?: () => number;
}

/** Commands and bytes of one kind. */
export interface KindFigures {
  readonly commands: number;
  readonly bytes: number;
  /** Mean latency in milliseconds, or 0 without commands. */
  readonly meanLatencyMs: number;
}

/** What `/stats.json` serves and `tcmu stats` prints. */
export interface StatsSnapshot {
  readonly name: string;
  readonly uptimeSeconds: number;
  readonly kinds: Readonly<Record<CommandKind, KindFigures>>;
  readonly inFlight: number;
  readonly queued: number;
  readonly checkConditions: Readonly<Record<string, number>>;
  readonly taskManagement: number;
  readonly aborted: number;
  readonly backendErrors: number;
  /** Rates over the last few seconds. */
  readonly rates: {
    readonly windowSeconds: number;
    readonly commandsPerSecond: number;
    readonly readBytesPerSecond: number;
    readonly writeBytesPerSecond: number;
  };
  /** The backend's `stats()`, when it has one. */
  readonly backend: Record<string, unknown> | undefined;
}

/** Latency buckets in seconds: 50 µs to 10 s. */
export const LATENCY_BUCKETS = [
  0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];

interface Sample {
  readonly time: number;
  readonly commands: number;
  readonly readBytes: number;
  readonly writeBytes: number;
}

const SAMPLES = 6;

function camelToSnake(name: string): string {
  return name.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toLowerCase();
}

/**
 * Per-device figures for Prometheus (prom-client) and `tcmu stats`: commands, bytes and latency by kind,
 * commands in flight, CHECK CONDITIONs by sense key, task management, and the backend's `stats()`.
 * `observe` is the `onCommandDone` observer: a few array updates and one histogram observation.
 */
export class ServeMetrics {
  readonly registry = new Registry();
  readonly #options: ServeMetricsOptions;
  readonly #now: () => number;
  readonly #started: number;
  readonly #commands = new Float64Array(COMMAND_KINDS.length);
  readonly #bytes = new Float64Array(COMMAND_KINDS.length);
  readonly #latencySeconds = new Float64Array(COMMAND_KINDS.length);
  readonly #senseKeys = new Float64Array(16);
  readonly #latency: Histogram<'kind'>;
  readonly #latencyByKind: { observe(value: number): void }[];
  readonly #samples: Sample[] = [];
  #sampler: NodeJS.Timeout | undefined;

  constructor(options: ServeMetricsOptions) {
    this.#options = options;
    this.#now = options.now ?? (() => Date.now());
    this.#started = this.#now();
    this.registry.setDefaultLabels({ device: options.name });
    const self = this;
    const kindIndex = COMMAND_KINDS.map((kind, index) => [kind, index] as const);
    new Counter({
      name: 'tcmu_commands_total',
      help: 'SCSI commands completed, by kind (read, write, unmap, flush, other).',
      labelNames: ['kind'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [kind, index] of kindIndex) this.inc({ kind }, self.#commands[index]!);
      },
    });
    new Counter({
      name: 'tcmu_bytes_total',
      help: 'Bytes in the data buffers of completed commands, by kind.',
      labelNames: ['kind'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [kind, index] of kindIndex) this.inc({ kind }, self.#bytes[index]!);
      },
    });
    this.#latency = new Histogram({
      name: 'tcmu_command_duration_seconds',
      help: 'Time from a command arriving in the ring to its completion, by kind.',
      labelNames: ['kind'],
      buckets: LATENCY_BUCKETS,
      registers: [this.registry],
    });
    this.#latencyByKind = COMMAND_KINDS.map((kind) => this.#latency.labels({ kind }));
    new Gauge({
      name: 'tcmu_commands_in_flight',
      help: 'Commands being handled now.',
      registers: [this.registry],
      collect() {
        this.set(self.#options.counters?.()?.inFlight ?? 0);
      },
    });
    new Gauge({
      name: 'tcmu_commands_queued',
      help: 'Commands waiting for a queue slot (more than the queue depth in flight).',
      registers: [this.registry],
      collect() {
        this.set(self.#options.counters?.()?.queued ?? 0);
      },
    });
    new Counter({
      name: 'tcmu_check_conditions_total',
      help: 'Commands completed with CHECK CONDITION, by sense key.',
      labelNames: ['sense_key'],
      registers: [this.registry],
      collect() {
        this.reset();
        self.#senseKeys.forEach((count, key) => {
          if (count > 0) this.inc({ sense_key: senseKeyName(key) }, count);
        });
      },
    });
    const deviceCounter = (name: string, help: string, field: keyof DeviceCounters) =>
      new Counter({
        name,
        help,
        registers: [this.registry],
        collect() {
          this.reset();
          const value = self.#options.counters?.()?.[field] ?? 0;
          if (value > 0) this.inc(value);
        },
      });
    deviceCounter(
      'tcmu_task_management_total',
      'Task management requests (TMRs) from the kernel.',
      'taskManagement',
    );
    deviceCounter(
      'tcmu_commands_aborted_total',
      'Commands completed with TASK ABORTED after a TMR.',
      'aborted',
    );
    deviceCounter('tcmu_commands_busy_total', 'Commands answered BUSY (while closing).', 'busy');
    deviceCounter('tcmu_backend_errors_total', 'Backend errors turned into sense data.', 'backendErrors');
    new Gauge({
      name: 'tcmu_backend_stat',
      help: "The backend's own numeric figures (its stats(): requests, retries, cache hits and misses, dirty bytes…), by name.",
      labelNames: ['stat'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [key, value] of Object.entries(self.#backendStats() ?? {})) {
          if (typeof value === 'number' && Number.isFinite(value))
            this.set({ stat: camelToSnake(key) }, value);
          if (typeof value === 'boolean') this.set({ stat: camelToSnake(key) }, value ? 1 : 0);
        }
      },
    });
    new Gauge({
      name: 'tcmu_backend_info',
      help: "The backend's own text figures (e.g. lease state) as labels; the value is always 1.",
      labelNames: ['stat', 'value'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [key, value] of Object.entries(self.#backendStats() ?? {})) {
          if (typeof value === 'string') this.set({ stat: camelToSnake(key), value }, 1);
        }
      },
    });
    new Gauge({
      name: 'tcmu_uptime_seconds',
      help: 'Seconds since the server started.',
      registers: [this.registry],
      collect() {
        this.set((self.#now() - self.#started) / 1000);
      },
    });
  }

  /** The `onCommandDone` observer. */
  readonly observe = (info: CommandDoneInfo): void => {
    const kind = COMMAND_KINDS.indexOf(commandKind(info.cdb[0] ?? 0));
    this.#commands[kind]!++;
    this.#bytes[kind]! += info.dataLength;
    const seconds = info.latencyMs / 1000;
    this.#latencySeconds[kind]! += seconds;
    this.#latencyByKind[kind]!.observe(seconds);
    if (info.senseKey !== undefined) this.#senseKeys[info.senseKey & 0x0f]!++;
  };

  #backendStats(): Record<string, unknown> | undefined {
    try {
      const stats = this.#options.backendStats?.();
      return stats !== null && typeof stats === 'object' ? (stats as Record<string, unknown>) : undefined;
    } catch {
      return undefined;
    }
  }

  #sample(): Sample {
    let commands = 0;
    for (const count of this.#commands) commands += count;
    return {
      time: this.#now(),
      commands,
      readBytes: this.#bytes[COMMAND_KINDS.indexOf('read')]!,
      writeBytes: this.#bytes[COMMAND_KINDS.indexOf('write')]!,
    };
  }

  /** Takes a sample for the rates now (the sampler calls it every second). */
  tick(): void {
    this.#samples.push(this.#sample());
    if (this.#samples.length > SAMPLES) this.#samples.shift();
  }

  /** Starts sampling once a second for the rates (does not keep the process alive). */
  startSampling(): void {
    this.tick();
    this.#sampler ??= setInterval(() => this.tick(), 1000);
    this.#sampler.unref();
  }

  stopSampling(): void {
    clearInterval(this.#sampler);
    this.#sampler = undefined;
  }

  snapshot(): StatsSnapshot {
    const now = this.#sample();
    const oldest = this.#samples[0] ?? now;
    const seconds = (now.time - oldest.time) / 1000;
    const rate = (delta: number) => (seconds > 0 ? delta / seconds : 0);
    const counters = this.#options.counters?.();
    const checkConditions: Record<string, number> = {};
    this.#senseKeys.forEach((count, key) => {
      if (count > 0) checkConditions[senseKeyName(key)] = count;
    });
    const kinds = Object.fromEntries(
      COMMAND_KINDS.map((kind, index) => {
        const commands = this.#commands[index]!;
        return [
          kind,
          {
            commands,
            bytes: this.#bytes[index]!,
            meanLatencyMs: commands > 0 ? (this.#latencySeconds[index]! * 1000) / commands : 0,
          },
        ];
      }),
    ) as Record<CommandKind, KindFigures>;
    const backend = this.#backendStats();
    return {
      name: this.#options.name,
      uptimeSeconds: (now.time - this.#started) / 1000,
      kinds,
      inFlight: counters?.inFlight ?? 0,
      queued: counters?.queued ?? 0,
      checkConditions,
      taskManagement: counters?.taskManagement ?? 0,
      aborted: counters?.aborted ?? 0,
      backendErrors: counters?.backendErrors ?? 0,
      rates: {
        windowSeconds: seconds,
        commandsPerSecond: rate(now.commands - oldest.commands),
        readBytesPerSecond: rate(now.readBytes - oldest.readBytes),
        writeBytesPerSecond: rate(now.writeBytes - oldest.writeBytes),
      },
      backend: backend === undefined ? undefined : { ...backend },
    };
  }
}

/** A listening metrics endpoint. */
export interface MetricsServer {
  /** The address it listens on (the real port when 0 was asked for). */
  readonly address: { host: string; port: number };
  close(): Promise<void>;
}

/**
 * Serves `GET /metrics` (Prometheus text format) and `GET /stats.json` (a {@link StatsSnapshot}) on
 * `address`. Fails with TCMU_ERR_CLI_METRICS when the address cannot be listened on.
 */
export async function listenMetrics(
  metrics: ServeMetrics,
  address: { host: string; port: number },
): Promise<MetricsServer> {
  const server: Server = createServer((request, response) => {
    const path = (request.url ?? '/').split('?')[0];
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/metrics') {
      metrics.registry.metrics().then(
        (text) => response.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
        (error: Error) => response.writeHead(500, { 'content-type': 'text/plain' }).end(`${error.message}\n`),
      );
      return;
    }
    if (path === '/stats.json') {
      response
        .writeHead(200, { 'content-type': 'application/json' })
        .end(`${JSON.stringify(metrics.snapshot())}\n`);
      return;
    }
    response
      .writeHead(path === '/' ? 200 : 404, { 'content-type': 'text/plain' })
      .end('tcmu metrics: /metrics (Prometheus), /stats.json\n');
  });
  server.keepAliveTimeout = 5_000;
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(address.port, address.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (error) {
    throw new CliError(
      'TCMU_ERR_CLI_METRICS',
      `cannot serve metrics on ${formatListenAddress(address)}: ${(error as Error).message}`,
      { hint: 'choose another --metrics address', cause: error },
    );
  }
  server.unref();
  const bound = server.address();
  const actual =
    bound !== null && typeof bound === 'object' ? { host: bound.address, port: bound.port } : address;
  metrics.startSampling();
  return {
    address: actual,
    close: () =>
      new Promise<void>((resolve) => {
        metrics.stopSampling();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
