import type { Clock } from "../../clock";
import { InvalidInput, NotFound, type FieldError } from "../../errors";
import { decodeCursor, encodeCursor, queryFingerprint } from "./cursor";
import { validateDeliveryArea } from "./area";
import { isValidTimeZone } from "./hours";
import { RestaurantModel } from "./model";
import type { RestaurantChanges, RestaurantRepository } from "./repository";

/** Menu items keep the ids clients gave them; new ones get a server-made id. */
function menuFrom(items: readonly RestaurantModel.menuItemInput[]): RestaurantModel.menuItem[] {
  return items.map((m) => ({ id: m.id ?? crypto.randomUUID(), name: m.name, priceCents: m.priceCents, available: m.available ?? true }));
}

/** Checks what the schema cannot: a known time zone, unique menu item ids, a well-formed delivery area. */
function checkRestaurantInput(input: {
  openingHours?: RestaurantModel.openingHours | null;
  menu?: readonly RestaurantModel.menuItemInput[];
  deliveryArea?: RestaurantModel.deliveryArea | null;
}): void {
  const errors: FieldError[] = input.deliveryArea ? validateDeliveryArea(input.deliveryArea, "/deliveryArea") : [];
  if (input.openingHours && !isValidTimeZone(input.openingHours.tz)) {
    errors.push({ path: "/openingHours/tz", message: `unknown IANA time zone ${JSON.stringify(input.openingHours.tz)}` });
  }
  const seen = new Set<string>();
  input.menu?.forEach((m, i) => {
    if (m.id === undefined) return;
    if (seen.has(m.id)) errors.push({ path: `/menu/${i}/id`, message: `duplicate menu item id ${JSON.stringify(m.id)}` });
    seen.add(m.id);
  });
  if (errors.length > 0) throw new InvalidInput("request body is invalid", errors);
}

export class RestaurantService {
  constructor(
    private readonly repo: RestaurantRepository,
    private readonly clock: Clock,
  ) {}

  async create(ownerId: string, input: RestaurantModel.create): Promise<RestaurantModel.restaurant> {
    checkRestaurantInput(input);
    return this.repo.create({
      ownerId,
      name: input.name,
      cuisines: input.cuisines ?? [],
      location: { lat: input.location.lat, lng: input.location.lng },
      ...(input.address !== undefined ? { address: input.address } : {}),
      deliveryRadiusMeters: input.deliveryRadiusMeters ?? RestaurantModel.DEFAULT_DELIVERY_RADIUS_METERS,
      ...(input.deliveryArea ? { deliveryArea: input.deliveryArea } : {}),
      prepTimeMinutes: input.prepTimeMinutes ?? RestaurantModel.DEFAULT_PREP_TIME_MINUTES,
      isOpen: input.isOpen ?? true,
      ...(input.openingHours ? { openingHours: input.openingHours } : {}),
      menu: menuFrom(input.menu ?? []),
      createdAt: this.clock.now(),
    });
  }

  async get(id: string): Promise<RestaurantModel.restaurant> {
    const restaurant = await this.repo.findById(id);
    if (!restaurant) throw new NotFound(`restaurant ${id} not found`);
    return restaurant;
  }

  async update(id: string, patch: RestaurantModel.patch): Promise<RestaurantModel.restaurant> {
    checkRestaurantInput(patch);
    const { menu, ...rest } = patch;
    const changes: RestaurantChanges = { ...rest, ...(menu !== undefined ? { menu: menuFrom(menu) } : {}) };
    const updated = await this.repo.update(id, changes);
    if (!updated) throw new NotFound(`restaurant ${id} not found`);
    return updated;
  }

  /** Discovery: nearest first, keyset-paginated on (distance, id). */
  async nearby(q: RestaurantModel.nearbyQuery): Promise<RestaurantModel.nearbyPage> {
    const radius = q.radius ?? 5000;
    const limit = q.limit ?? 20;
    const fingerprint = queryFingerprint({ lat: q.lat, lng: q.lng, radius, cuisine: q.cuisine, openNow: q.openNow, delivers: q.delivers });
    const after = q.cursor !== undefined ? decodeCursor(q.cursor, fingerprint) : undefined;
    const hits = await this.repo.nearby({
      point: { lat: q.lat, lng: q.lng },
      radiusMeters: radius,
      ...(q.cuisine !== undefined ? { cuisine: q.cuisine } : {}),
      ...(q.openNow ? { openAt: this.clock.now() } : {}),
      delivers: q.delivers === true,
      ...(after ? { after } : {}),
      limit: limit + 1, // one extra tells whether another page follows
    });
    const page = hits.slice(0, limit);
    const last = page[page.length - 1];
    return {
      items: page.map((h) => ({ ...h.restaurant, distanceMeters: h.distanceMeters })),
      nextCursor: hits.length > limit && last ? encodeCursor({ distance: last.distanceMeters, id: last.restaurant.id }, fingerprint) : null,
    };
  }
}
