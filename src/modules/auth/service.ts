import type { AppDeps } from "../../app";

// Placeholder: the auth helper replaces this file (issue 3).
export async function bootstrapAdmin(_deps: AppDeps): Promise<void> {}
