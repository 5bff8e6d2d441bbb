// node openid-client (unmodified) against a running auth-server: discovery,
// client-credentials grant, introspection and revocation; then an RFC 7591
// registration built by hand (with an initial access token openid-client
// got), and the registered client getting a token through openid-client.
// Reads AS_ISSUER, AS_CLIENT_ID, AS_CLIENT_SECRET, AS_REGISTRAR_CLIENT_ID,
// AS_REGISTRAR_CLIENT_SECRET; trusts the server through NODE_EXTRA_CA_CERTS.
import * as client from 'openid-client';

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
