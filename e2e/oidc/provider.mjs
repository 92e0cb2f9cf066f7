// A real OpenID provider for the end-to-end tests: panva's `oidc-provider` (see package.json for
// the pinned version), set up for the OAuth 2.0 client-credentials grant with RFC 8707 resource
// indicators, so that it issues RFC 9068 JWT access tokens whose `aud` is the requested resource.
//
//   node provider.mjs [--port N] (--config JSON | --config-file PATH)
//
// It listens on 127.0.0.1 (port 0, the default, picks a free one; so does HDS_OIDC_PORT) with
// the issuer `http://127.0.0.1:<port>`, signs with a key generated here at start, and prints one
// JSON line on stdout once it listens: {"issuer", "port", "kid", "alg"}
// (plus "signingKey", the private JWK, when the config asks for `revealSigningKey`, so a test can
// sign tokens the provider would never issue, such as expired ones). Diagnostics go to stderr.
//
// The config (JSON) decides everything a test varies:
//   {
//     "resources": ["http://127.0.0.1:8080/fhir/a", ...], // the only resource indicators allowed
//     "clients": [{"clientId": "reader", "clientSecret": "s", "roles": ["FHIR Data Reader"],
//                  "scopes": ["system/Patient.read"]}],      // scopes: what the client may ask for
//     "rolesClaim": "roles",            // dotted path of the roles claim in access tokens
//     "alg": "RS256",                   // or "ES256", "PS256"
//     "accessTokenTTL": 3600,
//     "revealSigningKey": false
//   }

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import { parseArgs } from 'node:util';

import Provider, { errors } from 'oidc-provider';

function fail(message) {
  process.stderr.write(`provider.mjs: ${message}\n`);
  process.exit(2);
}

const { values: args } = parseArgs({
  options: {
    port: { type: 'string' },
    config: { type: 'string' },
    'config-file': { type: 'string' },
  },
});

let config;
try {
  if (args.config !== undefined) {
    config = JSON.parse(args.config);
  } else if (args['config-file'] !== undefined) {
    config = JSON.parse(fs.readFileSync(args['config-file'], 'utf8'));
  } else {
    fail('give the clients and resources with --config JSON or --config-file PATH');
  }
} catch (e) {
  fail(`the config is not valid JSON: ${e.message}`);
}

const port = Number(args.port ?? process.env.HDS_OIDC_PORT ?? 0);
if (!Number.isInteger(port) || port < 0 || port > 65535) fail(`bad port '${args.port}'`);

const resources = config.resources ?? [];
const clients = config.clients ?? [];
const rolesClaim = config.rolesClaim ?? 'roles';
const alg = config.alg ?? 'RS256';
const accessTokenTTL = config.accessTokenTTL ?? 3600;
if (!Array.isArray(resources) || resources.length === 0 || !resources.every((r) => typeof r === 'string')) {
  fail('config.resources must be a non-empty list of resource indicator URLs');
}
if (!Array.isArray(clients) || clients.length === 0) fail('config.clients must be a non-empty list');
for (const c of clients) {
  if (typeof c.clientId !== 'string' || typeof c.clientSecret !== 'string') {
    fail(`every client needs a clientId and a clientSecret: ${JSON.stringify(c)}`);
  }
}

// The signing key, generated now. Its kid is the RFC 7638 thumbprint of the public key.
function generateSigningKey() {
  let keyPair;
  if (alg === 'RS256' || alg === 'PS256') {
    keyPair = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  } else if (alg === 'ES256') {
    keyPair = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  } else {
    fail(`unsupported alg '${alg}' (RS256, PS256 or ES256)`);
  }
  const jwk = keyPair.privateKey.export({ format: 'jwk' });
  const members = jwk.kty === 'RSA'
    ? { e: jwk.e, kty: jwk.kty, n: jwk.n }
    : { crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y };
  const kid = crypto.createHash('sha256').update(JSON.stringify(members)).digest('base64url');
  return { ...jwk, kid, alg, use: 'sig' };
}
const signingKey = generateSigningKey();

// Every SMART scope any client may have is one of the provider's known scopes, so asking for
// one outside the client's `scope` allow-list is an `invalid_scope` error; a client without
// scopes gets none (see getResourceServerInfo).
const smartScopes = [...new Set(clients.flatMap((c) => c.scopes ?? []))];
const byId = new Map(clients.map((c) => [c.clientId, c]));

function nested(path, value) {
  return path.split('.').reduceRight((inner, key) => ({ [key]: inner }), value);
}

// Listen first (port 0 picks a free port), then build the provider with the issuer that port
// makes, so there is no window in which a chosen port could be taken by someone else.
const server = http.createServer();
server.on('error', (e) => fail(`cannot listen on 127.0.0.1:${port}: ${e.message}`));
await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  clients: clients.map((c) => ({
    client_id: c.clientId,
    client_secret: c.clientSecret,
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'client_secret_basic',
    scope: (c.scopes ?? []).join(' ') || undefined,
  })),
  clientDefaults: {
    grant_types: ['client_credentials'],
    response_types: [],
    id_token_signed_response_alg: alg,
    token_endpoint_auth_method: 'client_secret_basic',
  },
  jwks: { keys: [signingKey] },
  scopes: smartScopes,
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: false },
    revocation: { enabled: false },
    resourceIndicators: {
      enabled: true,
      // No `resource` in the request: no default audience (the token would be opaque).
      defaultResource: async () => undefined,
      useGrantedResource: async () => false,
      getResourceServerInfo: async (_ctx, resourceIndicator, client) => {
        if (!resources.includes(resourceIndicator)) {
          throw new errors.InvalidTarget(`the resource '${resourceIndicator}' is not known here`);
        }
        return {
          audience: resourceIndicator,
          // What a token for this client may carry: the requested scopes that the client is
          // allowed (oidc-provider intersects them with this).
          scope: (byId.get(client.clientId)?.scopes ?? []).join(' '),
          accessTokenFormat: 'jwt',
          accessTokenTTL,
          jwt: { sign: { alg } },
        };
      },
    },
  },
  // The client's data roles in every access token, under the configured claim path.
  extraTokenClaims: async (_ctx, token) => {
    const roles = byId.get(token.clientId)?.roles;
    return roles && roles.length ? nested(rolesClaim, roles) : undefined;
  },
  ttl: {
    ClientCredentials: (_ctx, token) => token.resourceServer?.accessTokenTTL ?? accessTokenTTL,
    AccessToken: accessTokenTTL,
    AuthorizationCode: 60,
    IdToken: 3600,
    Interaction: 3600,
    Session: 3600,
    Grant: 3600,
  },
  cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
  findAccount: async () => undefined,
  renderError: async (ctx, out) => {
    ctx.type = 'json';
    ctx.body = out;
  },
});

for (const event of ['server_error', 'grant.error']) {
  provider.on(event, (ctx, err) => {
    process.stderr.write(
      `oidc-provider ${event}: ${err?.name}: ${err?.message} (${err?.error_description ?? ''})\n`,
    );
  });
}

server.on('request', provider.callback());

function stop() {
  server.close(() => process.exit(0));
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

const ready = {
  issuer,
  port: server.address().port,
  kid: signingKey.kid,
  alg,
};
if (config.revealSigningKey) ready.signingKey = signingKey;
process.stdout.write(`${JSON.stringify(ready)}\n`);
