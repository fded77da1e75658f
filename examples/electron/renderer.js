// Renderer: no Node, only the API the preload exposed.
import { connectRenderer } from "./node_modules/@dbbridge/client/dist/src/electron.js";

const db = connectRenderer(window.dbbridge);
const out = document.getElementById("out");
const health = await db.call("health.ping", {});
out.textContent = `dbbridge ${health.version} (pid ${health.pid})`;
