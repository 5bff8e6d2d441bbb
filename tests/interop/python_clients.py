"""Third-party Python OAuth clients against a running auth-server.

Unmodified authlib, requests-oauthlib and PyJWT get tokens with the client
authentication methods (secrets, and authlib's PrivateKeyJWT), verify them
against the served JWKS, introspect and revoke them. Plain requests with
cert= authenticates a client with its self-signed certificate (RFC 8705) and
gets a certificate-bound token. authlib drives the admin API with a token
carrying the admin scope, and every refusal (no token, another scope, a
revoked token) is checked. Reads AS_ISSUER, AS_CA, AS_CLIENT_ID,
AS_CLIENT_SECRET, AS_JWT_CLIENT_ID and AS_JWT_KEY (the PEM private key of the
private_key_jwt client), AS_PYTHON_MTLS_ID, AS_PYTHON_CERT, AS_PYTHON_KEY,
AS_ADMIN_CLIENT_ID, AS_ADMIN_CLIENT_SECRET.
Exits non-zero on the first failure.
"""

import base64
import hashlib
import os
import ssl
import sys
import time

import jwt
import requests
from authlib.integrations.requests_client import OAuth2Session as AuthlibSession
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from oauthlib.oauth2 import BackendApplicationClient
from requests_oauthlib import OAuth2Session as OAuthlibSession

ISSUER = os.environ["AS_ISSUER"]
CA = os.environ["AS_CA"]
CLIENT_ID = os.environ["AS_CLIENT_ID"]
CLIENT_SECRET = os.environ["AS_CLIENT_SECRET"]
JWT_CLIENT_ID = os.environ["AS_JWT_CLIENT_ID"]
JWT_KEY = os.environ["AS_JWT_KEY"]
ADMIN_ID = os.environ["AS_ADMIN_CLIENT_ID"]
ADMIN_SECRET = os.environ["AS_ADMIN_CLIENT_SECRET"]


def check(condition, what):
    if not condition:
        print(f"FAIL: {what}", file=sys.stderr)
        sys.exit(1)
    print(f"ok: {what}")


def metadata():
    response = requests.get(
        f"{ISSUER}/.well-known/openid-configuration", verify=CA, timeout=10
    )
    check(response.status_code == 200, "metadata is served")
    doc = response.json()
    check(doc["issuer"] == ISSUER, "metadata issuer matches")
    return doc


def verify_with_pyjwt(token, doc, client_id=CLIENT_ID):
    context = ssl.create_default_context(cafile=CA)
    jwks = jwt.PyJWKClient(doc["jwks_uri"], ssl_context=context)
    key = jwks.get_signing_key_from_jwt(token)
    header = jwt.get_unverified_header(token)
    check(header.get("typ") == "at+jwt", "PyJWT sees typ at+jwt")
    claims = jwt.decode(
        token,
        key.key,
        algorithms=doc["access_token_signing_alg_values_supported"],
        issuer=ISSUER,
        audience="auth-server",
        options={"require": ["exp", "iat", "nbf", "iss", "aud", "sub", "jti"]},
    )
    check(claims["client_id"] == client_id, "PyJWT verifies the token and its claims")
    return claims


def authlib_flows(doc):
    for method in ("client_secret_basic", "client_secret_post"):
        session = AuthlibSession(
            CLIENT_ID,
            CLIENT_SECRET,
            token_endpoint_auth_method=method,
            scope="api:read",
        )
        session.verify = CA
        token = session.fetch_token(doc["token_endpoint"], grant_type="client_credentials")
        check(token["token_type"] == "Bearer", f"authlib {method} gets a Bearer token")
        check(token["scope"] == "api:read", f"authlib {method} gets the scope")
        check("refresh_token" not in token, "no refresh token")
        verify_with_pyjwt(token["access_token"], doc)

    session = AuthlibSession(CLIENT_ID, CLIENT_SECRET, scope="api:read")
    session.verify = CA
    token = session.fetch_token(doc["token_endpoint"], grant_type="client_credentials")
    access = token["access_token"]
    info = session.introspect_token(doc["introspection_endpoint"], token=access).json()
    check(info["active"] is True, "authlib introspects an active token")
    check(info["client_id"] == CLIENT_ID, "introspection names the client")
    revoked = session.revoke_token(doc["revocation_endpoint"], token=access)
    check(revoked.status_code == 200, "authlib revokes the token")
    info = session.introspect_token(doc["introspection_endpoint"], token=access).json()
    check(info == {"active": False}, "revoked token introspects inactive")

    bad = AuthlibSession(CLIENT_ID, "wrong-secret")
    bad.verify = CA
    try:
        bad.fetch_token(doc["token_endpoint"], grant_type="client_credentials")
        check(False, "authlib with a wrong secret fails")
    except Exception as error:  # authlib raises OAuthError
        check("invalid_client" in str(error), "authlib sees invalid_client")


