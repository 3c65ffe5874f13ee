/**
 * Serialises events: each is handled to completion before the next starts. An event pushed while
 * one is being handled (a disconnect decided while handling a result, say) waits its turn instead
 * of re-entering the handler, so a handler never runs inside itself.
 */
export class EventQueue<T> {
  private readonly items: T[] = [];
  private draining = false;

  constructor(
    private readonly handle: (event: T) => void,
    /** Called when handling an event threw; the queue goes on with the next. */
    private readonly failed: (event: T, err: unknown) => void,
  ) {}

  push(event: T): void {
    this.items.push(event);
    if (this.draining) return;
    this.draining = true;
    try {
      for (let e = this.items.shift(); e !== undefined; e = this.items.shift()) {
        try {
          this.handle(e);
        } catch (err) {
          this.failed(e, err);
        }
      }
    } finally {
      this.draining = false;
    }
  }
}
