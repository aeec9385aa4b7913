// Live tracking page: plain browser JavaScript, no build step. Talks to the same REST API and
// /ws endpoint as any client (API.md). Everything the server sends is rendered with
// textContent / attributes, never as HTML.

const SVG = "http://www.w3.org/2000/svg";
const FINAL = new Set(["delivered", "cancelled", "rejected"]);
const MAX_ORDER_TOPICS = 80; // the server allows 100 subscriptions per connection by default
const REFRESH_MS = 3_000; // picks up orders of restaurants not followed yet

const $ = (sel) => document.querySelector(sel);
const state = {
  token: sessionStorage.getItem("dispatch.token") || "",
  me: null,
  orders: new Map(), // id → order
  restaurants: new Map(), // id → restaurant (or a pending promise)
  couriers: new Map(), // courierId → { lat, lng, at, orderId }
  subscribed: new Set(),
  live: new Set(), // order ids whose topic the server acknowledged on this connection
  watching: "all",
  ws: null,
  retryMs: 500,
  refreshTimer: null,
  stopped: true,
};

// ---------- HTTP ----------

async function api(method, path, body) {
  const headers = {};
  if (state.token) headers.authorization = `Bearer ${state.token}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  const data = text ? JSON.parse(text) : null;
  if (!res.ok) throw new Error(data?.detail || `${res.status} ${res.statusText}`);
  return data;
}

async function loadOrders() {
  const pages = state.me.role === "admin" ? 3 : 2;
  let cursor = null;
  for (let i = 0; i < pages; i++) {
    const page = await api("GET", `/orders?limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
    for (const order of page.items) upsertOrder(order);
    cursor = page.nextCursor;
    if (!cursor) break;
  }
}

function restaurantOf(id) {
  if (!state.restaurants.has(id)) {
    state.restaurants.set(id, null); // asked once
    api("GET", `/restaurants/${encodeURIComponent(id)}`)
      .then((r) => {
        state.restaurants.set(id, r);
        followRestaurant(id);
        render();
      })
      .catch(() => state.restaurants.delete(id));
  }
  return state.restaurants.get(id);
}

// ---------- WebSocket ----------

function setConn(text, cls) {
  const el = $("#conn");
  el.textContent = text;
  el.className = `pill ${cls}`;
}

function connect() {
  if (state.stopped) return;
  setConn("connecting", "connecting");
  const proto = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${proto}://${location.host}/ws?token=${encodeURIComponent(state.token)}`);
  state.ws = ws;
  state.subscribed.clear();
  state.live.clear();
  ws.onopen = () => {
    state.retryMs = 500;
    setConn("live", "live");
    subscribeAll();
  };
  ws.onmessage = (e) => onFrame(JSON.parse(e.data));
  ws.onclose = () => {
    if (state.ws !== ws) return;
    setConn("offline", "off");
    if (state.stopped) return;
    setTimeout(connect, state.retryMs);
    state.retryMs = Math.min(state.retryMs * 2, 8_000);
  };
}

function send(msg) {
  if (state.ws && state.ws.readyState === WebSocket.OPEN) state.ws.send(JSON.stringify(msg));
}

/** Once per topic and connection; before the socket opens, subscribeAll() on open does it. */
function subscribe(topic, since) {
  if (state.subscribed.has(topic) || !state.ws || state.ws.readyState !== WebSocket.OPEN) return;
  state.subscribed.add(topic);
  send(since === undefined ? { op: "subscribe", topic } : { op: "subscribe", topic, since });
}

/** Order topics for the newest non-final orders (and the watched one), resuming from what we hold. */
function subscribeAll() {
  const me = state.me;
  if (me.role === "courier") subscribe(`courier:${me.id}`);
  for (const id of state.restaurants.keys()) followRestaurant(id);
  const wanted = [...state.orders.values()]
    .filter((o) => !FINAL.has(o.status) || o.id === state.watching)
    .sort((a, b) => b.createdAt.localeCompare(a.createdAt))
    .slice(0, MAX_ORDER_TOPICS);
  for (const order of wanted) subscribe(`order:${order.id}`, order.version);
}

/** Restaurant topics bring new orders (their owner and admins may follow them). */
function followRestaurant(id) {
  const me = state.me;
  const r = state.restaurants.get(id);
  if (me.role === "admin" || (me.role === "restaurant" && r && r.ownerId === me.id)) subscribe(`restaurant:${id}`);
}

