/** The one place topic names are spelled. */
export const topics = {
  order: (orderId: string) => `order:${orderId}`,
  restaurant: (restaurantId: string) => `restaurant:${restaurantId}`,
  courier: (courierId: string) => `courier:${courierId}`,
} as const;

export type TopicKind = keyof typeof topics;

/** Splits "order:abc" into its kind and id; null for anything else. */
export function parseTopic(topic: string): { kind: TopicKind; id: string } | null {
  const m = /^(order|restaurant|courier):([A-Za-z0-9_-]{1,64})$/.exec(topic);
  return m ? { kind: m[1] as TopicKind, id: m[2] } : null;
}
