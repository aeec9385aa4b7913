import { accessSync, constants } from "node:fs";

/**
 * The programs `bun test` needs besides Bun. Checked once by the preload (test/setup.ts) so a
 * fresh machine gets one line saying what to install instead of a stack trace inside a test.
 */
export type Prerequisite = { name: string; path: string | null; install: string };

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The Chromium the /demo test drives: CHROMIUM_PATH, else `chromium` on the PATH, else Debian's path. */
export function chromiumPath(): string | null {
  const explicit = process.env.CHROMIUM_PATH;
  if (explicit) return executable(explicit) ? explicit : null;
  return Bun.which("chromium") ?? null;
}

export function prerequisites(): Prerequisite[] {
  return [
    {
      name: "redis-server",
      path: Bun.which("redis-server") ?? null,
      install: "apt-get install redis-server, or brew install redis",
    },
    {
      name: "chromium",
      path: chromiumPath(),
      install: "apt-get install chromium, or set CHROMIUM_PATH to a Chrome or Chromium binary",
    },
  ];
}

/** One line naming every missing program and how to get it; null when nothing is missing. */
export function missingPrerequisites(): string | null {
  const missing = prerequisites().filter((p) => p.path === null);
  if (missing.length === 0) return null;
  return `bun test needs ${missing.map((p) => `${p.name} (${p.install})`).join(" and ")}: not found; install and run bun test again`;
}
