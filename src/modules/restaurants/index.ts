import { Elysia } from "elysia";
import type { AuthPlugin } from "../../http/auth";
import type { AppDeps } from "../../deps";
import { Forbidden } from "../../errors";
import { numericQuery } from "../../http/query";
import { RestaurantModel } from "./model";
import type { RestaurantRepository } from "./repository";
import { RestaurantService } from "./service";

/** Restaurants: public reads and discovery, owner-or-admin writes. */
export function restaurantsModule(deps: AppDeps, restaurants: RestaurantRepository, auth: AuthPlugin) {
  const service = new RestaurantService(restaurants, deps.clock);

  return new Elysia({ name: "restaurants", prefix: "/restaurants" })
    .use(auth)
    /** The caller owns the restaurant in `:id` (or is an admin); gives the handler `restaurant`. 404 before 403. */
    .macro("ownsRestaurant", {
      auth: ["restaurant", "admin"],
      async resolve({ principal, params }) {
        const id = (params as Record<string, string | undefined>).id ?? "";
        const restaurant = await service.get(id);
        if (principal.role !== "admin" && restaurant.ownerId !== principal.id) {
          throw new Forbidden("only the restaurant's owner or an admin may change it");
        }
        return { restaurant };
      },
    })
    .post("", ({ body, principal, status }) => service.create(principal.id, body).then((r) => status(201, r)), {
      auth: ["restaurant", "admin"],
      body: RestaurantModel.create,
      response: { 201: RestaurantModel.restaurant },
      detail: { summary: "Create a restaurant owned by the caller (role restaurant or admin)", tags: ["restaurants"], security: [{ bearer: [] }] },
    })
    .get("", ({ query }) => service.nearby(query), {
      query: RestaurantModel.nearbyQuery,
      transform: numericQuery(RestaurantModel.nearbyQuery),
      response: { 200: RestaurantModel.nearbyPage },
      detail: {
        summary: "Restaurants near a point, nearest first ($geoNear); follow nextCursor for the next page",
        tags: ["restaurants"],
      },
    })
    .get("/:id", ({ params }) => service.get(params.id), {
      params: RestaurantModel.params,
      response: { 200: RestaurantModel.restaurant },
      detail: { summary: "One restaurant", tags: ["restaurants"] },
    })
    .patch("/:id", ({ restaurant, body }) => service.update(restaurant.id, body), {
      ownsRestaurant: true,
      params: RestaurantModel.params,
      body: RestaurantModel.patch,
      response: { 200: RestaurantModel.restaurant },
      detail: { summary: "Change a restaurant (its owner or an admin)", tags: ["restaurants"], security: [{ bearer: [] }] },
    });
}
