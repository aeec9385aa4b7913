import { describe, expect, test } from "bun:test";
import { decodeCursor, encodeCursor, queryFingerprint } from "../../../src/modules/restaurants/cursor";
import { InvalidInput } from "../../../src/errors";

const query = { lat: 48.85, lng: 2.35, radius: 5000, cuisine: "Thai", openNow: true };

describe("discovery cursor", () => {
  test("round-trips the exact position for the same query", () => {
    const fp = queryFingerprint(query);
    const position = { distance: 1234.5678901234567, id: "65a0f0f0f0f0f0f0f0f0f0f0" };
    expect(decodeCursor(encodeCursor(position, fp), fp)).toEqual(position);
  });

  test("fingerprint ignores cuisine case but not the other parameters", () => {
    expect(queryFingerprint({ ...query, cuisine: "thai" })).toBe(queryFingerprint(query));
    expect(queryFingerprint({ ...query, radius: 5001 })).not.toBe(queryFingerprint(query));
    expect(queryFingerprint({ ...query, lat: 48.8501 })).not.toBe(queryFingerprint(query));
    expect(queryFingerprint({ ...query, openNow: false })).not.toBe(queryFingerprint(query));
    expect(queryFingerprint({ ...query, delivers: true })).not.toBe(queryFingerprint(query));
  });

  test("a cursor from another query, or garbage, is invalid input on /cursor", () => {
    const cursor = encodeCursor({ distance: 10, id: "65a0f0f0f0f0f0f0f0f0f0f0" }, queryFingerprint(query));
    const other = queryFingerprint({ ...query, radius: 100 });
    for (const bad of [cursor, "not-a-cursor", "!!!", Buffer.from('{"d":-1,"i":"x","q":"y"}').toString("base64url")]) {
      let error: unknown;
      try {
        decodeCursor(bad, other);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(InvalidInput);
      expect((error as InvalidInput).errors[0].path).toBe("/cursor");
    }
  });
});
