// node openid-client (unmodified) against a running auth-server: discovery,
// client-credentials grant with a secret and with PrivateKeyJwt, introspection
// and revocation. Reads AS_ISSUER, AS_CLIENT_ID, AS_CLIENT_SECRET,
// AS_JWT_CLIENT_ID, AS_JWT_KEY (PEM private key); trusts the server through
// NODE_EXTRA_CA_CERTS.
import { readFileSync } from 'node:fs';
import { createPrivateKey } from 'node:crypto';
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
console.log('node client: all checks passed');
