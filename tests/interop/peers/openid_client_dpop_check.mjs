// npm openid-client 6 asking for a DPoP-bound token (RFC 9449) with client_credentials, then
// calling an API with it.
//
// Usage: node openid_client_dpop_check.mjs < INPUT.json
// INPUT (on stdin, so the secret never shows in argv / ps):
//   {"issuer": "http://127.0.0.1:PORT", "client_id": "...", "client_secret": "...",
//    "alg": "ES256" | "Ed25519" | "RS256" | "PS256" (optional, default ES256: the proof key),
//    "scope": "read" (optional), "resource": "https://api.example.test/" (optional),
//    "grants": 2 (optional, default 1: grants made with the same DPoP handle),
//    "api_url": "http://127.0.0.1:PORT/whoami" (optional: GET it with the token,
//               client.fetchProtectedResource and the same DPoP handle),
//    "introspect": true (optional: client.tokenIntrospection of the token)}
// Steps: discovery (RFC 8414), randomDPoPKeyPair + getDPoPHandle, clientCredentialsGrant with
// the handle (openid-client retries once by itself when the server asks for a nonce), then the
// optional API call and introspection. Every request goes through a capturing fetch, so the
// answer shows what went over the wire.
// Prints one JSON object on stdout:
//   {"metadata": {...}, "public_jwk": {...the proof key...}, "tokens": [{...}, ...],
//    "token_requests": [{"status", "authorization_scheme", "proof_header", "proof_claims",
//                        "dpop_nonce", "www_authenticate", "body": {...as the server sent it}},
//                       ...],
//    "api": {"status", "body", "request": {"url", "authorization", "dpop"}},
//    "introspection": {...}}
// On failure prints {"error": {"stage", "name", "code", "message", "error",
//   "error_description", "status", "www_authenticate", "challenges", "cause"}} (those it has)
//   and exits 1.
import * as client from 'openid-client';
import { describe, grantParameters, pick, readInput } from './script_io.mjs';

function decodePart(part) {
  return JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
}

let stage = 'input';
try {
  const input = await readInput();

  // Every request and its answer, as sent: the proofs are read back from here.
  const exchanges = [];
  const capturingFetch = async (url, options) => {
    const headers = new Headers(options.headers);
    const response = await fetch(url, options);
    // The body as the server wrote it (openid-client lowercases token_type in its result).
    const body = await response.clone().text();
    exchanges.push({ url: String(url), method: options.method, headers, response, body });
    return response;
  };

  stage = 'discovery';
  const config = await client.discovery(
    new URL(input.issuer),
    input.client_id,
    input.client_secret,
    client.ClientSecretBasic(input.client_secret),
    {
      execute: [client.allowInsecureRequests],
      algorithm: 'oauth2',
      [client.customFetch]: capturingFetch,
    },
  );
  const metadata = config.serverMetadata();
  const result = { metadata };

  stage = 'dpop_key';
  const keyPair = await client.randomDPoPKeyPair(input.alg ?? 'ES256');
  result.public_jwk = await crypto.subtle.exportKey('jwk', keyPair.publicKey);
  const dpop = client.getDPoPHandle(config, keyPair);

  stage = 'client_credentials';
  const parameters = grantParameters(input);
  result.tokens = [];
  for (let i = 0; i < (input.grants ?? 1); i += 1) {
    const token = await client.clientCredentialsGrant(config, parameters, { DPoP: dpop });
    result.tokens.push(pick(token, ['access_token', 'token_type', 'expires_in', 'scope']));
  }
  result.token_requests = exchanges
    .filter((e) => e.url === metadata.token_endpoint)
    .map((e) => {
      const proof = e.headers.get('dpop');
      const [header, claims] = proof ? proof.split('.') : [];
      return {
        status: e.response.status,
        authorization_scheme: (e.headers.get('authorization') ?? '').split(' ')[0],
        proof_header: proof ? decodePart(header) : null,
        proof_claims: proof ? decodePart(claims) : null,
        dpop_nonce: e.response.headers.get('dpop-nonce'),
        www_authenticate: e.response.headers.get('www-authenticate'),
        body: JSON.parse(e.body),
      };
    });
  const accessToken = result.tokens.at(-1).access_token;

  if (input.api_url) {
    stage = 'protected_resource';
    const response = await client.fetchProtectedResource(
      config,
      accessToken,
      new URL(input.api_url),
      'GET',
      undefined,
      undefined,
      { DPoP: dpop },
    );
    const sent = exchanges.findLast((e) => e.url === input.api_url);
    result.api = {
      status: response.status,
      body: await response.json(),
      request: {
        url: sent.url,
        authorization: sent.headers.get('authorization'),
        dpop: sent.headers.get('dpop'),
      },
    };
  }
  if (input.introspect) {
    stage = 'introspection';
    result.introspection = await client.tokenIntrospection(config, accessToken);
  }
  process.stdout.write(JSON.stringify(result) + '\n');
} catch (err) {
  process.stdout.write(JSON.stringify({ error: describe(err, stage) }) + '\n');
  process.exitCode = 1;
}
