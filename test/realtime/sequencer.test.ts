import { describe, expect, test } from "bun:test";
import { ChangeSequencer } from "../../src/realtime/sequencer";
import type { OrderChange } from "../../src/events/change";
import { changeFor } from "./fixtures";

function collecting(opts: Partial<ConstructorParameters<typeof ChangeSequencer>[0]> = {}) {
  const delivered: OrderChange[] = [];
  const skipped: Array<[string, number, number]> = [];
  const sequencer = new ChangeSequencer({
    deliver: (c) => delivered.push(c),
    gapWaitMs: 30,
    maxOrders: 100,
    onGapSkipped: (id, from, to) => skipped.push([id, from, to]),
    ...opts,
  });
  return { sequencer, delivered, skipped, seqs: (id = "o1") => delivered.filter((c) => c.orderId === id).map((c) => c.seq) };
}

describe("ChangeSequencer", () => {
  test("when changes arrive in order then each goes out at once", () => {
    const { sequencer, seqs } = collecting();
    for (const seq of [1, 2, 3]) sequencer.offer(changeFor("o1", seq));
    expect(seqs()).toEqual([1, 2, 3]);
  });

  test("when a later seq arrives first then it waits for the earlier one", () => {
    const { sequencer, seqs } = collecting();
    sequencer.offer(changeFor("o1", 1));
    sequencer.offer(changeFor("o1", 3));
    expect(seqs()).toEqual([1]);
    sequencer.offer(changeFor("o1", 2));
    expect(seqs()).toEqual([1, 2, 3]);
  });

  test("when a seq arrives twice then it goes out once", () => {
    const { sequencer, seqs } = collecting();
    for (const seq of [1, 2, 2, 1, 3, 3]) sequencer.offer(changeFor("o1", seq));
    expect(seqs()).toEqual([1, 2, 3]);
  });

  test("when an order is first seen mid-stream then it starts there", () => {
    const { sequencer, seqs } = collecting();
    sequencer.offer(changeFor("o1", 7));
    sequencer.offer(changeFor("o1", 8));
    expect(seqs()).toEqual([7, 8]);
  });

  test("when a gap persists then it is filled from the database, in order", async () => {
    const asked: Array<[string, number, number]> = [];
    const { sequencer, seqs, skipped } = collecting({
      fillGap: async (id, after, before) => {
        asked.push([id, after, before]);
        return [changeFor(id, 3), changeFor(id, 2)];
      },
    });
    sequencer.offer(changeFor("o1", 1));
    sequencer.offer(changeFor("o1", 4));
    await Bun.sleep(80);
    expect(asked).toEqual([["o1", 1, 4]]);
    expect(seqs()).toEqual([1, 2, 3, 4]);
    expect(skipped).toEqual([]);
  });

  test("when the database does not answer then the gap is held and read again until it does; nothing is skipped (chaos F7)", async () => {
    let down = true;
    let reads = 0;
    const { sequencer, seqs, skipped } = collecting({
      fillGap: async (id) => {
        reads++;
        if (down) throw new Error("database down");
        return [changeFor(id, 2), changeFor(id, 3)];
      },
    });
    sequencer.offer(changeFor("o1", 1));
    sequencer.offer(changeFor("o1", 4));
    sequencer.offer(changeFor("o1", 5));
    await Bun.sleep(250);
    expect(reads).toBeGreaterThanOrEqual(2);
    expect(seqs()).toEqual([1]);
    expect(sequencer.lastSeq("o1")).toBe(1);
    down = false;
    await Bun.sleep(600);
    expect(seqs()).toEqual([1, 2, 3, 4, 5]);
    expect(skipped).toEqual([]);
    sequencer.close();
  });

  test("while the database does not answer, a redelivery of the missing seqs fills the gap", async () => {
    const { sequencer, seqs, skipped } = collecting({
      fillGap: async () => {
        throw new Error("database down");
      },
    });
    sequencer.offer(changeFor("o1", 1));
    sequencer.offer(changeFor("o1", 4));
    await Bun.sleep(80);
    for (const seq of [2, 3, 4]) sequencer.offer(changeFor("o1", seq));
    expect(seqs()).toEqual([1, 2, 3, 4]);
    expect(skipped).toEqual([]);
    sequencer.close();
  });

  test("when the database does not have the missing seqs either then the gap is skipped and reported", async () => {
    const { sequencer, seqs, skipped } = collecting({ fillGap: async () => [] });
    sequencer.offer(changeFor("o1", 1));
    sequencer.offer(changeFor("o1", 4));
    sequencer.offer(changeFor("o1", 5));
    await Bun.sleep(80);
    expect(seqs()).toEqual([1, 4, 5]);
    expect(skipped).toEqual([["o1", 2, 3]]);
  });

  test("orders are independent", () => {
    const { sequencer, seqs } = collecting();
    sequencer.offer(changeFor("o1", 1));
    sequencer.offer(changeFor("o2", 1));
    sequencer.offer(changeFor("o1", 3));
    sequencer.offer(changeFor("o2", 2));
    expect(seqs("o1")).toEqual([1]);
    expect(seqs("o2")).toEqual([1, 2]);
    sequencer.close();
  });

  test("memory is bounded: the least recently seen orders are forgotten", () => {
    const { sequencer } = collecting({ maxOrders: 3 });
    for (const id of ["a", "b", "c", "d"]) sequencer.offer(changeFor(id, 1));
    expect(sequencer.lastSeq("a")).toBeUndefined();
    expect(sequencer.lastSeq("d")).toBe(1);
  });
});
