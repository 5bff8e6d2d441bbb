// node openid-client (unmodified) against a running auth-server: discovery,
// client-credentials grant with a secret and with PrivateKeyJwt, introspection
// and revocation; a token exchange (down-scoping) through genericGrantRequest; a DPoP-bound token through its DPoP handle, presented to a
// small resource server that asks /oauth/validate to check the proof;
// tls_client_auth with a client certificate (undici carries it, as
// openid-client documents); then an RFC 7591 registration built by hand (with
// an initial access token openid-client got), and the registered client
// getting a token through openid-client. Reads AS_ISSUER, AS_CLIENT_ID,
// AS_CLIENT_SECRET, AS_JWT_CLIENT_ID, AS_JWT_KEY (PEM private key), AS_CA,
// AS_CA_KEY, AS_NODE_MTLS_ID, AS_NODE_CERT, AS_NODE_KEY,
// AS_REGISTRAR_CLIENT_ID, AS_REGISTRAR_CLIENT_SECRET; trusts the server
// through NODE_EXTRA_CA_CERTS.
import { readFileSync } from 'node:fs';
import { createPrivateKey } from 'node:crypto';
import { createServer } from 'node:https';
import * as client from 'openid-client';
import * as undici from 'undici';

function check(condition, what) {
  if (!condition) {
    console.error(`FAIL: ${what}`);
    process.exit(1);
  }
  console.log(`ok: ${what}`);
}

const issuer = new URL(process.env.AS_ISSUER);
const config = await client.discovery(
  issuer,
  process.env.AS_CLIENT_ID,
  process.env.AS_CLIENT_SECRET,
);
check(config.serverMetadata().issuer === process.env.AS_ISSUER, 'openid-client discovers the issuer');

const token = await client.clientCredentialsGrant(config, { scope: 'api:read' });
check(token.token_type.toLowerCase() === 'bearer', 'openid-client gets a Bearer token');
check(token.scope === 'api:read', 'openid-client gets the scope');

const info = await client.tokenIntrospection(config, token.access_token);
check(info.active === true && info.client_id === process.env.AS_CLIENT_ID, 'openid-client introspects it');

await client.tokenRevocation(config, token.access_token);
const after = await client.tokenIntrospection(config, token.access_token);
check(after.active === false, 'revoked token introspects inactive');

// Token exchange (RFC 8693) through the generic grant call: a wide token
// down-scoped, introspected with its ancestry, revoked with its original.
const wide = await client.clientCredentialsGrant(config, { scope: 'api:read api:write' });
const exchanged = await client.genericGrantRequest(config, 'urn:ietf:params:oauth:grant-type:token-exchange', {
  subject_token: wide.access_token,
  subject_token_type: 'urn:ietf:params:oauth:token-type:access_token',
  scope: 'api:read',
});
check(
  exchanged.issued_token_type === 'urn:ietf:params:oauth:token-type:access_token' && exchanged.scope === 'api:read',
  'openid-client exchanges a token for a down-scoped one',
);
const wideJti = JSON.parse(Buffer.from(wide.access_token.split('.')[1], 'base64url')).jti;
const exchangedInfo = await client.tokenIntrospection(config, exchanged.access_token);
check(exchangedInfo.active === true && exchangedInfo.derived_from?.[0] === wideJti, 'introspection shows what it was exchanged from');
await client.tokenRevocation(config, wide.access_token);
check((await client.tokenIntrospection(config, exchanged.access_token)).active === false, 'revoking the original revokes the exchanged token');

