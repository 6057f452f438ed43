// Progress of a load run for people: a progress bar on a terminal (cli-progress), plain lines otherwise
// (logs, CI), and the closing summary.
import type { LoadProgress, LoadResult } from './types.ts';

export interface ProgressReporter {
  update(progress: LoadProgress): void;
  stop(): void;
}

/** A bar when `stream` is a TTY and cli-progress is installed, plain lines otherwise. */
export async function createProgressReporter(stream: NodeJS.WriteStream = process.stderr): Promise<ProgressReporter> {
  if (!stream.isTTY) return plainReporter(stream);
  try {
    // Loaded on demand: only a terminal run needs it (dependency: cli-progress).
    const { default: cliProgress } = await import('cli-progress');
    return barReporter(stream, cliProgress);
  } catch {
    stream.write('load: cli-progress is not installed; printing plain progress lines\n');
    return plainReporter(stream);
  }
}

type CliProgress = typeof import('cli-progress');

function barReporter(stream: NodeJS.WriteStream, cliProgress: CliProgress): ProgressReporter {
  let bar: InstanceType<CliProgress['SingleBar']> | undefined;
  let phase: LoadProgress['phase'] | undefined;
  return {
    update(p) {
      if (p.phase === 'done') {
        bar?.update(bar.getTotal(), { sent: p.sent, rate: Math.round(p.ratePerSecond), errors: p.errors });
        return;
      }
      // A count-bounded phase fills with records, a time-bounded one with seconds.
      const byCount = p.total !== undefined;
      const total = byCount ? p.total! : Math.ceil((p.durationMs ?? 0) / 1000);
      const value = byCount ? p.sent : Math.floor(p.elapsedMs / 1000);
      const payload = { phase: p.phase.padEnd(9), sent: p.sent, rate: Math.round(p.ratePerSecond), errors: p.errors };
      if (phase !== p.phase) {
        bar?.stop();
        phase = p.phase;
        bar = new cliProgress.SingleBar(
          {
            stream,
            format: `{phase} [{bar}] {percentage}% | sent {sent} | {rate}/s | errors {errors} | ${byCount ? 'eta {eta}s' : '{value}/{total} s'}`,
            hideCursor: true,
          },
          cliProgress.Presets.shades_classic,
        );
        bar.start(Math.max(total, 1), value, payload);
      } else bar?.update(value, payload);
    },
    stop() {
      bar?.stop();
    },
  };
}

function plainReporter(stream: NodeJS.WriteStream): ProgressReporter {
  return {
    update(p) {
      if (p.phase === 'done') return;
      const of = p.total !== undefined ? `/${p.total}` : '';
      const bound = p.durationMs !== undefined ? `/${(p.durationMs / 1000).toFixed(0)}` : '';
      stream.write(
        `load: ${p.phase} sent ${p.sent}${of} · ${Math.round(p.ratePerSecond)}/s · errors ${p.errors} · ${(p.elapsedMs / 1000).toFixed(1)}${bound} s\n`,
      );
    },
    stop() {},
  };
}

/** The closing summary, one fact a line. */
export function formatSummary(result: LoadResult): string {
  const lines = [
    `run ${result.runId} → ${result.topic}`,
    result.setup.accounts > 0
      ? `setup: ${result.setup.accounts} accounts opened, ${result.setup.deposits} deposits in ${(result.setup.durationMs / 1000).toFixed(1)} s`
      : 'setup: skipped',
    `sent: ${result.sent} commands (${result.valid} valid transfers, ${result.invalid} invalid) in ${(result.durationMs / 1000).toFixed(1)} s`,
    `rate: ${result.ratePerSecond}/s`,
    `errors: ${result.errors}${result.firstError ? ` (first: ${result.firstError})` : ''}${result.aborted ? ' (stopped early)' : ''}`,
  ];
  const failed = Object.entries(result.expected.failed).map(([code, n]) => `${code} ${n}`);
  if (result.invalid > 0)
    lines.push(
      `expected: ${failed.join(', ')}${result.expected.dlq > 0 ? `, dead letters ${result.expected.dlq}` : ''}`,
    );
  return lines.join('\n');
}
