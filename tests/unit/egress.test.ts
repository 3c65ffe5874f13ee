import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Egress, type EgressSink } from '../../worker/egress.js';

/** A socket that records what was handed to it and lets the test say when the kernel took it. */
class FakeSink implements EgressSink {
  readyState = 1;
  readonly handed: string[] = [];
  private readonly pending: Array<() => void> = [];
  constructor(
    private readonly name: string,
    private readonly log: string[],
  ) {}
  send(data: Buffer, _o: { binary: boolean }, cb: (err?: Error) => void): void {
    const what = `${this.name}:${data.toString()}`;
    this.handed.push(what);
    this.log.push(what);
    this.pending.push(() => cb());
  }
  /** The kernel took the oldest frame handed out. */
  take(): void {
    this.pending.shift()!();
  }
  get waiting(): number {
    return this.pending.length;
  }
}

const frame = (s: string, bytes = 10) => Buffer.from(s.padEnd(bytes, '.'));

test('egress: the most urgent kind leaves first once the window has room', () => {
  const log: string[] = [];
  const coord = new FakeSink('coord', log);
  const a = new FakeSink('a', log);
  const b = new FakeSink('b', log);
  const e = new Egress({ windowBytes: 20 });
  e.send(a, frame('f1'), 'forward');
  e.send(b, frame('c1'), 'contrib');
  e.send(a, frame('c2'), 'contrib');
  e.send(b, frame('f2'), 'forward');
  // f1 and c1 fill the window; c2 waits for a's socket, f2 for b's and the window.
  assert.deepEqual(log, ['a:f1........', 'b:c1........']);
  assert.equal(e.outstanding, 20);
  assert.equal(e.waiting, 2);
  // A total goes whatever the window holds, on its own socket.
  e.send(coord, frame('t1'), 'total');
  assert.equal(log.at(-1), 'coord:t1........');
  assert.equal(e.outstanding, 30);
  coord.take();
  a.take();
  // a is free: c2 (a contribution) goes before f2 (a forward), which still waits for b.
  assert.equal(log.at(-1), 'a:c2........');
  b.take();
  assert.equal(log.at(-1), 'b:f2........');
  assert.equal(e.waiting, 0);
});

test('egress: one frame at a time per socket, in order within a kind', () => {
  const log: string[] = [];
  const a = new FakeSink('a', log);
  const e = new Egress({ windowBytes: 1 << 20 });
  for (const s of ['1', '2', '3']) e.send(a, frame(s, 4), 'contrib');
  assert.deepEqual(a.handed, ['a:1...']);
  a.take();
  assert.deepEqual(a.handed, ['a:1...', 'a:2...']);
  a.take();
  a.take();
  assert.deepEqual(a.handed, ['a:1...', 'a:2...', 'a:3...']);
  assert.equal(e.outstanding, 0);
});

test('egress: a frame larger than the window still leaves when nothing else is out', () => {
  const log: string[] = [];
  const a = new FakeSink('a', log);
  const e = new Egress({ windowBytes: 8 });
  e.send(a, frame('big', 100), 'forward');
  assert.equal(a.waiting, 1);
  assert.equal(e.outstanding, 100);
});

test('egress: frames for a closed socket are dropped and counted; clear drops the rest', () => {
  const log: string[] = [];
  const a = new FakeSink('a', log);
  const b = new FakeSink('b', log);
  const e = new Egress({ windowBytes: 10 });
  e.send(a, frame('x'), 'contrib');
  e.send(b, frame('y'), 'contrib');
  e.send(b, frame('z'), 'forward');
  b.readyState = 3;
  a.take();
  assert.deepEqual(b.handed, []);
  assert.equal(e.dropped, 2);
  e.send(a, frame('p'), 'forward');
  e.send(a, frame('q'), 'forward');
  e.clear();
  a.take();
  assert.deepEqual(a.handed, ['a:x.........', 'a:p.........']);
  assert.equal(e.dropped, 3);
});

test('egress: a new phase queues behind the old phase, whose forwards go before the new contributions', () => {
  const log: string[] = [];
  const coord = new FakeSink('coord', log);
  const a = new FakeSink('a', log);
  const b = new FakeSink('b', log);
  const e = new Egress({ windowBytes: 10 });
  e.send(a, frame('f1'), 'forward'); // fills the window
  e.send(b, frame('f2'), 'forward');
  e.nextPhase();
  e.send(b, frame('c1'), 'contrib');
  e.send(a, frame('c2'), 'contrib');
  assert.equal(e.waiting, 3);
  a.take();
  // Without phases c2 (a contribution) would go before f2; the old phase's f2 goes first.
  assert.equal(log.at(-1), 'b:f2........');
  b.take();
  assert.equal(log.at(-1), 'b:c1........');
  // A total of the new phase still goes whatever the window holds.
  e.send(coord, frame('t1'), 'total');
  assert.equal(log.at(-1), 'coord:t1........');
  coord.take();
  b.take();
  assert.equal(log.at(-1), 'a:c2........');
  assert.equal(e.waiting, 0);
  // With nothing waiting, a new phase opens no new queue: within a phase, contributions go first.
  e.nextPhase();
  e.nextPhase();
  e.send(b, frame('f3'), 'forward');
  e.send(b, frame('c3'), 'contrib');
  a.take();
  assert.equal(log.at(-1), 'b:c3........');
});

