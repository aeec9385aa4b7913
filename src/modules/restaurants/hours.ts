import type { RestaurantModel } from "./model";

/**
 * Opening hours, evaluated in the restaurant's own IANA time zone. Plain TS (Intl only).
 * A period whose close is not after its open runs past midnight into the next day
 * (22:00–02:00); open == close means 24 hours from `open`.
 */

const MINUTES_PER_DAY = 24 * 60;

/** A half-open span [from, to) of minutes within one local weekday; what the database matches on. */
export type OpenInterval = { day: number; from: number; to: number };

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatterFor(tz: string): Intl.DateTimeFormat {
  let f = formatters.get(tz);
  if (!f) {
    f = new Intl.DateTimeFormat("en-US", { timeZone: tz, weekday: "short", hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
    formatters.set(tz, f);
  }
  return f;
}

export function isValidTimeZone(tz: string): boolean {
  try {
    formatterFor(tz);
    return true;
  } catch {
    return false;
  }
}

const WEEKDAYS: Record<string, number> = { Sun: 0, Mon: 1, Tue: 2, Wed: 3, Thu: 4, Fri: 5, Sat: 6 };

/** The local weekday (0 = Sunday) and minute of the day at `at` in time zone `tz`. */
export function localTime(tz: string, at: Date): { day: number; minute: number } {
  let day = 0;
  let hour = 0;
  let minute = 0;
  for (const part of formatterFor(tz).formatToParts(at)) {
    if (part.type === "weekday") day = WEEKDAYS[part.value] ?? 0;
    else if (part.type === "hour") hour = Number(part.value) % 24;
    else if (part.type === "minute") minute = Number(part.value);
  }
  return { day, minute: hour * 60 + minute };
}

function toMinutes(hhmm: string): number {
  const [h, m] = hhmm.split(":");
  return Number(h) * 60 + Number(m);
}

/** Splits the weekly periods into same-day intervals (overnight periods become two). */
export function openIntervals(weekly: readonly RestaurantModel.openingPeriod[]): OpenInterval[] {
  const out: OpenInterval[] = [];
  for (const p of weekly) {
    const open = toMinutes(p.open);
    const close = toMinutes(p.close);
    if (close > open) {
      out.push({ day: p.day, from: open, to: close });
    } else {
      out.push({ day: p.day, from: open, to: MINUTES_PER_DAY });
      const spill = close === open ? open : close;
      if (spill > 0) out.push({ day: (p.day + 1) % 7, from: 0, to: spill });
    }
  }
  return out;
}

/** Whether the restaurant takes orders at `at`: `isOpen` and, when it has opening hours, inside one of them. */
export function isOpenAt(r: Pick<RestaurantModel.restaurant, "isOpen" | "openingHours">, at: Date): boolean {
  if (!r.isOpen) return false;
  if (!r.openingHours) return true;
  const { day, minute } = localTime(r.openingHours.tz, at);
  return openIntervals(r.openingHours.weekly).some((i) => i.day === day && i.from <= minute && minute < i.to);
}
