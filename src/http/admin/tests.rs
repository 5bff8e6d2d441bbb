use std::collections::BTreeSet;

use super::*;

fn spec_routes() -> BTreeSet<(String, String)> {
    let spec: Value = serde_json::from_str(OPENAPI).unwrap();
    assert_eq!(spec["openapi"], "3.1.0");
    let mut routes = BTreeSet::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            routes.insert((method.to_ascii_uppercase(), path.clone()));
        }
    }
    routes
}

#[test]
fn the_openapi_document_describes_exactly_the_routes() {
    let served: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p, _)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    assert_eq!(spec_routes(), served);
}

#[test]
fn every_route_dispatches_to_its_operation_and_allow_lists_its_methods() {
    for (method, template, operation) in ROUTES {
        let path = template.replace("{client_id}", "svc-1");
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let (found, id) = route(&method, &path).unwrap();
        assert_eq!(found, *operation, "{method} {path}");
        assert_eq!(id.is_some(), template.contains("{client_id}"));
        let methods: BTreeSet<&str> = ROUTES
            .iter()
            .filter(|(_, t, _)| t == template)
            .map(|(m, _, _)| *m)
            .collect();
        let allowed: BTreeSet<&str> = allow(template).split(", ").collect();
        assert_eq!(allowed, methods, "{template}");
    }
}

#[test]
fn unknown_paths_and_methods_are_refused() {
    assert!(matches!(
        route(&Method::PUT, "/clients"),
        Err(ApiError::MethodNotAllowed("GET, POST"))
    ));
    for path in [
        "",
        "/",
        "/clients/",
        "/clients//disable",
        "/clients/a/b",
        "/keys/",
        "/nope",
    ] {
        assert!(
            matches!(route(&Method::GET, path), Err(ApiError::NotFound)),
            "{path}"
        );
    }
}

#[test]
fn bodies_parse_strictly() {
    let update: UpdateBody = parse_body(br#"{"token_lifetime_secs": null}"#).unwrap();
    assert_eq!(update.token_lifetime_secs, Some(None));
    assert_eq!(update.rate_limit_rps, None);
    let rotate: RotateSecretBody = parse_body(b"").unwrap();
    assert_eq!(rotate.grace_secs, 86_400);
    assert!(parse_body::<UpdateBody>(br#"{"secret": "x"}"#).is_err());
    assert!(parse_body::<CreateBody>(b"{").is_err());
}