test('egress: bytes the kernel still holds count against the window; a timer looks again', () => {
  const log: string[] = [];
  const coord = new FakeSink('coord', log);
  const a = new FakeSink('a', log);
  const b = new FakeSink('b', log);
  const kernel = new Map<EgressSink, number>();
  const timers: Array<{ fn: () => void; ms: number }> = [];
  const e = new Egress({
    windowBytes: 25,
    kernelBytes: (s) => kernel.get(s) ?? 0,
    setTimer: (fn, ms) => timers.push({ fn, ms }),
  });
  e.send(a, frame('c1'), 'contrib');
  kernel.set(a, 10);
  a.take(); // the kernel took c1 and holds it, unacknowledged
  e.send(b, frame('c2'), 'contrib');
  kernel.set(b, 10);
  b.take();
  assert.equal(e.outstanding, 20);
  e.send(a, frame('c3'), 'contrib');
  // 20 held + 10 > 25: c3 waits, though nothing is handed out; a look at the kernel is scheduled.
  assert.deepEqual(a.handed, ['a:c1........']);
  assert.equal(timers.length, 1);
  // A total goes whatever the kernel holds.
  e.send(coord, frame('t1'), 'total');
  assert.equal(log.at(-1), 'coord:t1........');
  coord.take();
  kernel.set(coord, 0);
  // The peer acknowledged c1: the next look lets c3 go.
  kernel.set(a, 0);
  timers.shift()!.fn();
  assert.deepEqual(a.handed, ['a:c1........', 'a:c3........']);
  assert.equal(e.outstanding, 20);
  assert.equal(timers.length, 0);
});

test('egress: without the kernel counts (no addon) the window holds only what is not yet taken', () => {
  const log: string[] = [];
  const a = new FakeSink('a', log);
  const b = new FakeSink('b', log);
  const timers: Array<() => void> = [];
  const e = new Egress({ windowBytes: 15, kernelBytes: () => -1, setTimer: (fn) => timers.push(fn) });
  e.send(a, frame('c1'), 'contrib');
  a.take();
  e.send(b, frame('c2'), 'contrib');
  assert.equal(log.at(-1), 'b:c2........');
  assert.equal(e.outstanding, 10);
  assert.equal(timers.length, 0);
});

test('egress: the kernel is looked at again only once the wait between looks has passed', () => {
  const log: string[] = [];
  const a = new FakeSink('a', log);
  const b = new FakeSink('b', log);
  let reads = 0;
  let clock = 0;
  const timers: Array<() => void> = [];
  const e = new Egress({
    windowBytes: 15,
    kernelBytes: () => {
      reads++;
      return 10;
    },
    setTimer: (fn) => timers.push(fn),
    now: () => clock,
  });
  e.send(a, frame('c1'), 'contrib');
  a.take(); // held 10 (counted at once, no look)
  assert.equal(reads, 0);
  e.send(b, frame('c2'), 'contrib'); // full: one look (still 10 held), then a timer
  assert.equal(reads, 1);
  assert.equal(timers.length, 1);
  e.send(b, frame('c3'), 'contrib'); // full again, but the last look is fresh: no new look
  assert.equal(reads, 1);
  clock = 100;
  e.send(a, frame('c4'), 'contrib'); // the look is stale now
  assert.equal(reads, 2);
  assert.deepEqual(b.handed, []);
});

test('egress: the window grows to the rate the kernel passes bytes on at, so that a fast link never idles', () => {
  const log: string[] = [];
  const a = new FakeSink('a', log);
  const b = new FakeSink('b', log);
  let clock = 0;
  let inA = 0;
  const timers: Array<{ fn: () => void; ms: number }> = [];
  const e = new Egress({
    windowBytes: 15,
    kernelBytes: () => inA,
    setTimer: (fn, ms) => timers.push({ fn, ms }),
    now: () => clock,
  });
  e.send(a, frame('c1'), 'contrib');
  inA = 10;
  a.take();
  e.send(b, frame('c2'), 'contrib');
  assert.deepEqual(b.handed, []);
  assert.equal(timers[0]!.ms, 4);
  // 10 bytes left in 1 ms: 10 bytes/ms, and 8 ms of that is an 80-byte window.
  clock = 1;
  inA = 0;
  timers.shift()!.fn();
  assert.deepEqual(b.handed, ['b:c2........']);
  b.take();
  for (const s of ['c3', 'c4', 'c5', 'c6']) e.send(s === 'c3' || s === 'c5' ? a : b, frame(s), 'contrib');
  // c3 and c4 both go (10 held + 20 handed out: more than 15; one frame a socket still holds c5, c6).
  assert.deepEqual(log.slice(-2), ['a:c3........', 'b:c4........']);
  assert.equal(e.outstanding, 30);
  assert.equal(e.waiting, 2);
});
