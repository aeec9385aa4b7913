import { Elysia, t } from "elysia";
import { join } from "node:path";
import { NotFound } from "../errors";

/** The demo's files: plain HTML, JS and CSS served as they are (no build step). */
const FILES = {
  "demo.js": "text/javascript; charset=utf-8",
  "demo.css": "text/css; charset=utf-8",
} as const;

const here = import.meta.dir;

function serve(name: string, type: string): Response {
  return new Response(Bun.file(join(here, name)), {
    headers: { "content-type": type, "cache-control": "no-cache", "x-content-type-options": "nosniff" },
  });
}

/** `GET /demo`: the live tracking page (see docs/demo.md). */
export function demoModule() {
  return new Elysia({ name: "demo", prefix: "/demo" })
    .get("", () => serve("index.html", "text/html; charset=utf-8"), {
      detail: { summary: "Live tracking page (HTML)", tags: ["demo"] },
    })
    .get(
      "/:file",
      ({ params }) => {
        const type = Object.hasOwn(FILES, params.file) ? FILES[params.file as keyof typeof FILES] : undefined;
        if (!type) throw new NotFound(`no demo file ${params.file}`);
        return serve(params.file, type);
      },
      { params: t.Object({ file: t.String() }), detail: { hide: true } },
    );
}
