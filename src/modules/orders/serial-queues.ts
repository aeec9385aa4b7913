/**
 * One promise queue per key: work for one key runs one at a time, in the order it was queued;
 * a failure answers its own caller and does not stop the queue. A key's queue is forgotten once
 * it is empty.
 */
export class SerialQueues {
  private readonly tails = new Map<string, Promise<void>>();

  run<T>(key: string, work: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    const run = previous.then(work);
    const tail = run.then(
      () => undefined,
      () => undefined,
    );
    this.tails.set(key, tail);
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return run;
  }

  /** Whether work for `key` is queued or running. */
  busy(key: string): boolean {
    return this.tails.has(key);
  }

  /** Settles when the work queued so far has settled. */
  async drained(): Promise<void> {
    await Promise.all([...this.tails.values()]);
  }
}
