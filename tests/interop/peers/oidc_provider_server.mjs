// A real third-party authorization server for the test suite: npm oidc-provider on loopback.
//
// Usage: node oidc_provider_server.mjs CONFIG.json
// CONFIG: {"clients": [...oidc-provider client metadata...],
//          "scopes": ["read", ...],
//          "resources": {"https://api.test/": {"scope": "read write", "ttl": 60,
//                         "alg": "ES256", "format": "jwt"}},
//          "ttl": 60, "jwks": {"keys": [...]},
//          "countRequests": false, "tokenDelayMs": 0}
// With "countRequests": true (benchmarks), POSTs to /token are counted:
// GET /__counts answers {"token": N} and POST /__counts/reset sets N back to 0;
// "tokenDelayMs" then holds each token request that long before it is served,
// like a remote authorization server. Without "countRequests" neither applies,
// those paths do not exist and the server is oidc-provider alone.
// Optional "dpop": {"nonceSecret": "<32 bytes, base64>", "requireNonce": true} sets
// features.dPoP (RFC 9449): nonceSecret lets the server hand out DPoP-Nonce values and
// requireNonce demands one in every proof. Without "dpop", oidc-provider's defaults apply.
// Optional "tokenExchange": true registers an RFC 8693 token-exchange grant through
// provider.registerGrantType (a fixture of the tests, not a feature of oidc-provider): a
// client whose grant_types include it trades one of this provider's (opaque) client
// credentials access tokens for a new one of its own, with at most the subject's scope.
// Listens on 127.0.0.1 on a free port and prints one JSON line {"issuer": ...} when ready.
import http from 'node:http';
import fs from 'node:fs';
import Provider, { errors } from 'oidc-provider';

const config = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
let handler = (req, res) => { res.statusCode = 503; res.end(); };
const server = http.createServer((req, res) => handler(req, res));

server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;
  const resources = config.resources || {};
  const dpop = config.dpop
    ? {
        dPoP: {
          enabled: true,
          ...(config.dpop.nonceSecret
            ? { nonceSecret: Buffer.from(config.dpop.nonceSecret, 'base64') }
            : {}),
          requireNonce: () => Boolean(config.dpop.requireNonce),
        },
      }
    : {};
  const provider = new Provider(issuer, {
    clients: config.clients,
    scopes: ['openid', ...(config.scopes || [])],
    jwks: config.jwks,
    ttl: { ClientCredentials: config.ttl || 600 },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      revocation: { enabled: true },
      ...dpop,
      resourceIndicators: {
        enabled: true,
        defaultResource: (ctx, client, oneOf) => oneOf,
        useGrantedResource: () => false,
        getResourceServerInfo: (ctx, indicator) => {
          const info = resources[indicator];
          if (!info) throw new errors.InvalidTarget();
          return {
            scope: info.scope,
            audience: indicator,
            accessTokenTTL: info.ttl || config.ttl || 600,
            accessTokenFormat: info.format || 'jwt',
            jwt: { sign: { alg: info.alg || 'ES256' } },
          };
        },
      },
    },
  });
  provider.proxy = false;
  if (config.tokenExchange) registerTokenExchange(provider);
  handler = config.countRequests
    ? counting(provider.callback(), config.tokenDelayMs || 0)
    : provider.callback();
  process.stdout.write(JSON.stringify({ issuer }) + '\n');
});

// The token-exchange grant of the test fixture (opt-in, see the header).
function registerTokenExchange(provider) {
  const ACCESS_TOKEN = 'urn:ietf:params:oauth:token-type:access_token';
  const parameters = new Set([
    'subject_token', 'subject_token_type', 'actor_token', 'actor_token_type',
    'requested_token_type', 'audience', 'scope',
  ]);
  provider.registerGrantType(
    'urn:ietf:params:oauth:grant-type:token-exchange',
    async (ctx) => {
      const { params, client } = ctx.oidc;
      if (params.subject_token_type !== ACCESS_TOKEN) {
        throw new errors.InvalidRequest('unsupported subject_token_type');
      }
      const subject = await provider.ClientCredentials.find(params.subject_token);
      if (!subject || subject.isExpired) {
        throw new errors.InvalidGrant('the subject_token is not valid');
      }
      const granted = new Set((subject.scope || '').split(' '));
      const asked = (params.scope || subject.scope || '').split(' ').filter(Boolean);
      if (asked.some((scope) => !granted.has(scope))) {
        throw new errors.InvalidScope('wider than the subject_token', params.scope);
      }
      const token = new provider.ClientCredentials({ client, scope: asked.join(' ') || undefined });
      const value = await token.save();
      ctx.body = {
        access_token: value,
        issued_token_type: ACCESS_TOKEN,
        token_type: 'Bearer',
        expires_in: Math.min(token.expiration, subject.remainingTTL),
        scope: token.scope,
        // What the fixture was asked, for the test to check what the client sent.
        received: { audience: params.audience, actor_token: Boolean(params.actor_token) },
      };
    },
    parameters,
  );
}

// Wraps the provider's handler to count token requests (opt-in, see the header).
function counting(inner, delayMs) {
  const counts = { token: 0 };
  const reply = (res) => {
    res.statusCode = 200;
    res.setHeader('content-type', 'application/json');
    res.setHeader('cache-control', 'no-store');
    res.end(JSON.stringify(counts));
  };
  return (req, res) => {
    const path = req.url.split('?')[0];
    if (path === '/__counts' && req.method === 'GET') return reply(res);
    if (path === '/__counts/reset' && req.method === 'POST') {
      counts.token = 0;
      return reply(res);
    }
    if (path === '/token' && req.method === 'POST') {
      counts.token += 1;
      if (delayMs > 0) return setTimeout(() => inner(req, res), delayMs);
    }
    return inner(req, res);
  };
}

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
