// npm openid-client 6, a real third-party OAuth client, run against an authorization server.
//
// Usage: node openid_client_check.mjs < INPUT.json
// INPUT (on stdin, so the secret never shows in argv / ps):
//   {"issuer": "http://127.0.0.1:PORT", "client_id": "...", "client_secret": "...",
//    "auth_method": "client_secret_basic" | "client_secret_post",
//    "algorithm": "oauth2" | "oidc" (optional, default "oauth2": which well-known document),
//    "scope": "read" (optional), "resource": "https://api.example.test/" (optional),
//    "introspect": true (optional), "revoke": true (optional)}
// Steps: discovery (RFC 8414 / OpenID Connect Discovery metadata), clientCredentialsGrant, then
// optionally tokenIntrospection, tokenRevocation and tokenIntrospection again.
// Prints one JSON object on stdout:
//   {"metadata": {...}, "token": {...}, "introspection": {...}, "revoked": true,
//    "introspection_after_revocation": {...}}
// On failure prints {"error": {"stage", "name", "code", "message", "error",
//   "error_description", "status", "www_authenticate", "challenges", "cause"}} and exits 1.
import * as client from 'openid-client';
import { describe, grantParameters, pick, readInput } from './script_io.mjs';

let stage = 'input';
try {
  const input = await readInput();
  const auth =
    input.auth_method === 'client_secret_post'
      ? client.ClientSecretPost(input.client_secret)
      : client.ClientSecretBasic(input.client_secret);

  stage = 'discovery';
  const config = await client.discovery(
    new URL(input.issuer),
    input.client_id,
    input.client_secret,
    auth,
    { execute: [client.allowInsecureRequests], algorithm: input.algorithm ?? 'oauth2' },
  );
  const result = { metadata: config.serverMetadata() };

  stage = 'client_credentials';
  const parameters = grantParameters(input);
  const token = await client.clientCredentialsGrant(config, parameters);
  result.token = pick(token, ['access_token', 'token_type', 'expires_in', 'scope']);

  if (input.introspect || input.revoke) {
    stage = 'introspection';
    result.introspection = await client.tokenIntrospection(config, token.access_token);
  }
  if (input.revoke) {
    stage = 'revocation';
    await client.tokenRevocation(config, token.access_token);
    result.revoked = true;
    stage = 'introspection_after_revocation';
    result.introspection_after_revocation = await client.tokenIntrospection(
      config,
      token.access_token,
    );
  }
  process.stdout.write(JSON.stringify(result) + '\n');
} catch (err) {
  process.stdout.write(JSON.stringify({ error: describe(err, stage) }) + '\n');
  process.exitCode = 1;
}
