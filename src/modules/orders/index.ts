import { Elysia } from "elysia";
import type { AppDeps } from "../../app";

// Placeholder: being written (issue 3).
export function ordersModule(_deps: AppDeps) {
  return new Elysia({ name: "orders" });
}