function onFrame(f) {
  switch (f.type) {
    case "order.created":
      if (!state.orders.has(f.orderId)) timeline(f.order, "created", `placed · ${money(f.order.totalCents)}`, f.order.createdAt);
      upsertOrder(f.order);
      subscribe(`order:${f.orderId}`, f.order.version);
      render();
      break;
    case "order.updated": {
      const known = state.orders.get(f.orderId);
      if (known && known.version >= f.seq) return; // already have it (resume overlap)
      upsertOrder(f.order);
      const what = f.prevStatus === f.status ? `${f.event.toLowerCase().replaceAll("_", " ")} (${label(f.status)})` : `${f.prevStatus ?? "—"} → ${f.status}`;
      timeline(f.order, FINAL.has(f.status) ? "final" : "updated", `${what} · ${f.by.role}`, f.at);
      if (FINAL.has(f.status)) for (const [id, c] of state.couriers) if (c.orderId === f.orderId) state.couriers.delete(id);
      render(f.orderId);
      break;
    }
    case "courier.location":
      state.couriers.set(f.courierId, { lat: f.lat, lng: f.lng, at: f.at, orderId: f.orderId });
      drawCouriers();
      break;
    case "subscribed":
      // The order row shows that its live feed is on.
      if (f.topic.startsWith("order:")) {
        state.live.add(f.topic.slice(6));
        renderList();
      }
      break;
    case "error":
      if (f.topic) state.subscribed.delete(f.topic);
      break;
  }
}

// ---------- model ----------

function upsertOrder(order) {
  const known = state.orders.get(order.id);
  if (!known || known.version <= order.version) state.orders.set(order.id, order);
  restaurantOf(order.restaurantId);
}

function visibleOrders() {
  const all = [...state.orders.values()].sort((a, b) => b.createdAt.localeCompare(a.createdAt));
  return state.watching === "all" ? all : all.filter((o) => o.id === state.watching);
}

// ---------- rendering ----------

const short = (id) => id.slice(-6);
const money = (cents) => `${(cents / 100).toFixed(2)}`;
const label = (status) => status.replaceAll("_", " ");
const clock = (iso) => new Date(iso).toLocaleTimeString([], { hour12: false });

function render(flashId) {
  renderList(flashId);
  renderPicker();
  drawMap();
}

function renderList(flashId) {
  const ul = $("#orders");
  const rows = visibleOrders();
  const seen = new Set();
  for (const order of rows) {
    seen.add(order.id);
    let li = ul.querySelector(`li[data-order-id="${CSS.escape(order.id)}"]`);
    if (!li) {
      li = document.createElement("li");
      li.dataset.orderId = order.id;
      li.innerHTML = '<span class="id"></span><span class="badge"></span><span class="sub"></span>';
      li.onclick = () => watch(state.watching === order.id ? "all" : order.id);
      ul.append(li);
    }
    const r = state.restaurants.get(order.restaurantId);
    li.querySelector(".id").textContent = `#${short(order.id)}`;
    const badge = li.querySelector(".badge");
    if (badge.dataset.status !== order.status) {
      badge.dataset.status = order.status;
      badge.textContent = label(order.status);
      if (order.id === flashId) {
        badge.classList.add("flash");
        setTimeout(() => badge.classList.remove("flash"), 800);
      }
    }
    li.querySelector(".sub").textContent = `${r ? r.name : "…"} · ${money(order.totalCents)} · v${order.version}`;
    li.classList.toggle("selected", state.watching === order.id);
    li.dataset.live = String(state.live.has(order.id));
  }
  for (const li of [...ul.children]) if (!seen.has(li.dataset.orderId)) li.remove();
  // Newest first.
  for (const order of rows) ul.append(ul.querySelector(`li[data-order-id="${CSS.escape(order.id)}"]`));
}

function renderPicker() {
  const select = $("#pick");
  const ids = [...state.orders.values()].sort((a, b) => b.createdAt.localeCompare(a.createdAt)).map((o) => o.id);
  const current = [...select.options].slice(1).map((o) => o.value);
  if (current.join() !== ids.join()) {
    while (select.options.length > 1) select.remove(1);
    for (const id of ids) select.add(new Option(`order #${short(id)}`, id));
  }
  select.value = state.watching;
}