def jwt_session():
    """An authlib session authenticating with private_key_jwt at the token,
    introspection and revocation endpoints (each assertion's aud is the URL
    it is posted to)."""
    with open(JWT_KEY, "rb") as f:
        key = f.read()
    session = AuthlibSession(
        JWT_CLIENT_ID,
        key,
        token_endpoint_auth_method="private_key_jwt",
        revocation_endpoint_auth_method="private_key_jwt",
        scope="api:read",
    )
    session.register_client_auth_method(PrivateKeyJWT())
    session.verify = CA
    return session


def short_lived(session):
    """authlib signs assertions valid for an hour unless told otherwise; the
    server accepts at most five minutes (client_auth.max_assertion_lifetime_secs).
    Its documented `claims` option sets a one-minute exp. authlib writes the
    jti it generates into that dict, so a fresh one per request."""
    claims = {"exp": int(time.time()) + 60}
    session.register_client_auth_method(PrivateKeyJWT(claims=claims))
    return claims


def authlib_private_key_jwt(doc):
    try:
        jwt_session().fetch_token(doc["token_endpoint"], grant_type="client_credentials")
        check(False, "an hour-long assertion is refused")
    except Exception as error:
        check("invalid_client" in str(error), "authlib's hour-long default assertion is refused")

    session = jwt_session()
    short_lived(session)
    token = session.fetch_token(doc["token_endpoint"], grant_type="client_credentials")
    check(token["token_type"] == "Bearer", "authlib PrivateKeyJWT gets a Bearer token")
    verify_with_pyjwt(token["access_token"], doc, client_id=JWT_CLIENT_ID)
    # The same claims again carry the same jti: a replay.
    try:
        session.fetch_token(doc["token_endpoint"], grant_type="client_credentials")
        check(False, "a replayed jti is refused")
    except Exception as error:
        check("invalid_client" in str(error), "authlib's replayed jti is refused")

    access = token["access_token"]
    short_lived(session)
    info = session.introspect_token(doc["introspection_endpoint"], token=access).json()
    check(info.get("active") is True, "authlib PrivateKeyJWT introspects an active token")
    check(info["client_id"] == JWT_CLIENT_ID, "introspection names the jwt client")
    short_lived(session)
    revoked = session.revoke_token(doc["revocation_endpoint"], token=access)
    check(revoked.status_code == 200, "authlib PrivateKeyJWT revokes the token")
    short_lived(session)
    info = session.introspect_token(doc["introspection_endpoint"], token=access).json()
    check(info == {"active": False}, "revoked token introspects inactive")
    check(
        "private_key_jwt" in doc["token_endpoint_auth_methods_supported"],
        "metadata lists private_key_jwt",
    )


def requests_oauthlib_flow(doc):
    session = OAuthlibSession(client=BackendApplicationClient(client_id=CLIENT_ID))
    token = session.fetch_token(
        token_url=doc["token_endpoint"],
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        verify=CA,
    )
    check(token["token_type"] == "Bearer", "requests-oauthlib gets a Bearer token")
    claims = verify_with_pyjwt(token["access_token"], doc)
    response = session.post(
        f"{ISSUER}/oauth/validate",
        json={"endpoint_url": "https://api.example.com/v1/users", "method": "GET"},
        verify=CA,
    )
    check(response.status_code == 200, "the token validates for its endpoint")
    check(response.json()["jti"] == claims["jti"], "validate returns the jti")


