//! Client keys and JWT client assertions for the `private_key_jwt` tests,
//! signed by jsonwebtoken: an implementation independent of the server's.

use auth_server::domain::assertion::JWT_BEARER;
use auth_server::keys::{Algorithm, SigningKey, generate_pkcs8, pkcs8_pem};
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{Value, json};

/// A client's key pair: the private half signs, the public JWK registers.
pub struct ClientKey {
    /// The JOSE algorithm the key signs with.
    pub alg: jsonwebtoken::Algorithm,
    /// Its `kid` (the RFC 7638 thumbprint).
    pub kid: String,
    /// The PKCS#8 PEM private key.
    pub pem: String,
    jwk: Value,
    encoding: EncodingKey,
}

impl ClientKey {
    /// A new key for `alg`: EdDSA, ES256, RS256 or PS256.
    pub fn new(alg: &str) -> Self {
        let (ours, theirs) = match alg {
            "EdDSA" => (Algorithm::EdDSA, jsonwebtoken::Algorithm::EdDSA),
            "ES256" => (Algorithm::ES256, jsonwebtoken::Algorithm::ES256),
            "RS256" => (Algorithm::RS256, jsonwebtoken::Algorithm::RS256),
            "PS256" => (Algorithm::RS256, jsonwebtoken::Algorithm::PS256),
            other => panic!("no keys for {other}"),
        };
        let der = generate_pkcs8(ours).unwrap();
        let pem = pkcs8_pem(&der);
        let parsed = SigningKey::from_pem(ours, pem.as_bytes()).unwrap();
        let mut jwk = parsed.public_jwk().unwrap();
        jwk["alg"] = alg.into();
        let encoding = match ours {
            Algorithm::EdDSA => EncodingKey::from_ed_der(&der),
            Algorithm::ES256 => EncodingKey::from_ec_der(&der),
            _ => EncodingKey::from_rsa_der(pkcs1_of(&der)),
        };
        Self {
            alg: theirs,
            kid: parsed.kid().to_owned(),
            pem,
            jwk,
            encoding,
        }
    }

    /// The public JWK (with `kid`, `alg`, `use`).
    pub fn jwk(&self) -> Value {
        self.jwk.clone()
    }

    /// Signs `claims` with this key, `kid` in the header.
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }

    /// Signs `claims` with this key and the header `header` as given.
    pub fn sign_with_header(&self, header: Header, claims: &Value) -> String {
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }
}

/// A JWK Set of `keys`.
pub fn jwks(keys: &[&ClientKey]) -> Value {
    json!({ "keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>() })
}

/// Good claims from `client_id` for `aud`, issued now, valid for a minute,
/// with a fresh `jti`.
pub fn claims(client_id: &str, aud: &str) -> Value {
    let now = auth_server::clock::unix_now();
    json!({
        "iss": client_id,
        "sub": client_id,
        "aud": aud,
        "iat": now,
        "exp": now + 60,
        "jti": fresh_jti(),
    })
}

/// A random `jti`.
pub fn fresh_jti() -> String {
    use base64::Engine;
    let bytes = auth_server::domain::client::random_bytes::<16>().unwrap();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The form of a client-credentials request authenticated by `assertion`,
/// plus `extra` fields.
pub fn token_form<'a>(assertion: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut form = vec![
        ("grant_type", "client_credentials"),
        ("client_assertion_type", JWT_BEARER),
        ("client_assertion", assertion),
    ];
    form.extend_from_slice(extra);
    form
}

/// The PKCS#1 `RSAPrivateKey` inside a PKCS#8 `PrivateKeyInfo` (the
/// OCTET STRING after the version and the algorithm identifier).
fn pkcs1_of(pkcs8: &[u8]) -> &[u8] {
    /// Splits one DER element off `der`: (tag, contents, rest).
    fn element(der: &[u8]) -> (u8, &[u8], &[u8]) {
        let (tag, first) = (der[0], der[1]);
        let (len, start) = if first < 0x80 {
            (first as usize, 2)
        } else {
            let n = (first & 0x7f) as usize;
            let len = der[2..2 + n]
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | *b as usize);
            (len, 2 + n)
        };
        (tag, &der[start..start + len], &der[start + len..])
    }
    let (_, info, _) = element(pkcs8);
    let (_, _, rest) = element(info); // version
    let (_, _, rest) = element(rest); // algorithm
    let (tag, key, _) = element(rest);
    assert_eq!(tag, 0x04, "an OCTET STRING");
    key
}
