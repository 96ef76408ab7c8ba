// What every peer check script shares: its input, and its errors as data.

// The JSON document the Python test writes to standard input.
export async function readInput() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return JSON.parse(Buffer.concat(chunks).toString('utf8'));
}

// The library's error, as data: its class name, its code, what the server said
// (and its WWW-Authenticate challenge), and the cause under it.
export function describe(err, stage) {
  const out = { stage, name: err?.name ?? typeof err, message: String(err?.message ?? err) };
  for (const field of ['code', 'error', 'error_description', 'status']) {
    if (err?.[field] !== undefined) out[field] = err[field];
  }
  const header = err?.response?.headers?.get?.('www-authenticate');
  if (header) out.www_authenticate = header;
  if (err?.name === 'WWWAuthenticateChallengeError') out.challenges = err.cause;
  const cause = err?.cause;
  if (cause instanceof Error) {
    out.cause = { name: cause.name, message: cause.message };
    if (cause.code !== undefined) out.cause.code = cause.code;
  }
  return out;
}

// The members of `source` named in `names` that it has.
export function pick(source, names) {
  const out = {};
  for (const name of names) if (source[name] !== undefined) out[name] = source[name];
  return out;
}

// The parameters of a client credentials grant the input asks for (scope, resource), as
// openid-client's clientCredentialsGrant takes them.
export function grantParameters(input) {
  const parameters = {};
  if (input.scope) parameters.scope = input.scope;
  if (input.resource) parameters.resource = input.resource;
  return parameters;
}