def mutual_tls_flow(doc):
    cert = (os.environ["AS_PYTHON_CERT"], os.environ["AS_PYTHON_KEY"])
    client_id = os.environ["AS_PYTHON_MTLS_ID"]
    check(
        "self_signed_tls_client_auth" in doc["token_endpoint_auth_methods_supported"],
        "metadata lists self_signed_tls_client_auth",
    )
    check(doc.get("tls_client_certificate_bound_access_tokens") is True,
          "metadata announces certificate-bound tokens")
    response = requests.post(
        doc["token_endpoint"],
        data={"grant_type": "client_credentials", "client_id": client_id},
        cert=cert,
        verify=CA,
        timeout=10,
    )
    check(response.status_code == 200, "requests with cert= gets a token")
    token = response.json()["access_token"]
    with open(cert[0], encoding="ascii") as pem:
        der = ssl.PEM_cert_to_DER_cert(pem.read())
    thumbprint = base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()
    claims = jwt.decode(token, options={"verify_signature": False})
    check(claims.get("cnf") == {"x5t#S256": thumbprint}, "the token is bound to the certificate")

    def validate(extra):
        return requests.post(
            f"{ISSUER}/oauth/validate",
            headers={"Authorization": f"Bearer {token}"},
            json={"endpoint_url": "https://api.example.com/v1/users", **extra},
            verify=CA,
            timeout=10,
        ).status_code

    check(validate({"certificate_thumbprint": thumbprint}) == 200,
          "validate accepts it with the certificate's thumbprint")
    check(validate({}) == 401, "validate refuses it without the thumbprint")
    without_cert = requests.post(
        doc["token_endpoint"],
        data={"grant_type": "client_credentials", "client_id": client_id},
        verify=CA,
        timeout=10,
    )
    check(without_cert.status_code == 401, "without the certificate the client is refused")

def admin_api(doc):
    admin = f"{ISSUER}/admin"
    session = AuthlibSession(ADMIN_ID, ADMIN_SECRET, scope="auth-server:admin")
    session.verify = CA
    token = session.fetch_token(doc["token_endpoint"], grant_type="client_credentials")
    check(token["scope"] == "auth-server:admin", "authlib gets an admin token")
    created = session.post(
        f"{admin}/clients",
        json={"client_id": "from-authlib", "name": "From authlib", "allowed_scopes": "api:read"},
    )
    check(created.status_code == 201, "the admin API creates a client")
    secret = created.json()["client_secret"]
    check(created.headers["Cache-Control"] == "no-store", "the answer is not cached")
    shown = session.get(f"{admin}/clients/from-authlib").json()
    check("client_secret" not in shown, "show never shows the secret")
    changed = session.patch(f"{admin}/clients/from-authlib", json={"name": "Renamed"})
    check(changed.json()["name"] == "Renamed", "the admin API updates a client")
    new_client = AuthlibSession("from-authlib", secret, scope="api:read")
    new_client.verify = CA
    issued = new_client.fetch_token(doc["token_endpoint"], grant_type="client_credentials")
    check(issued["token_type"] == "Bearer", "the created client gets a token")
    check(session.get(f"{admin}/keys").status_code == 200, "the admin API lists the keys")
    check(session.delete(f"{admin}/clients/from-authlib").status_code == 200, "delete")

    anonymous = requests.get(f"{admin}/clients", verify=CA, timeout=10)
    check(anonymous.status_code == 401, "no token: 401")
    check(anonymous.headers["WWW-Authenticate"].startswith("Bearer"), "with a Bearer challenge")
    reader = AuthlibSession(CLIENT_ID, CLIENT_SECRET, scope="api:read")
    reader.verify = CA
    reader.fetch_token(doc["token_endpoint"], grant_type="client_credentials")
    scoped = reader.get(f"{admin}/clients")
    check(scoped.status_code == 403, "another scope: 403")
    check(scoped.json()["error"] == "insufficient_scope", "insufficient_scope")
    revoked = session.revoke_token(doc["revocation_endpoint"], token=token["access_token"])
    check(revoked.status_code == 200, "the admin token is revoked")
    check(session.get(f"{admin}/clients").status_code == 401, "a revoked admin token: 401")


def main():
    doc = metadata()
    authlib_flows(doc)
    authlib_private_key_jwt(doc)
    requests_oauthlib_flow(doc)
    mutual_tls_flow(doc)
    admin_api(doc)
    print("python clients: all checks passed")


if __name__ == "__main__":
    main()
