// An HTTPS server that requests a client certificate and never verifies it
// (requestCert: true, rejectUnauthorized: false): the misconfiguration `client audit` must
// flag. tests/client/audit.rs runs it; by hand:
//   node requests_but_does_not_verify.js server.crt server.key ca.crt --addr 127.0.0.1:0
// It prints "listening on https://HOST:PORT" once it accepts connections.
"use strict";
const fs = require("fs");
const https = require("https");

const args = process.argv.slice(2);
const [cert, key, ca] = args;
const at = args.indexOf("--addr");
const [host, port] = (at >= 0 ? args[at + 1] : "127.0.0.1:0").split(":");

const server = https.createServer(
  {
    cert: fs.readFileSync(cert),
    key: fs.readFileSync(key),
    ca: fs.readFileSync(ca),
    requestCert: true,
    rejectUnauthorized: false,
  },
  (req, res) => {
    const how = req.socket.authorized
      ? "verified"
      : `unverified (${req.socket.authorizationError})`;
    res.writeHead(200, { "content-type": "text/plain" });
    res.end(`hello, ${how} client\n`);
  },
);
server.listen(Number(port), host, () => {
  const addr = server.address();
  console.log(`listening on https://${addr.address}:${addr.port}`);
});
