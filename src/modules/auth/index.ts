import { Elysia } from "elysia";
import type { AppDeps } from "../../app";

// Placeholder: being written (issue 3).
export function authModule(_deps: AppDeps) {
  return new Elysia({ name: "auth" });
}
