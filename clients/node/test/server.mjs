// Starts a real permd serving the built-in demo tenant on an ephemeral
// loopback port: `$PERMD_BIN serve --listen 127.0.0.1:0`, reading the bound
// address from its first JSON log line. Bounded: 60 s to come up, 10 s to
// stop after SIGTERM before SIGKILL.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';

const START_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 10_000;

/** Id of the n-th demo Contact (src/source/demo.rs `contact_id`). */
export function demoContactId(n) {
  return `c0000000-0000-4000-8000-${n.toString(16).padStart(12, '0')}`;
}

/** The binary to run: $PERMD_BIN, required. */
export function permdBin() {
  const bin = process.env.PERMD_BIN;
  if (!bin) throw new Error('set PERMD_BIN to the permd binary (e.g. target/debug/permd)');
  if (!existsSync(bin)) throw new Error(`PERMD_BIN=${bin} does not exist`);
  return bin;
}

/**
 * Resolves to {addr, stop()} once permd listens; `stop()` resolves when the
 * process has exited.
 */
export function startPermd(extraArgs = []) {
  const bin = permdBin();
  const child = spawn(
    bin,
    ['serve', '--listen', '127.0.0.1:0', '--no-metrics', '--log-format', 'json', ...extraArgs],
    { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, RUST_LOG: 'info' } },
  );
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const log = [];

  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return exited;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
    try {
      return await exited;
    } finally {
      clearTimeout(timer);
    }
  };

  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      stop();
      reject(new Error(`permd did not report its address within ${START_TIMEOUT_MS} ms:\n${log.join('\n')}`));
    }, START_TIMEOUT_MS);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`permd exited (${code ?? signal}) before serving:\n${log.join('\n')}`));
    });
    createInterface({ input: child.stderr }).on('line', (line) => {
      if (log.length < 50) log.push(line);
      let entry;
      try {
        entry = JSON.parse(line);
      } catch {
        return;
      }
      const listen = entry?.fields?.listen;
      if (entry?.fields?.message === 'permd serving' && typeof listen === 'string') {
        clearTimeout(timer);
        resolve({ addr: listen, stop });
      }
    });
  });
}
