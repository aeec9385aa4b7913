import { isParty, type Order } from "../events/order";
import type { TopicKind } from "../events/topics";
import type { Principal } from "../vocabulary";
import type { AccessSources } from "./sources";

export type Grant = { ok: true; order?: Order } | { ok: false; message: string };

const denied = (message: string): Grant => ({ ok: false, message });

/**
 * Who may subscribe to what, decided against the database at subscribe time (a token says who
 * the caller is, not which orders are theirs now): `order:<id>` for the order's customer,
 * restaurant owner, courier and admins; `restaurant:<id>` for its owner and admins;
 * `courier:<id>` for that courier only. Missing and forbidden look the same, so topic ids
 * cannot be probed.
 */
export async function checkTopicAccess(sources: AccessSources, who: Principal, kind: TopicKind, id: string): Promise<Grant> {
  switch (kind) {
    case "order": {
      const stored = await sources.findOrder(id);
      if (!stored || !isParty(who, stored)) return denied(`order ${id} does not exist or you take no part in it`);
      return { ok: true, order: stored.order };
    }
    case "restaurant": {
      if (who.role !== "admin" && who.role !== "restaurant") return denied("only the restaurant's owner and admins may follow a restaurant");
      const restaurant = await sources.findRestaurant(id);
      if (!restaurant || (who.role !== "admin" && restaurant.ownerId !== who.id)) return denied(`restaurant ${id} does not exist or is not yours`);
      return { ok: true };
    }
    case "courier": {
      if (who.role !== "courier" || who.id !== id) return denied("a courier topic is only for that courier");
      const user = await sources.findUser(id);
      if (!user || user.role !== "courier") return denied("a courier topic is only for that courier");
      return { ok: true };
    }
  }
}
