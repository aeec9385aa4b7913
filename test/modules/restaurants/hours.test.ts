import { describe, expect, test } from "bun:test";
import { isOpenAt, isValidTimeZone, localTime, openIntervals } from "../../../src/modules/restaurants/hours";

// 2025-01-06 is a Monday (day 1).
const weekdays = (open: string, close: string) => [1, 2, 3, 4, 5].map((day) => ({ day, open, close }));

describe("localTime", () => {
  test("reports weekday and minute in the given zone, not UTC", () => {
    expect(localTime("UTC", new Date("2025-01-06T12:34:00Z"))).toEqual({ day: 1, minute: 12 * 60 + 34 });
    // Tokyo is UTC+9: Monday 20:00 UTC is Tuesday 05:00 there.
    expect(localTime("Asia/Tokyo", new Date("2025-01-06T20:00:00Z"))).toEqual({ day: 2, minute: 5 * 60 });
    // New York in January is UTC-5: Monday 03:00 UTC is Sunday 22:00 there.
    expect(localTime("America/New_York", new Date("2025-01-06T03:00:00Z"))).toEqual({ day: 0, minute: 22 * 60 });
  });

  test("follows daylight saving time", () => {
    // Paris: UTC+1 in January, UTC+2 in July.
    expect(localTime("Europe/Paris", new Date("2025-01-06T10:00:00Z")).minute).toBe(11 * 60);
    expect(localTime("Europe/Paris", new Date("2025-07-07T10:00:00Z")).minute).toBe(12 * 60);
  });

  test("isValidTimeZone accepts IANA names and refuses others", () => {
    expect(isValidTimeZone("Europe/Paris")).toBe(true);
    expect(isValidTimeZone("Mars/Olympus_Mons")).toBe(false);
  });
});

describe("openIntervals", () => {
  test("splits an overnight period at midnight into the next day", () => {
    expect(openIntervals([{ day: 6, open: "22:00", close: "02:00" }])).toEqual([
      { day: 6, from: 22 * 60, to: 24 * 60 },
      { day: 0, from: 0, to: 2 * 60 },
    ]);
  });
  test("closing at 24:00 or 00:00 ends at midnight; open == close is 24 hours", () => {
    expect(openIntervals([{ day: 1, open: "18:00", close: "24:00" }])).toEqual([{ day: 1, from: 1080, to: 1440 }]);
    expect(openIntervals([{ day: 1, open: "18:00", close: "00:00" }])).toEqual([{ day: 1, from: 1080, to: 1440 }]);
    expect(openIntervals([{ day: 1, open: "00:00", close: "00:00" }])).toEqual([{ day: 1, from: 0, to: 1440 }]);
    expect(openIntervals([{ day: 1, open: "06:00", close: "06:00" }])).toEqual([
      { day: 1, from: 360, to: 1440 },
      { day: 2, from: 0, to: 360 },
    ]);
  });
});

describe("isOpenAt", () => {
  const paris = { isOpen: true, openingHours: { tz: "Europe/Paris", weekly: weekdays("11:00", "14:30") } };

  test("inside and outside same-day hours, in the restaurant's zone", () => {
    // Monday 10:30 UTC = 11:30 Paris.
    expect(isOpenAt(paris, new Date("2025-01-06T10:30:00Z"))).toBe(true);
    // Monday 13:45 UTC = 14:45 Paris: closed, although 13:45 would be inside the hours in UTC.
    expect(isOpenAt(paris, new Date("2025-01-06T13:45:00Z"))).toBe(false);
    // Close is exclusive, open inclusive.
    expect(isOpenAt(paris, new Date("2025-01-06T10:00:00Z"))).toBe(true);
    expect(isOpenAt(paris, new Date("2025-01-06T13:30:00Z"))).toBe(false);
    // Sunday: no period.
    expect(isOpenAt(paris, new Date("2025-01-05T10:30:00Z"))).toBe(false);
  });

  test("overnight 22:00–02:00 is open late on its day and early the next day", () => {
    const bar = { isOpen: true, openingHours: { tz: "UTC", weekly: [{ day: 5, open: "22:00", close: "02:00" }] } };
    expect(isOpenAt(bar, new Date("2025-01-10T23:00:00Z"))).toBe(true); // Friday 23:00
    expect(isOpenAt(bar, new Date("2025-01-11T01:59:00Z"))).toBe(true); // Saturday 01:59
    expect(isOpenAt(bar, new Date("2025-01-11T02:00:00Z"))).toBe(false); // Saturday 02:00
    expect(isOpenAt(bar, new Date("2025-01-10T21:59:00Z"))).toBe(false); // Friday 21:59
    expect(isOpenAt(bar, new Date("2025-01-10T01:00:00Z"))).toBe(false); // Friday 01:00: Thursday had no period
  });

  test("isOpen=false closes it whatever the hours; no hours means open while isOpen", () => {
    expect(isOpenAt({ ...paris, isOpen: false }, new Date("2025-01-06T10:30:00Z"))).toBe(false);
    expect(isOpenAt({ isOpen: true }, new Date("2025-01-05T03:00:00Z"))).toBe(true);
    expect(isOpenAt({ isOpen: false }, new Date("2025-01-05T03:00:00Z"))).toBe(false);
  });
});
