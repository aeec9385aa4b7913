import { describe, expect, test } from "bun:test";
import { distanceMeters } from "../../../src/geo";
import { Unprocessable } from "../../../src/errors";
import { deliveryFeeCents, priceOrder } from "../../../src/modules/orders/pricing";

const fees = { baseFeeCents: 199, perKmCents: 50 };
const restaurant = {
  isOpen: true,
  openingHours: undefined,
  location: { lat: 48.8566, lng: 2.3522 },
  deliveryRadiusMeters: 5000,
  menu: [
    { id: "pizza", name: "Pizza", priceCents: 1250, available: true },
    { id: "soda", name: "Soda", priceCents: 300, available: true },
    { id: "soup", name: "Soup", priceCents: 700, available: false },
  ],
};
const now = new Date("2025-01-06T12:00:00Z"); // a Monday

describe("delivery fee: base + per-km rate per started km of the straight-line distance", () => {
  test("0 m costs the base fee only", () => expect(deliveryFeeCents(0, fees)).toBe(199));
  test("1 m starts the first km", () => expect(deliveryFeeCents(1, fees)).toBe(249));
  test("exactly 1000 m is one km", () => expect(deliveryFeeCents(1000, fees)).toBe(249));
  test("1000.5 m starts the second km", () => expect(deliveryFeeCents(1000.5, fees)).toBe(299));
  test("4.2 km is five started km", () => expect(deliveryFeeCents(4200, fees)).toBe(199 + 5 * 50));
});

describe("priceOrder", () => {
  test("prices come from the menu and the fee from the distance", () => {
    const point = { lat: 48.8666, lng: 2.3522 }; // ~1.11 km north
    const priced = priceOrder(restaurant, [{ menuItemId: "pizza", quantity: 2 }, { menuItemId: "soda", quantity: 3 }], point, now, fees);
    expect(priced.items).toEqual([
      { menuItemId: "pizza", name: "Pizza", quantity: 2, unitPriceCents: 1250 },
      { menuItemId: "soda", name: "Soda", quantity: 3, unitPriceCents: 300 },
    ]);
    expect(priced.subtotalCents).toBe(2 * 1250 + 3 * 300);
    const d = distanceMeters(restaurant.location, point);
    expect(d).toBeGreaterThan(1000);
    expect(d).toBeLessThan(2000);
    expect(priced.deliveryFeeCents).toBe(199 + 2 * 50);
    expect(priced.totalCents).toBe(priced.subtotalCents + priced.deliveryFeeCents);
  });

  const refusals: Array<[string, () => unknown, RegExp]> = [
    ["closed (isOpen false)", () => priceOrder({ ...restaurant, isOpen: false }, [{ menuItemId: "pizza", quantity: 1 }], restaurant.location, now, fees), /closed/],
    [
      "outside opening hours",
      () =>
        priceOrder(
          { ...restaurant, openingHours: { tz: "Europe/Paris", weekly: [{ day: 1, open: "18:00", close: "22:00" }] } },
          [{ menuItemId: "pizza", quantity: 1 }],
          restaurant.location,
          now,
          fees,
        ),
      /closed/,
    ],
    ["outside the delivery radius", () => priceOrder(restaurant, [{ menuItemId: "pizza", quantity: 1 }], { lat: 48.95, lng: 2.3522 }, now, fees), /radius/],
    ["unknown item", () => priceOrder(restaurant, [{ menuItemId: "sushi", quantity: 1 }], restaurant.location, now, fees), /not on this restaurant's menu/],
    ["unavailable item", () => priceOrder(restaurant, [{ menuItemId: "soup", quantity: 1 }], restaurant.location, now, fees), /not available/],
  ];
  for (const [name, run, message] of refusals) {
    test(`422 when ${name}`, () => {
      let caught: unknown;
      try {
        run();
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(Unprocessable);
      expect((caught as Error).message).toMatch(message);
    });
  }

  test("inside opening hours in the restaurant's time zone", () => {
    // 12:00Z on Monday is 13:00 in Paris.
    const open = { ...restaurant, openingHours: { tz: "Europe/Paris", weekly: [{ day: 1, open: "12:30", close: "14:00" }] } };
    expect(priceOrder(open, [{ menuItemId: "pizza", quantity: 1 }], restaurant.location, now, fees).totalCents).toBe(1250 + 199);
  });
});
