// npm openid-client 6 authenticating with keys (RFC 7523) against an authorization server:
// client.PrivateKeyJwt (private_key_jwt) or client.ClientSecretJwt (client_secret_jwt).
//
// Usage: node openid_client_key_auth_check.mjs < INPUT.json
// INPUT (on stdin, so keys and secrets never show in argv / ps):
//   {"issuer": "http://127.0.0.1:PORT", "client_id": "...",
//    "auth_method": "private_key_jwt" | "client_secret_jwt",
//    "private_jwk": {...} (private_key_jwt: the private JWK, with its kid),
//    "alg": "RS256" | "PS256" (optional, RSA keys only; default RS256),
//    "client_secret": "..." (client_secret_jwt),
//    "scope": "read" (optional), "resource": "https://api.example.test/" (optional),
//    "revoke": true (optional: introspect, revoke, introspect again),
//    "replay": true (optional: send the captured token request again, assertion and all)}
// Prints one JSON object on stdout:
//   {"metadata": {...}, "token": {...}, "assertion_header": {...}, "assertion_claims": {...},
//    "introspection": {...}, "revoked": true, "introspection_after_revocation": {...},
//    "replay": {"status": 400, "body": {...}}}
// On failure prints {"error": {"stage", "name", "code", "message", "error",
//   "error_description", "status", "www_authenticate", "challenges", "cause"}} (those it has)
//   and exits 1.
import * as client from 'openid-client';
import { describe, grantParameters, pick, readInput } from './script_io.mjs';

// The WebCrypto algorithm to import a private JWK with (the JWS alg follows from the key).
function importAlgorithm(jwk, alg) {
  if (jwk.kty === 'EC') return { name: 'ECDSA', namedCurve: jwk.crv };
  if (jwk.kty === 'OKP') return { name: jwk.crv };
  if (jwk.kty === 'RSA') {
    const hash = `SHA-${(alg ?? 'RS256').slice(2)}`;
    return (alg ?? 'RS256').startsWith('PS')
      ? { name: 'RSA-PSS', hash }
      : { name: 'RSASSA-PKCS1-v1_5', hash };
  }
  throw new Error(`unsupported kty ${jwk.kty}`);
}

function decodePart(part) {
  return JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
}

let stage = 'input';
try {
  const input = await readInput();
  let auth;
  if (input.auth_method === 'client_secret_jwt') {
    auth = client.ClientSecretJwt(input.client_secret);
  } else {
    const { kid, alg: _alg, use: _use, key_ops: _ops, ...material } = input.private_jwk;
    const key = await crypto.subtle.importKey(
      'jwk',
      material,
      importAlgorithm(material, input.alg),
      false,
      ['sign'],
    );
    auth = client.PrivateKeyJwt({ key, kid });
  }

  // Every request goes through here: the token request is kept, to be replayed.
  const captured = [];
  const capturingFetch = async (url, options) => {
    captured.push({ url: String(url), body: String(options.body), headers: options.headers });
    return fetch(url, options);
  };

  stage = 'discovery';
  const config = await client.discovery(new URL(input.issuer), input.client_id, undefined, auth, {
    execute: [client.allowInsecureRequests],
    algorithm: 'oauth2',
    [client.customFetch]: capturingFetch,
  });
  const result = { metadata: config.serverMetadata() };

  stage = 'client_credentials';
  const parameters = grantParameters(input);
  const token = await client.clientCredentialsGrant(config, parameters);
  result.token = pick(token, ['access_token', 'token_type', 'expires_in', 'scope']);
  const tokenRequest = captured.find((r) => r.url === result.metadata.token_endpoint);
  const assertion = new URLSearchParams(tokenRequest.body).get('client_assertion');
  const [header, claims] = assertion.split('.');
  result.assertion_header = decodePart(header);
  result.assertion_claims = decodePart(claims);
  result.token_request_client_id = new URLSearchParams(tokenRequest.body).get('client_id');

  if (input.revoke) {
    stage = 'introspection';
    result.introspection = await client.tokenIntrospection(config, token.access_token);
    stage = 'revocation';
    await client.tokenRevocation(config, token.access_token);
    result.revoked = true;
    stage = 'introspection_after_revocation';
    result.introspection_after_revocation = await client.tokenIntrospection(
      config,
      token.access_token,
    );
  }
  if (input.replay) {
    stage = 'replay';
    const response = await fetch(tokenRequest.url, {
      method: 'POST',
      body: tokenRequest.body,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    result.replay = { status: response.status, body: await response.json() };
  }
  process.stdout.write(JSON.stringify(result) + '\n');
} catch (err) {
  process.stdout.write(JSON.stringify({ error: describe(err, stage) }) + '\n');
  process.exitCode = 1;
}
