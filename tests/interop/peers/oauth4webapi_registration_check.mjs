// npm oauth4webapi 3, registering itself dynamically (RFC 7591) as MCP clients and other
// tooling do, then asking for a token with what it was given.
//
// Usage: node oauth4webapi_registration_check.mjs < INPUT.json
// INPUT (on stdin, so the initial access token never shows in argv / ps):
//   {"issuer": "http://127.0.0.1:PORT", "initial_access_token": "...",
//    "metadata": {...client metadata...}}
// Steps: discoveryRequest + processDiscoveryResponse (finds registration_endpoint);
// dynamicClientRegistrationRequest + processDynamicClientRegistrationResponse;
// clientCredentialsGrantRequest + processClientCredentialsResponse with the new client
// (client_secret_basic).
// Prints {"client": {client_id, scope, grant_types, token_endpoint_auth_method,
//   registration_client_uri, has_secret, has_registration_token}, "token": {...}};
// on failure {"error": {...}} (see script_io.mjs) and exits 1.
import * as oauth from 'oauth4webapi';
import { describe, pick, readInput } from './script_io.mjs';

const insecure = { [oauth.allowInsecureRequests]: true };

let stage = 'input';
try {
  const input = await readInput();
  const issuer = new URL(input.issuer);

  stage = 'discovery';
  const discovered = await oauth.discoveryRequest(issuer, { algorithm: 'oauth2', ...insecure });
  const as = await oauth.processDiscoveryResponse(issuer, discovered);

  stage = 'registration';
  const registered = await oauth.dynamicClientRegistrationRequest(as, input.metadata, {
    initialAccessToken: input.initial_access_token,
    ...insecure,
  });
  const client = await oauth.processDynamicClientRegistrationResponse(registered);

  stage = 'client_credentials';
  const clientInfo = { client_id: client.client_id };
  const response = await oauth.clientCredentialsGrantRequest(
    as,
    clientInfo,
    oauth.ClientSecretBasic(client.client_secret),
    new URLSearchParams(),
    insecure,
  );
  const token = await oauth.processClientCredentialsResponse(as, clientInfo, response);

  const out = pick(client, [
    'client_id', 'scope', 'grant_types', 'token_endpoint_auth_method', 'registration_client_uri',
  ]);
  out.has_secret = typeof client.client_secret === 'string';
  out.has_registration_token = typeof client.registration_access_token === 'string';
  console.log(JSON.stringify({ client: out, token: pick(token, ['token_type', 'scope']) }));
} catch (err) {
  console.log(JSON.stringify({ error: describe(err, stage) }));
  process.exit(1);
}
