use super::*;
use crate::domain::client::SecretHash;

const NOW: i64 = 1_800_000_000;

fn policy() -> TokenPolicy {
    TokenPolicy {
        issuer: "https://issuer.test".into(),
        default_lifetime_secs: 900,
        default_audience: "default-aud".into(),
        nbf_leeway_secs: 5,
        exp_leeway_secs: 0,
    }
}

fn client() -> Client {
    Client {
        allowed_scopes: ScopeSet::parse("read write admin").unwrap(),
        allowed_audiences: vec!["https://api.test".into(), "https://other.test".into()],
        ..Client::new("svc".into(), "S".into(), SecretHash::of("s"), 0)
    }
}

fn original(scope: &str, exp: i64) -> AccessTokenClaims {
    AccessTokenClaims {
        iss: "https://issuer.test".into(),
        sub: "svc".into(),
        client_id: "svc".into(),
        aud: "https://api.test".into(),
        scope: Some(scope.into()).filter(|s: &String| !s.is_empty()),
        iat: NOW - 100,
        nbf: NOW - 100,
        exp,
        jti: "root".into(),
        cnf: None,
        derived_from: Vec::new(),
    }
}

fn shape(
    original: &AccessTokenClaims,
    client: &Client,
    scope: Option<&str>,
    targets: &[&str],
) -> Result<TokenShape, OAuthError> {
    let request = DownscopeRequest { scope, targets };
    downscope(
        original,
        client,
        &request,
        Confirmation::default(),
        &policy(),
        NOW,
    )
}

fn code(result: Result<TokenShape, OAuthError>) -> &'static str {
    result.unwrap_err().code()
}

#[test]
fn scopes_narrow_and_default_to_the_originals() {
    let token = original("read write", NOW + 600);
    let got = shape(&token, &client(), Some("read"), &[]).unwrap();
    assert_eq!(got.scopes.to_string(), "read");
    let got = shape(&token, &client(), None, &[]).unwrap();
    assert_eq!(got.scopes.to_string(), "read write");
    let got = shape(&token, &client(), Some(""), &[]).unwrap();
    assert_eq!(got.scopes.to_string(), "read write");
}

#[test]
fn scopes_never_grow() {
    let token = original("read", NOW + 600);
    assert_eq!(
        code(shape(&token, &client(), Some("read write"), &[])),
        "invalid_scope"
    );
    assert_eq!(
        code(shape(&token, &client(), Some("read  x"), &[])),
        "invalid_scope"
    );
    let unscoped = original("", NOW + 600);
    assert_eq!(
        code(shape(&unscoped, &client(), Some("read"), &[])),
        "invalid_scope"
    );
}

#[test]
fn scopes_the_client_lost_are_not_carried_over() {
    let token = original("read write", NOW + 600);
    let shrunk = Client {
        allowed_scopes: ScopeSet::parse("read").unwrap(),
        ..client()
    };
    let got = shape(&token, &shrunk, None, &[]).unwrap();
    assert_eq!(got.scopes.to_string(), "read");
    assert_eq!(
        code(shape(&token, &shrunk, Some("write"), &[])),
        "invalid_scope"
    );
}

#[test]
fn the_audience_stays_the_originals() {
    let token = original("read", NOW + 600);
    let got = shape(&token, &client(), None, &["https://api.test"]).unwrap();
    assert_eq!(got.audience, "https://api.test");
    let twice = ["https://api.test", "https://api.test"];
    assert!(shape(&token, &client(), None, &twice).is_ok());
    for targets in [
        &["https://other.test"][..],
        &["https://api.test", "https://other.test"][..],
    ] {
        assert_eq!(
            code(shape(&token, &client(), None, targets)),
            "invalid_target"
        );
    }
    let moved = Client {
        allowed_audiences: vec!["https://other.test".into()],
        ..client()
    };
    assert_eq!(code(shape(&token, &moved, None, &[])), "invalid_target");
}

#[test]
fn the_default_audience_stays_allowed_for_a_client_without_audiences() {
    let token = AccessTokenClaims {
        aud: "default-aud".into(),
        ..original("read", NOW + 600)
    };
    let bare = Client {
        allowed_audiences: Vec::new(),
        ..client()
    };
    assert_eq!(
        shape(&token, &bare, None, &[]).unwrap().audience,
        "default-aud"
    );
}

#[test]
fn the_life_never_outlasts_the_original() {
    let got = shape(&original("read", NOW + 60), &client(), None, &[]).unwrap();
    assert_eq!(got.lifetime_secs, 60);
    let got = shape(&original("read", NOW + 5_000), &client(), None, &[]).unwrap();
    assert_eq!(got.lifetime_secs, 900, "the client's lifetime when shorter");
    assert_eq!(
        code(shape(&original("read", NOW), &client(), None, &[])),
        "invalid_request"
    );
}

#[test]
fn the_ancestry_runs_from_the_root_and_is_bounded() {
    let root = original("read", NOW + 600);
    let child = shape(&root, &client(), None, &[]).unwrap();
    assert_eq!(child.derived_from, ["root"]);
    let child_claims = AccessTokenClaims {
        jti: "child".into(),
        derived_from: child.derived_from,
        ..root.clone()
    };
    let grandchild = shape(&child_claims, &client(), None, &[]).unwrap();
    assert_eq!(grandchild.derived_from, ["root", "child"]);

    let deep = AccessTokenClaims {
        derived_from: (0..MAX_DERIVATION_DEPTH).map(|i| format!("j{i}")).collect(),
        ..root
    };
    assert_eq!(code(shape(&deep, &client(), None, &[])), "invalid_request");
}

#[test]
fn a_dpop_bound_original_needs_a_proof_by_its_key() {
    let bound = Confirmation {
        jkt: Some("k1".into()),
        x5t_s256: None,
    };
    let got = derived_binding(Some(&bound), Some("k1".into()), None).unwrap();
    assert_eq!(got, bound);
    for proof in [None, Some("k2".to_owned())] {
        assert_eq!(
            derived_binding(Some(&bound), proof, None)
                .unwrap_err()
                .code(),
            "invalid_dpop_proof"
        );
    }
}

#[test]
fn a_certificate_bound_original_needs_its_certificate() {
    let bound = Confirmation {
        jkt: None,
        x5t_s256: Some("t1".into()),
    };
    assert_eq!(
        derived_binding(Some(&bound), None, Some("t1")).unwrap(),
        bound
    );
    for seen in [None, Some("t2")] {
        assert_eq!(
            derived_binding(Some(&bound), None, seen)
                .unwrap_err()
                .code(),
            "invalid_request"
        );
    }
}

#[test]
fn a_bearer_original_may_become_bound_but_not_the_reverse() {
    assert_eq!(
        derived_binding(None, None, Some("t1")).unwrap(),
        Confirmation::default(),
        "a certificate alone binds nothing new"
    );
    assert_eq!(
        derived_binding(None, Some("k1".into()), None)
            .unwrap()
            .jkt
            .as_deref(),
        Some("k1")
    );
}