function watch(id) {
  state.watching = id;
  if (id !== "all") {
    const order = state.orders.get(id);
    if (order) subscribe(`order:${id}`, order.version);
  }
  render();
}

function timeline(order, kind, text, at) {
  const ol = $("#timeline");
  const li = document.createElement("li");
  li.className = kind;
  li.dataset.orderId = order.id;
  const t = document.createElement("span");
  t.className = "t";
  t.textContent = `${clock(at)} #${short(order.id)} `;
  li.append(t, document.createTextNode(text));
  ol.prepend(li);
  while (ol.children.length > 200) ol.lastChild.remove();
}

// ---------- map (local coordinates, meters from the centre of what is shown) ----------

let frame = null; // { lat0, lng0, scale, ox, oy } from the last fit

function project(p) {
  const x = (p.lng - frame.lng0) * 111_320 * Math.cos((frame.lat0 * Math.PI) / 180);
  const y = -(p.lat - frame.lat0) * 111_320;
  return [frame.ox + x * frame.scale, frame.oy + y * frame.scale];
}

function fit(points) {
  if (!points.length) points = [{ lat: 0, lng: 0 }];
  const lats = points.map((p) => p.lat);
  const lngs = points.map((p) => p.lng);
  const lat0 = (Math.min(...lats) + Math.max(...lats)) / 2;
  const lng0 = (Math.min(...lngs) + Math.max(...lngs)) / 2;
  const k = 111_320 * Math.cos((lat0 * Math.PI) / 180);
  const w = Math.max(400, (Math.max(...lngs) - Math.min(...lngs)) * k);
  const h = Math.max(300, (Math.max(...lats) - Math.min(...lats)) * 111_320);
  const scale = Math.min(900 / w, 600 / h);
  frame = { lat0, lng0, scale, ox: 500, oy: 350 };
}

function el(name, attrs, text) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

function drawMap() {
  const orders = visibleOrders();
  const pts = [];
  for (const o of orders) {
    pts.push(o.deliveryLocation);
    const r = state.restaurants.get(o.restaurantId);
    if (r) pts.push(r.location);
    if (r?.deliveryArea) for (const rings of areaPolygons(r.deliveryArea)) for (const [lng, lat] of rings[0]) pts.push({ lat, lng });
  }
  for (const c of state.couriers.values()) if (state.watching === "all" || c.orderId === state.watching) pts.push(c);
  fit(pts);

  const grid = $("#grid");
  grid.replaceChildren();
  const step = 500 * frame.scale; // a line every 500 m
  if (step > 8) {
    for (let x = frame.ox % step; x < 1000; x += step) grid.append(el("line", { x1: x, y1: 0, x2: x, y2: 700 }));
    for (let y = frame.oy % step; y < 700; y += step) grid.append(el("line", { x1: 0, y1: y, x2: 1000, y2: y }));
  }
  const scale = $("#scale");
  scale.replaceChildren(el("line", { x1: 20, y1: 680, x2: 20 + 1000 * frame.scale, y2: 680 }), el("text", { x: 20, y: 670 }, "1 km"));

  const routes = $("#routes");
  const points = $("#points");
  routes.replaceChildren();
  points.replaceChildren();
  const drawn = new Set();
  for (const o of orders) {
    const r = state.restaurants.get(o.restaurantId);
    const [cx, cy] = project(o.deliveryLocation);
    if (r) {
      const [rx, ry] = project(r.location);
      routes.append(el("line", { x1: rx, y1: ry, x2: cx, y2: cy, class: FINAL.has(o.status) ? "" : "active" }));
      if (!drawn.has(r.id)) {
        drawn.add(r.id);
        // The delivery area under everything else (GeoJSON rings, [lng, lat] positions).
        if (r.deliveryArea) {
          const d = areaPolygons(r.deliveryArea)
            .flatMap((rings) => rings.map((ring) => "M" + ring.map(([lng, lat]) => project({ lat, lng }).map((n) => n.toFixed(1)).join(",")).join("L") + "Z"))
            .join("");
          routes.prepend(el("path", { d, class: "area", "fill-rule": "evenodd", "data-area-of": r.id }));
        }
        points.append(el("rect", { x: rx - 7, y: ry - 7, width: 14, height: 14, rx: 3, class: "restaurant", "data-restaurant-id": r.id }));
        points.append(el("text", { x: rx + 10, y: ry - 8 }, r.name));
      }
    }
    points.append(el("circle", { cx, cy, r: 6, class: "customer", "data-customer-of": o.id }));
    points.append(el("text", { x: cx + 9, y: cy + 4 }, `#${short(o.id)} ${label(o.status)}`));
  }
  drawCouriers();
  drawStreets(orders, pts);
}

