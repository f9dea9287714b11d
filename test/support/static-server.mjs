// A static file server for the browser test: `node static-server.mjs DIR PORT` serves DIR on 127.0.0.1:PORT
// (index.html for "/") and prints "listening" once it accepts connections.
import { readFile } from "node:fs";
import { createServer } from "node:http";
import { extname, join } from "node:path";

const [dir, port] = process.argv.slice(2);
const types = { ".html": "text/html", ".js": "text/javascript", ".webmanifest": "application/manifest+json", ".svg": "image/svg+xml" };
createServer((req, res) => {
  const path = new URL(req.url ?? "/", "http://localhost").pathname;
  const file = join(dir, path.endsWith("/") ? `${path}index.html` : path);
  readFile(file, (err, body) => {
    if (err) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "content-type": types[extname(file)] ?? "application/octet-stream" }).end(body);
  });
}).listen(Number(port), "127.0.0.1", () => console.log("listening"));
