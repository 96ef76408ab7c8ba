// npm openid-client 6: RFC 8693 token exchange through its generic grant request, as a
// JavaScript service calling onward on behalf of the caller that called it.
//
// Usage: node openid_client_token_exchange_check.mjs < INPUT.json
// INPUT: {"issuer": "http://127.0.0.1:PORT", "client_id": "...", "client_secret": "...",
//         "subject_token": "...", "audience": "https://..." (optional),
//         "scope": "read" (optional), "actor_token": "..." (optional)}
// Steps: discovery (RFC 8414), genericGrantRequest with the token-exchange grant.
// Prints {"token": {access_token, issued_token_type, token_type, expires_in, scope}};
// on failure {"error": {...}} (see script_io.mjs) and exits 1.
import * as client from 'openid-client';
import { describe, pick, readInput } from './script_io.mjs';

const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN = 'urn:ietf:params:oauth:token-type:access_token';

let stage = 'input';
try {
  const input = await readInput();
  stage = 'discovery';
  const config = await client.discovery(
    new URL(input.issuer),
    input.client_id,
    input.client_secret,
    client.ClientSecretBasic(input.client_secret),
    { execute: [client.allowInsecureRequests], algorithm: 'oauth2' },
  );
  const parameters = {
    subject_token: input.subject_token,
    subject_token_type: ACCESS_TOKEN,
    requested_token_type: ACCESS_TOKEN,
  };
  if (input.audience) parameters.audience = input.audience;
  if (input.scope) parameters.scope = input.scope;
  if (input.actor_token) {
    parameters.actor_token = input.actor_token;
    parameters.actor_token_type = ACCESS_TOKEN;
  }
  stage = 'token_exchange';
  const token = await client.genericGrantRequest(config, TOKEN_EXCHANGE, parameters);
  const result = {
    metadata: config.serverMetadata(),
    token: pick(token, ['access_token', 'issued_token_type', 'token_type', 'expires_in', 'scope']),
  };
  process.stdout.write(JSON.stringify(result) + '\n');
} catch (err) {
  process.stdout.write(JSON.stringify({ error: describe(err, stage) }) + '\n');
  process.exitCode = 1;
}
