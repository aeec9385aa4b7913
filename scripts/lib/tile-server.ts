import { deflateSync } from "node:zlib";

/**
 * A map tile server on a free loopback port, for the /demo page's test and screenshot where no
 * real tile server can be reached: every /{z}/{x}/{y}.png is a 256×256 PNG in OpenStreetMap's
 * land colour with a faint border, so loaded tiles are visible as a grid of squares.
 */
export type TileServer = { url: string; template: string; requests: () => number; stop(): Promise<void> };

function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  out.set(new TextEncoder().encode(type), 4);
  out.set(data, 8);
  view.setUint32(8 + data.length, Bun.hash.crc32(out.subarray(4, 8 + data.length)));
  return out;
}

/** An RGB PNG of one colour with a one-pixel border of another. */
export function tilePng(size = 256, fill: [number, number, number] = [242, 239, 233], border: [number, number, number] = [214, 208, 196]): Uint8Array {
  const raw = new Uint8Array(size * (1 + size * 3));
  for (let y = 0; y < size; y++) {
    const row = y * (1 + size * 3); // filter byte 0 (none) starts each row
    for (let x = 0; x < size; x++) {
      const c = x === 0 || y === 0 ? border : fill;
      raw.set(c, row + 1 + x * 3);
    }
  }
  const header = new Uint8Array(13);
  const h = new DataView(header.buffer);
  h.setUint32(0, size);
  h.setUint32(4, size);
  header.set([8, 2, 0, 0, 0], 8); // 8-bit RGB, deflate, no filter method, no interlace
  const signature = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  const parts = [signature, chunk("IHDR", header), chunk("IDAT", deflateSync(raw)), chunk("IEND", new Uint8Array())];
  const png = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    png.set(p, at);
    at += p.length;
  }
  return png;
}

export function startTileServer(): TileServer {
  const png = tilePng();
  let count = 0;
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch(req) {
      if (!/^\/\d+\/\d+\/\d+\.png$/.test(new URL(req.url).pathname)) return new Response("not found", { status: 404 });
      count++;
      return new Response(png, { headers: { "content-type": "image/png", "access-control-allow-origin": "*" } });
    },
  });
  const url = `http://127.0.0.1:${server.port}`;
  return { url, template: `${url}/{z}/{x}/{y}.png`, requests: () => count, stop: () => server.stop(true) };
}