try {
  const wrong = await client.discovery(issuer, process.env.AS_CLIENT_ID, 'wrong-secret');
  await client.clientCredentialsGrant(wrong, {});
  check(false, 'a wrong secret is refused');
} catch (error) {
  // oauth4webapi reports the 401 as the Basic challenge it carries.
  const challenged = error.status === 401 && error.cause?.[0]?.scheme === 'basic';
  if (!challenged) console.error(error);
  check(challenged, 'openid-client sees the 401 Basic challenge of invalid_client');
}
// private_key_jwt: the client's RSA key as a WebCrypto key; openid-client
// signs a one-minute RS256 assertion for the issuer per request.
const der = createPrivateKey(readFileSync(process.env.AS_JWT_KEY)).export({ format: 'der', type: 'pkcs8' });
const key = await crypto.subtle.importKey(
  'pkcs8',
  der,
  { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' },
  false,
  ['sign'],
);
const jwtConfig = await client.discovery(
  issuer,
  process.env.AS_JWT_CLIENT_ID,
  undefined,
  client.PrivateKeyJwt(key),
);
const jwtToken = await client.clientCredentialsGrant(jwtConfig, { scope: 'api:read' });
check(jwtToken.token_type.toLowerCase() === 'bearer', 'openid-client PrivateKeyJwt gets a Bearer token');
const jwtInfo = await client.tokenIntrospection(jwtConfig, jwtToken.access_token);
check(jwtInfo.active === true && jwtInfo.client_id === process.env.AS_JWT_CLIENT_ID, 'openid-client PrivateKeyJwt introspects it');
await client.tokenRevocation(jwtConfig, jwtToken.access_token);
check((await client.tokenIntrospection(jwtConfig, jwtToken.access_token)).active === false, 'openid-client PrivateKeyJwt revokes it');
// DPoP: the token endpoint binds the token to the handle's key.
const dpopKey = await client.randomDPoPKeyPair('ES256');
const DPoP = client.getDPoPHandle(config, dpopKey);
const bound = await client.clientCredentialsGrant(config, { scope: 'api:read' }, { DPoP });
check(bound.token_type.toLowerCase() === 'dpop', 'openid-client gets a DPoP token');
const boundInfo = await client.tokenIntrospection(config, bound.access_token);
check(typeof boundInfo.cnf?.jkt === 'string' && boundInfo.token_type === 'DPoP', 'introspection shows cnf.jkt');

// A resource server at https://api.example.com (here on loopback) that hands
// the proof it received to /oauth/validate and answers with its verdict.
const resource = createServer(
  { cert: readFileSync(process.env.AS_CA), key: readFileSync(process.env.AS_CA_KEY) },
  async (req, res) => {
    const token = (req.headers.authorization ?? '').replace(/^DPoP /, '');
    const verdict = await fetch(`${process.env.AS_ISSUER}/oauth/validate`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        endpoint_url: `https://api.example.com${req.url}`,
        method: req.method,
        dpop_proof: req.headers.dpop,
      }),
    });
    res.writeHead(verdict.status).end();
  },
);
await new Promise((resolve) => resource.listen(0, '127.0.0.1', resolve));
const resourcePort = resource.address().port;
const toLoopback = (url) => String(url).replace('https://api.example.com', `https://127.0.0.1:${resourcePort}`);
config[client.customFetch] = (url, options) => fetch(toLoopback(url), options);
const api = new URL('https://api.example.com/v1/users');
const withProof = await client.fetchProtectedResource(config, bound.access_token, api, 'GET', undefined, undefined, { DPoP });
check(withProof.status === 200, 'the resource server accepts the token with its proof');
const withoutProof = await fetch(toLoopback(api), { headers: { authorization: `DPoP ${bound.access_token}` } });
check(withoutProof.status === 401, 'the resource server refuses the token without a proof');
resource.close();

// tls_client_auth: only client_id in the body, the certificate on the connection.
const agent = new undici.Agent({
  connect: {
    cert: readFileSync(process.env.AS_NODE_CERT),
    key: readFileSync(process.env.AS_NODE_KEY),
    ca: readFileSync(process.env.AS_CA),
  },
});
const mtls = await client.discovery(
  issuer,
  process.env.AS_NODE_MTLS_ID,
  undefined,
  client.TlsClientAuth(),
  { [client.customFetch]: (url, options) => undici.fetch(url, { ...options, dispatcher: agent }) },
);
check(
  mtls.serverMetadata().token_endpoint_auth_methods_supported.includes('tls_client_auth'),
  'metadata lists tls_client_auth',
);
const certBound = await client.clientCredentialsGrant(mtls, { scope: 'api:read' });
const payload = JSON.parse(Buffer.from(certBound.access_token.split('.')[1], 'base64url'));
check(typeof payload.cnf?.['x5t#S256'] === 'string', 'openid-client TlsClientAuth gets a certificate-bound token');
await agent.close();

const registrar = await client.discovery(
  issuer,
  process.env.AS_REGISTRAR_CLIENT_ID,
  process.env.AS_REGISTRAR_CLIENT_SECRET,
);
const endpoint = registrar.serverMetadata().registration_endpoint;
check(endpoint === `${process.env.AS_ISSUER}/register`, 'the metadata names the registration endpoint');
const initial = await client.clientCredentialsGrant(registrar, { scope: 'auth-server:register' });
const registration = await fetch(endpoint, {
  method: 'POST',
  headers: {
    authorization: `Bearer ${initial.access_token}`,
    'content-type': 'application/json',
  },
  body: JSON.stringify({
    client_name: 'Registered by node',
    grant_types: ['client_credentials'],
    token_endpoint_auth_method: 'client_secret_post',
    scope: 'api:read',
  }),
});
check(registration.status === 201, 'a hand-built RFC 7591 request registers a client');
const registered = await registration.json();
check(registered.registration_access_token && registered.registration_client_uri, 'with RFC 7592 management');
const refused = await fetch(endpoint, {
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: '{}',
});
check(refused.status === 401, 'registering without an initial access token is refused');

const own = await client.discovery(issuer, registered.client_id, registered.client_secret);
const ownToken = await client.clientCredentialsGrant(own, { scope: 'api:read' });
check(ownToken.scope === 'api:read', 'openid-client gets a token for the registered client');
const read = await fetch(registered.registration_client_uri, {
  headers: { authorization: `Bearer ${registered.registration_access_token}` },
});
check(read.status === 200 && (await read.json()).client_name === 'Registered by node', 'it reads its registration');
const removed = await fetch(registered.registration_client_uri, {
  method: 'DELETE',
  headers: { authorization: `Bearer ${registered.registration_access_token}` },
});
check(removed.status === 204, 'it deletes itself');
console.log('node client: all checks passed');
