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
