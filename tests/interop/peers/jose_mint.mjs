// npm jose 6: signs JWTs as a third-party platform issuer would (a Kubernetes cluster's
// service-account issuer, GitHub Actions' OIDC issuer, a SPIFFE JWT-SVID issuer).
//
// Usage: node jose_mint.mjs < INPUT.json
// INPUT: {"jwk": {...private JWK...}, "alg": "RS256",
//         "tokens": [{"header": {"kid": "...", "typ": "JWT"}, "claims": {...}}, ...]}
// Prints {"tokens": ["eyJ...", ...]}; on failure {"error": {...}} (see script_io.mjs), exit 1.
import * as jose from 'jose';
import { describe, readInput } from './script_io.mjs';

let stage = 'input';
try {
  const input = await readInput();
  stage = 'import';
  const key = await jose.importJWK(input.jwk, input.alg);
  stage = 'sign';
  const tokens = [];
  for (const { header, claims } of input.tokens) {
    tokens.push(
      await new jose.SignJWT(claims).setProtectedHeader({ ...header, alg: input.alg }).sign(key),
    );
  }
  console.log(JSON.stringify({ tokens }));
} catch (err) {
  console.log(JSON.stringify({ error: describe(err, stage) }));
  process.exit(1);
}