const areaPolygons = (area) => (area.type === "Polygon" ? [area.coordinates] : area.coordinates);

function drawCouriers() {
  if (!frame) return;
  const layer = $("#couriers");
  const keep = new Set();
  for (const [id, c] of state.couriers) {
    if (state.watching !== "all" && c.orderId !== state.watching) continue;
    keep.add(id);
    const [x, y] = project(c);
    let dot = layer.querySelector(`circle[data-courier-id="${CSS.escape(id)}"]`);
    let name = layer.querySelector(`text[data-courier-id="${CSS.escape(id)}"]`);
    if (!dot) {
      dot = el("circle", { r: 8, class: "courier", "data-courier-id": id });
      name = el("text", { "data-courier-id": id }, `courier ${short(id)}`);
      layer.append(dot, name);
    }
    dot.setAttribute("cx", x);
    dot.setAttribute("cy", y);
    dot.dataset.lat = c.lat;
    dot.dataset.lng = c.lng;
    name.setAttribute("x", x + 11);
    name.setAttribute("y", y - 9);
  }
  for (const node of [...layer.children]) if (!keep.has(node.dataset.courierId)) node.remove();
  drawStreetCouriers(keep);
}

// ---------- street map (Leaflet, served by the server from the npm package) ----------
// Shown only when the server says MAP_TILE_URL's tiles load; otherwise the grid above stays, and
// the browser never requests a tile (a failed one would be an error in its console).

const streets = { map: null, groups: null, couriers: new Map(), fitted: "" };

function setMapMode(mode, text) {
  const badge = $("#map-mode");
  badge.dataset.mode = mode;
  badge.textContent = text;
}

async function setupStreetMap() {
  if (streets.map || typeof L === "undefined") return;
  let settings;
  try {
    const res = await fetch("/demo/map.json");
    settings = await res.json();
  } catch {
    settings = null;
  }
  if (!settings || settings.tiles !== "online") {
    setMapMode("grid", "grid (map tiles unavailable)");
    return;
  }
  const host = $("#streets");
  host.hidden = false;
  $("#map").toggleAttribute("hidden", true); // an SVG element: no `hidden` property
  const map = L.map(host, { zoomControl: true, attributionControl: true }).setView([48.8566, 2.3522], 13);
  const tiles = L.tileLayer(settings.tileUrl, { attribution: settings.attribution, maxZoom: 19, subdomains: "abc" });
  let loaded = false;
  tiles.on("tileload", () => {
    loaded = true;
    setMapMode("streets", "street map");
  });
  // Reachable from the server but not from this browser: back to the grid.
  tiles.on("tileerror", () => {
    if (!loaded) leaveStreetMap();
  });
  tiles.addTo(map);
  streets.map = map;
  streets.groups = { areas: L.layerGroup().addTo(map), routes: L.layerGroup().addTo(map), points: L.layerGroup().addTo(map), couriers: L.layerGroup().addTo(map) };
  setMapMode("loading", "street map (loading tiles)");
  drawMap();
}

function leaveStreetMap() {
  streets.map?.remove();
  streets.map = null;
  streets.couriers.clear();
  streets.fitted = "";
  $("#streets").hidden = true;
  $("#map").toggleAttribute("hidden", false);
  setMapMode("grid", "grid (map tiles unavailable)");
}

/** Sets data attributes on a vector layer's SVG element (tests and styling find markers by them). */
function tag(layer, attrs) {
  const node = layer.getElement?.();
  if (node) for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  return layer;
}

const css = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();

