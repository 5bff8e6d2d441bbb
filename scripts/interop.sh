#!/usr/bin/env bash
# Runs unmodified third-party OAuth clients against the real binary: Python
# authlib, requests-oauthlib, PyJWT and requests (mutual TLS with cert=;
# authlib also on the admin API), and node openid-client (secret, token
# exchange, private_key_jwt, DPoP, tls_client_auth through undici, a client it
# registered through RFC 7591, and a Kubernetes-shaped workload token for our
# token through the jwt-bearer grant and token exchange). Installs them
# (pinned, tests/interop/) into target/interop on first use, makes a client CA and client certificates with
# openssl, starts the server on a loopback port in a temp dir, creates the
# clients (a secret, a key, certificates), runs both suites, stops the server.
# Usage: scripts/interop.sh [path/to/auth-server]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
bin=${1:-$root/target/debug/auth-server}
[ -x "$bin" ] || cargo build --locked --bin auth-server
bin=$(realpath "$bin")
deps="$root/target/interop"
mkdir -p "$deps"

echo "==> interop: installing pinned clients"
if [ ! -x "$deps/venv/bin/python" ]; then
  python3 -m venv "$deps/venv"
fi
"$deps/venv/bin/pip" install --quiet --disable-pip-version-check -r tests/interop/requirements.txt
cp tests/interop/package.json "$deps/package.json"
(cd "$deps" && npm install --silent --no-audit --no-fund >/dev/null)

work=$(mktemp -d)
server_pid=""
issuer_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  if [ -n "$issuer_pid" ]; then
    kill -TERM "$issuer_pid" 2>/dev/null || true
    wait "$issuer_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

export AUTH_SERVER_SERVER_BIND=127.0.0.1:0
export AUTH_SERVER_DEV_DEMO_CLIENT=false
export AUTH_SERVER_LOG_DIR=""
export AUTH_SERVER_REGISTRATION_ENABLED=true
export AUTH_SERVER_REGISTRATION_ALLOWED_SCOPES=api:read
unset DATABASE_URL JWT_SECRET ENVIRONMENT AUTH_SERVER_CONFIG RUST_LOG
cp config.toml "$work/config.toml"
cd "$work"

# A client CA and a certificate it issues (tls_client_auth, node), and a
# self-signed certificate (self_signed_tls_client_auth, Python).
ec=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)
openssl req -x509 "${ec[@]}" -days 1 -subj /CN=interop-client-ca -keyout ca-key.pem -out client-ca.pem \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign 2>/dev/null
openssl req "${ec[@]}" -subj /CN=interop-node -keyout node-key.pem -out node.csr 2>/dev/null
printf 'subjectAltName=DNS:interop-node.example.test\nextendedKeyUsage=clientAuth\n' > node.ext
openssl x509 -req -in node.csr -CA client-ca.pem -CAkey ca-key.pem -CAcreateserial -days 1 \
  -extfile node.ext -out node-cert.pem 2>/dev/null
openssl req -x509 "${ec[@]}" -days 1 -subj /CN=interop-python -keyout python-key.pem \
  -out python-cert.pem 2>/dev/null
export AUTH_SERVER_TLS_CLIENT_CA_FILE="$work/client-ca.pem"
"$bin" client create --name interop-node-mtls --id interop-node-mtls --scopes api:read \
  --tls-san-dns interop-node.example.test >/dev/null
"$bin" client create --name interop-python-mtls --id interop-python-mtls --scopes api:read \
  --self-signed-cert python-cert.pem >/dev/null
export AS_NODE_MTLS_ID=interop-node-mtls AS_NODE_CERT="$work/node-cert.pem" AS_NODE_KEY="$work/node-key.pem"
export AS_PYTHON_MTLS_ID=interop-python-mtls AS_PYTHON_CERT="$work/python-cert.pem" \
  AS_PYTHON_KEY="$work/python-key.pem"
created=$("$bin" client create --name interop --id interop-client --scopes "api:read api:write" \
  --default-scopes api:read)
secret=$(printf '%s\n' "$created" | sed -n 's/^client_secret: //p')
[ -n "$secret" ] || { echo "could not create the interop client" >&2; exit 1; }
# A private_key_jwt client: an RSA key made here, its public half registered
# inline (RS256 is what both libraries sign with by default).
"$deps/venv/bin/python" - "$work" <<'PY'
import json, sys
from joserfc.jwk import RSAKey
key = RSAKey.generate_key(2048, private=True)
open(f"{sys.argv[1]}/client-key.pem", "wb").write(key.as_pem(private=True))
jwk = dict(key.as_dict(private=False), kid=key.thumbprint(), use="sig")
json.dump({"keys": [jwk]}, open(f"{sys.argv[1]}/client-jwks.json", "w"))
PY
"$bin" client create --name interop-jwt --id interop-jwt-client --scopes "api:read" \
  --auth-method private_key_jwt --jwks-file "$work/client-jwks.json" >/dev/null
