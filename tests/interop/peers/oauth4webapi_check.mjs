// npm oauth4webapi 3, a real third-party OAuth client and resource-server library, run
// against an authorization server.
//
// Usage: node oauth4webapi_check.mjs < INPUT.json
// INPUT (on stdin, so the secret never shows in argv / ps):
//   {"issuer": "http://127.0.0.1:PORT", "client_id": "...", "client_secret": "...",
//    "auth_method": "client_secret_basic" | "client_secret_post",
//    "algorithm": "oauth2" | "oidc" (optional, default "oauth2": which well-known document),
//    "scope": "read" (optional), "resource": "https://api.example.test/" (optional),
//    "expected_audience": "https://api.example.test/" (optional: validate the token),
//    "token": "eyJ..." (optional: validate this token instead of requesting one)}
// Steps: discoveryRequest + processDiscoveryResponse (RFC 8414 / OpenID Connect Discovery);
// clientCredentialsGrantRequest + processClientCredentialsResponse (unless "token" is given);
// with "expected_audience", validateJwtAccessToken on a Request carrying
// "Authorization: Bearer <token>": it fetches the JWKS and checks RFC 9068 (typ at+jwt,
// iss, aud, exp, iat, sub, jti, client_id, signature).
// Prints one JSON object on stdout: {"metadata": {...}, "token": {...}, "claims": {...}}.
// On failure prints {"error": {"stage", "name", "code", "message", "error",
//   "error_description", "status", "www_authenticate", "challenges", "cause"}} and exits 1.
import * as oauth from 'oauth4webapi';
import { describe, pick, readInput } from './script_io.mjs';

const insecure = { [oauth.allowInsecureRequests]: true };

let stage = 'input';
try {
  const input = await readInput();
  const issuer = new URL(input.issuer);

  stage = 'discovery';
  const discovered = await oauth.discoveryRequest(issuer, {
    algorithm: input.algorithm ?? 'oauth2',
    ...insecure,
  });
  const as = await oauth.processDiscoveryResponse(issuer, discovered);
  const result = { metadata: as };

  let accessToken = input.token;
  if (!accessToken) {
    stage = 'client_credentials';
    const clientInfo = { client_id: input.client_id };
    const auth =
      input.auth_method === 'client_secret_post'
        ? oauth.ClientSecretPost(input.client_secret)
        : oauth.ClientSecretBasic(input.client_secret);
    const parameters = new URLSearchParams();
    if (input.scope) parameters.set('scope', input.scope);
    if (input.resource) parameters.set('resource', input.resource);
    const response = await oauth.clientCredentialsGrantRequest(
      as,
      clientInfo,
      auth,
      parameters,
      insecure,
    );
    const token = await oauth.processClientCredentialsResponse(as, clientInfo, response);
    result.token = pick(token, ['access_token', 'token_type', 'expires_in', 'scope']);
    accessToken = token.access_token;
  }

  if (input.expected_audience) {
    stage = 'validate_jwt_access_token';
    const request = new Request('https://resource.example.test/', {
      headers: { authorization: `Bearer ${accessToken}` },
    });
    result.claims = await oauth.validateJwtAccessToken(
      as,
      request,
      input.expected_audience,
      insecure,
    );
  }
  process.stdout.write(JSON.stringify(result) + '\n');
} catch (err) {
  process.stdout.write(JSON.stringify({ error: describe(err, stage) }) + '\n');
  process.exitCode = 1;
}
