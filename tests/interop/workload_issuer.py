"""A stand-in Kubernetes service-account issuer for the interop run: serves
OpenID Connect discovery and a JWK Set over HTTPS on a loopback port, and
writes a projected-token-shaped JWT for a service account.

Usage: workload_issuer.py CERT KEY WORKDIR AUDIENCE
Writes WORKDIR/issuer-url once listening and WORKDIR/workload-token; serves
until killed.
"""
import json
import ssl
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from joserfc import jwt
from joserfc.jwk import RSAKey

cert, key_file, work, audience = sys.argv[1:5]
key = RSAKey.generate_key(2048, private=True)
kid = key.thumbprint()
jwks = json.dumps({"keys": [dict(key.as_dict(private=False), kid=kid, use="sig", alg="RS256")]})

server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
issuer = f"https://127.0.0.1:{server.server_address[1]}"
discovery = json.dumps({"issuer": issuer, "jwks_uri": f"{issuer}/openid/v1/jwks"})


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = {
            "/.well-known/openid-configuration": discovery,
            "/openid/v1/jwks": jwks,
        }.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args):
        pass


server.RequestHandlerClass = Handler
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert, key_file)
server.socket = context.wrap_socket(server.socket, server_side=True)

now = int(time.time())
claims = {
    "iss": issuer,
    "sub": "system:serviceaccount:payments:api",
    "aud": [audience],
    "iat": now,
    "nbf": now,
    "exp": now + 3600,
    "kubernetes.io": {
        "namespace": "payments",
        "pod": {"name": "api-7d9f-x2x5", "uid": "6f1c3a52-d6a1-4b0e-9a2c-3a1b9c7f0e11"},
        "serviceaccount": {"name": "api", "uid": "0b7e5d7c-6a37-4c8e-9d45-3b1d2c0f9a88"},
    },
}
token = jwt.encode({"alg": "RS256", "kid": kid, "typ": "JWT"}, claims, key)
open(f"{work}/workload-token", "w").write(token)
open(f"{work}/issuer-url", "w").write(issuer)
server.serve_forever()