function drawStreets(orders, pts) {
  if (!streets.map) return;
  const { areas, routes, points } = streets.groups;
  areas.clearLayers();
  routes.clearLayers();
  points.clearLayers();
  const drawn = new Set();
  for (const o of orders) {
    const r = state.restaurants.get(o.restaurantId);
    const to = [o.deliveryLocation.lat, o.deliveryLocation.lng];
    if (r) {
      const from = [r.location.lat, r.location.lng];
      L.polyline([from, to], { color: FINAL.has(o.status) ? "#3d4b5c" : "#58a6ff", weight: 2, dashArray: "6 6" }).addTo(routes);
      if (!drawn.has(r.id)) {
        drawn.add(r.id);
        if (r.deliveryArea) {
          L.geoJSON(r.deliveryArea, { style: { color: css("--restaurant"), weight: 1.5, dashArray: "5 4", fillOpacity: 0.12 } })
            .eachLayer((layer) => layer.once("add", () => tag(layer, { "data-area-of": r.id })))
            .addTo(areas);
        }
        const marker = L.circleMarker(from, { radius: 8, color: "#0b1016", weight: 2, fillColor: css("--restaurant"), fillOpacity: 1 }).addTo(points);
        tag(marker, { "data-restaurant-id": r.id }).bindTooltip(r.name, { permanent: true, direction: "right", className: "marker-label" });
      }
    }
    const customer = L.circleMarker(to, { radius: 6, color: "#0b1016", weight: 2, fillColor: css("--customer"), fillOpacity: 1 }).addTo(points);
    tag(customer, { "data-customer-of": o.id }).bindTooltip(`#${short(o.id)} ${label(o.status)}`, { direction: "right", className: "marker-label" });
  }
  // Refit when what is shown changes (an order, a restaurant loaded, a courier appearing), not on every move.
  const key = `${state.watching}|${orders.map((o) => o.id).join()}|${pts.length}`;
  if (key !== streets.fitted && pts.length > 0) {
    streets.fitted = key;
    streets.map.fitBounds(L.latLngBounds(pts.map((p) => [p.lat, p.lng])), { padding: [40, 40], maxZoom: 16, animate: false });
  }
}

function drawStreetCouriers(keep) {
  if (!streets.map) return;
  for (const [id, c] of state.couriers) {
    if (!keep.has(id)) continue;
    let marker = streets.couriers.get(id);
    if (!marker) {
      marker = L.circleMarker([c.lat, c.lng], { radius: 8, color: "#0b1016", weight: 2, fillColor: css("--courier"), fillOpacity: 1 }).addTo(streets.groups.couriers);
      marker.bindTooltip(`courier ${short(id)}`, { permanent: true, direction: "top", className: "marker-label" });
      streets.couriers.set(id, marker);
    } else {
      marker.setLatLng([c.lat, c.lng]);
    }
    tag(marker, { "data-courier-id": id, "data-lat": c.lat, "data-lng": c.lng });
  }
  for (const [id, marker] of streets.couriers) {
    if (keep.has(id)) continue;
    marker.remove();
    streets.couriers.delete(id);
  }
}

// ---------- session ----------

async function start(token) {
  state.token = token;
  state.me = await api("GET", "/auth/me");
  sessionStorage.setItem("dispatch.token", token);
  $("#who").textContent = `${state.me.name} (${state.me.role})`;
  $("#login").hidden = true;
  $("#app").hidden = false;
  state.stopped = false;
  await setupStreetMap();
  await loadOrders();
  const wanted = new URLSearchParams(location.search).get("order");
  if (wanted && state.orders.has(wanted)) state.watching = wanted;
  render();
  connect();
  // New orders of restaurants not followed yet (and anything missed) arrive with the list.
  state.refreshTimer = setInterval(() => loadOrders().then(() => {
    subscribeAll();
    render();
  }).catch(() => {}), REFRESH_MS);
}

function stop() {
  state.stopped = true;
  clearInterval(state.refreshTimer);
  state.ws?.close();
  sessionStorage.removeItem("dispatch.token");
  location.reload();
}

$("#login-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const form = new FormData(e.target);
  try {
    const res = await fetch("/auth/login", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ email: form.get("email"), password: form.get("password") }),
    });
    const body = await res.json();
    if (!res.ok) throw new Error(body.detail || "sign-in failed");
    await start(body.token);
  } catch (err) {
    $("#login-error").textContent = err.message;
  }
});

$("#token-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  try {
    await start(String(new FormData(e.target).get("token")).trim());
  } catch (err) {
    $("#login-error").textContent = `token refused: ${err.message}`;
  }
});

$("#pick").addEventListener("change", (e) => watch(e.target.value));
$("#logout").addEventListener("click", stop);

if (state.token) start(state.token).catch(() => sessionStorage.removeItem("dispatch.token"));
