// npm openid-client 6 authenticating with a client certificate (RFC 8705 §2: tls_client_auth
// and self_signed_tls_client_auth) for client_credentials, then calling an API with the
// certificate-bound token (RFC 8705 §3) over the same mutual TLS.
//
// Node's global fetch cannot present a client certificate: as openid-client documents, the
// requests go through undici's fetch with an undici Agent holding the certificate, the key
// and the CA the server's certificate is checked against (client.customFetch).
// client.TlsClientAuth() serves both methods: on the wire they are the same (client_id in
// the body, the certificate in the handshake); only the server's check differs.
//
// Usage: node openid_client_mtls_check.mjs < INPUT.json
// INPUT (on stdin):
//   {"issuer": "https://127.0.0.1:PORT", "client_id": "...",
//    "ca_file": "ca.pem" (the CA of the server's certificate),
//    "cert_file": "client.pem", "key_file": "client-key.pem" (optional: without them no
//                                                             certificate is presented),
//    "scope": "read" (optional), "resource": "https://api.example.test/" (optional),
//    "api_url": "https://127.0.0.1:PORT/whoami" (optional: GET it with the token,
//               client.fetchProtectedResource over the same connection settings),
//    "introspect": true (optional: client.tokenIntrospection, authenticated the same way)}
// Prints one JSON object on stdout:
//   {"metadata": {...}, "token": {...}, "token_request": {"authorization", "body": {...}},
//    "token_response": {...as the server sent it}, "api": {"status", "body"},
//    "introspection": {...}}
// On failure prints {"error": {"stage", "name", "code", "message", "error",
//   "error_description", "status", "www_authenticate", "challenges", "cause"}} (those it has)
//   and exits 1.
import fs from 'node:fs';
import * as client from 'openid-client';
import { Agent, fetch as undiciFetch } from 'undici';
import { describe, grantParameters, pick, readInput } from './script_io.mjs';

let stage = 'input';
let agent;
try {
  const input = await readInput();
  const connect = { ca: fs.readFileSync(input.ca_file, 'utf8') };
  if (input.cert_file) {
    connect.cert = fs.readFileSync(input.cert_file, 'utf8');
    connect.key = fs.readFileSync(input.key_file, 'utf8');
  }
  agent = new Agent({ connect });

  // Every request goes through the agent; the token request and answer are kept.
  const exchanges = [];
  const mtlsFetch = async (url, options) => {
    const response = await undiciFetch(url, { ...options, dispatcher: agent });
    const body = await response.clone().text();
    exchanges.push({ url: String(url), headers: new Headers(options.headers), options, body });
    return response;
  };

  stage = 'discovery';
  const config = await client.discovery(
    new URL(input.issuer),
    input.client_id,
    undefined,
    client.TlsClientAuth(),
    { algorithm: 'oauth2', [client.customFetch]: mtlsFetch },
  );
  const metadata = config.serverMetadata();
  const result = { metadata };

  stage = 'client_credentials';
  const parameters = grantParameters(input);
  const token = await client.clientCredentialsGrant(config, parameters);
  result.token = pick(token, ['access_token', 'token_type', 'expires_in', 'scope']);
  const sent = exchanges.find((e) => e.url === metadata.token_endpoint);
  result.token_request = {
    authorization: sent.headers.get('authorization'),
    body: Object.fromEntries(new URLSearchParams(String(sent.options.body))),
  };
  result.token_response = JSON.parse(sent.body);

  if (input.api_url) {
    stage = 'protected_resource';
    const response = await client.fetchProtectedResource(
      config,
      token.access_token,
      new URL(input.api_url),
      'GET',
    );
    result.api = { status: response.status, body: await response.json() };
  }
  if (input.introspect) {
    stage = 'introspection';
    result.introspection = await client.tokenIntrospection(config, token.access_token);
  }
  process.stdout.write(JSON.stringify(result) + '\n');
} catch (err) {
  process.stdout.write(JSON.stringify({ error: describe(err, stage) }) + '\n');
  process.exitCode = 1;
} finally {
  // Keep-alive connections would otherwise hold the process open.
  await agent?.close();
}
