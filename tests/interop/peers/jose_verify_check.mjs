// npm jose 6: verifies JWTs with a public JWK, as any JavaScript resource server would.
//
// Usage: node jose_verify_check.mjs < INPUT.json
// INPUT: {"jwk": {...public JWK...}, "alg": "ES256", "tokens": ["eyJ...", ...]}
// Prints {"verified": [{"header": {...}, "payload": {...}}, ...]}; on the first token it
// refuses, {"error": {...}} (see script_io.mjs) and exits 1.
import * as jose from 'jose';
import { describe, readInput } from './script_io.mjs';

let stage = 'input';
try {
  const input = await readInput();
  stage = 'import';
  const key = await jose.importJWK(input.jwk, input.alg);
  stage = 'verify';
  const verified = [];
  for (const token of input.tokens) {
    const { payload, protectedHeader } = await jose.jwtVerify(token, key, {
      algorithms: [input.alg],
    });
    verified.push({ header: protectedHeader, payload });
  }
  console.log(JSON.stringify({ verified }));
} catch (err) {
  console.log(JSON.stringify({ error: describe(err, stage) }));
  process.exit(1);
}