# A workload identity issuer (a stand-in Kubernetes API server, HTTPS with
# its own CA) trusted as [[federation.issuer]] "interop-k8s", and a client
# its service accounts of namespace payments map to.
openssl req -x509 "${ec[@]}" -days 1 -subj /CN=interop-issuer-ca -keyout issuer-ca-key.pem \
  -out issuer-ca.pem -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign 2>/dev/null
openssl req "${ec[@]}" -subj /CN=127.0.0.1 -keyout issuer-key.pem -out issuer.csr 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > issuer.ext
openssl x509 -req -in issuer.csr -CA issuer-ca.pem -CAkey issuer-ca-key.pem -CAcreateserial -days 1 \
  -extfile issuer.ext -out issuer-cert.pem 2>/dev/null
"$deps/venv/bin/python" "$root/tests/interop/workload_issuer.py" issuer-cert.pem issuer-key.pem \
  "$work" auth-server-interop &
issuer_pid=$!
for _ in $(seq 1 100); do
  [ -s issuer-url ] && break
  sleep 0.1
done
[ -s issuer-url ] || { echo "the workload issuer did not start" >&2; exit 1; }
printf '\n[[federation.issuer]]\nname = "interop-k8s"\nissuer = "%s"\naudience = "auth-server-interop"\nalgorithms = ["RS256"]\n' \
  "$(cat issuer-url)" >> config.toml
export AUTH_SERVER_JWKS_FETCH_CA_FILE="$work/issuer-ca.pem"
"$bin" client create --name interop-workload --id interop-workload --scopes "api:read" >/dev/null
"$bin" federation subjects add interop-workload --issuer interop-k8s \
  --subject 'system:serviceaccount:payments:*' >/dev/null
export AS_WORKLOAD_CLIENT_ID=interop-workload AS_WORKLOAD_TOKEN="$(cat workload-token)"
# An admin client (the admin API) and a registrar (initial access tokens).
extra_client() {
  "$bin" client create --name "$1" --id "$1" --scopes "$2" | sed -n 's/^client_secret: //p'
}
admin_secret=$(extra_client interop-admin auth-server:admin)
registrar_secret=$(extra_client interop-registrar auth-server:register)

"$bin" > server.log 2>&1 &
server_pid=$!
issuer=""
for _ in $(seq 1 100); do
  issuer=$(sed -n 's/.*"issuer":"\([^"]*\)".*auth-server listening.*//p; s/.*auth-server listening.*"issuer":"\([^"]*\)".*/\1/p' server.log | head -n 1)
  [ -n "$issuer" ] && break
  kill -0 "$server_pid" 2>/dev/null || { cat server.log >&2; exit 1; }
  sleep 0.1
done
[ -n "$issuer" ] || { echo "server did not start" >&2; cat server.log >&2; exit 1; }

export AS_ISSUER="$issuer" AS_CA="$work/certs/dev-cert.pem" AS_CA_KEY="$work/certs/dev-key.pem"
# requests-based clients (authlib, requests-oauthlib) trust the dev certificate.
export REQUESTS_CA_BUNDLE="$AS_CA"
export AS_CLIENT_ID=interop-client AS_CLIENT_SECRET="$secret"
export AS_JWT_CLIENT_ID=interop-jwt-client AS_JWT_KEY="$work/client-key.pem"
export AS_ADMIN_CLIENT_ID=interop-admin AS_ADMIN_CLIENT_SECRET="$admin_secret"
export AS_REGISTRAR_CLIENT_ID=interop-registrar AS_REGISTRAR_CLIENT_SECRET="$registrar_secret"

echo "==> interop: Python authlib, requests-oauthlib, PyJWT"
timeout 120 "$deps/venv/bin/python" "$root/tests/interop/python_clients.py"

echo "==> interop: node openid-client (secret, token exchange, private_key_jwt, DPoP, tls_client_auth, workload tokens)"
cp "$root/tests/interop/node_client.mjs" "$deps/node_client.mjs"
NODE_EXTRA_CA_CERTS="$AS_CA" timeout 120 node "$deps/node_client.mjs"
