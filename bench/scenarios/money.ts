import { randomInt } from 'node:crypto';
import { allocate, mulRate, parseDecimal } from '../../src/domain/money.js';
import type { Scenario } from '../harness.js';

/** How long each timed loop runs. */
const DURATION_NS = 1_000_000_000n;
/** Iterations between clock reads, so the clock does not dominate the measurement. */
const BATCH = 1024;

/** Runs `op` in batches for about DURATION_NS (after a short warm-up) and returns operations per second. */
function opsPerSecond(op: (i: number) => bigint): number {
  let sink = 0n;
  for (let i = 0; i < 10 * BATCH; i++) sink ^= op(i);

  let ops = 0;
  const start = process.hrtime.bigint();
  let elapsed = 0n;
  do {
    for (let i = 0; i < BATCH; i++) sink ^= op(ops + i);
    ops += BATCH;
    elapsed = process.hrtime.bigint() - start;
  } while (elapsed < DURATION_NS);

  // Keep the results observable so the loop cannot be optimised away.
  if (sink === -1n) console.log('unreachable');
  return (ops * 1e9) / Number(elapsed);
}

/** Allocates 1,000,000.00 EUR across 7 uneven weights. */
async function allocateScenario(): Promise<number> {
  const total = parseDecimal('1000000.00', 'EUR');
  const weights = [3n, 5n, 7n, 11n, 13n, 17n, 19n];
  return opsPerSecond(() => allocate(total, weights)[0] ?? 0n);
}

/** Multiplies random amounts (up to 10,000,000.00) by "19.6" with half_up, parsing the rate each time. */
async function mulRateScenario(): Promise<number> {
  const amounts = Array.from({ length: 4096 }, () => BigInt(randomInt(0, 1_000_000_000)));
  return opsPerSecond((i) => mulRate(amounts[i & 4095] ?? 0n, '19.6', 'half_up'));
}

export const scenarios: Scenario[] = [
  { name: 'money.allocate', unit: 'ops/s', run: allocateScenario },
  { name: 'money.mul_rate', unit: 'ops/s', run: mulRateScenario },
];
