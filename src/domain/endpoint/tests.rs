use super::*;

fn n(url: &str) -> String {
    normalize_url(url).unwrap().to_canonical()
}

#[test]
fn normalisation() {
    assert_eq!(
        n("https://API.Example.com/v1/users"),
        "https://api.example.com:443/v1/users"
    );
    assert_eq!(
        n("HTTPS://api.example.com:443/v1/users/"),
        "https://api.example.com:443/v1/users"
    );
    assert_eq!(
        n("http://api.example.com:80/v1"),
        "http://api.example.com:80/v1"
    );
    assert_eq!(
        n("https://api.example.com:8443/v1"),
        "https://api.example.com:8443/v1"
    );
    assert_eq!(
        n("https://api.example.com/v1/users/../admin"),
        "https://api.example.com:443/v1/admin"
    );
    assert_eq!(
        n("https://api.example.com/v1/users/%2e%2e/admin"),
        "https://api.example.com:443/v1/admin"
    );
    assert_eq!(
        n("https://api.example.com/v1/./users"),
        "https://api.example.com:443/v1/users"
    );
    assert_eq!(
        n("https://api.example.com/v1/%75sers"),
        "https://api.example.com:443/v1/users"
    );
    assert_eq!(
        n("https://api.example.com/v1/users?x=/admin#frag"),
        "https://api.example.com:443/v1/users"
    );
    assert_eq!(
        n("https://api.example.com./v1"),
        "https://api.example.com:443/v1"
    );
    assert_eq!(n("https://api.example.com"), "https://api.example.com:443/");
}

#[test]
fn normalising_twice_is_normalising_once() {
    for raw in [
        "https://API.example.com:443/v1/a/../b/%7euser/",
        "http://h/x/./y",
        "https://h/%41%42",
        "https://h/a%3bb/%3f/%23/%20x/%41",
        "https://h/%e2%82%ac/%22%3c%3e/caf\u{e9}",
    ] {
        let once = normalize_url(raw).unwrap();
        let again = normalize_url(&once.to_canonical()).unwrap();
        assert_eq!(once, again, "{raw}");
    }
}

#[test]
fn ambiguous_and_foreign_urls_are_refused() {
    for bad in [
        "https://api.example.com@evil.test/v1/users",
        "https://user:pw@api.example.com/v1",
        "https://api.example.com/v1/users%2F..%2Fadmin",
        "https://api.example.com/v1/users%5c..%5cadmin",
        "https://api.example.com/v1/a%00b",
        "https://api.example.com/v1/%zz",
        "https://api.example.com/v1/%e2%28",
        "ftp://api.example.com/v1",
        "/v1/users",
        "api.example.com/v1",
        "https:///v1",
        "https:api.example.com/v1",
        "https:\\\\api.example.com\\v1",
        "",
        "https://api.example.com/v1/\nx",
        // The `..` resolves away the evidence; a backend that decodes `%2f`,
        // merges slashes or drops `;` parameters routes above `/v1/users`.
        "https://api.example.com/v1/users/%2f/../../admin",
        "https://api.example.com/v1/users/x%2f..%2f..%2f/../y",
        "https://api.example.com/v1/users//../admin",
        "https://api.example.com/v1/users\\\\..\\admin",
        "https://api.example.com/v1/users/..;/../admin",
        "https://api.example.com/v1/users/..%3b/../admin",
        "https://api.example.com/v1/users/;x/../admin",
    ] {
        assert!(normalize_url(bad).is_err(), "{bad}");
    }
}

#[test]
fn only_unreserved_escapes_are_decoded() {
    assert_eq!(n("https://h/%7e%2D%5f%2e%41z"), "https://h:443/~-_.Az");
    assert_eq!(
        n("https://h/a%20b/a%3bb/%3F"),
        "https://h:443/a%20b/a%3Bb/%3F"
    );
    // Raw non-ASCII is percent-encoded by the parser, upper-case, and
    // compares equal to the escaped spelling.
    assert_eq!(n("https://h/caf\u{e9}"), n("https://h/caf%c3%a9"));
    assert_eq!(n("https://h/caf\u{e9}"), "https://h:443/caf%C3%A9");
    // An escaped `*` is a literal, not a wildcard.
    let pattern = EndpointPattern::parse("https://h/v1/%2a").unwrap();
    assert!(!pattern.matches(&normalize_url("https://h/v1/users").unwrap()));
    assert!(pattern.matches(&normalize_url("https://h/v1/%2A").unwrap()));
}

#[test]
fn double_encoded_and_lookalike_dots_and_separators_are_refused() {
    for bad in [
        // Double encoding: `%25` is `%` to a backend that decodes twice.
        "https://api.example.com/v1/%252e%252e/admin",
        "https://api.example.com/v1/..%252f..%252fadmin",
        "https://api.example.com/v1/..%255cadmin",
        "https://api.example.com/v1/%252E%252E/admin",
        "https://api.example.com/v1/a%25/admin",
        "https://api.example.com/v1/x/%252e%252e/../admin",
        // Escapes that are not `%` and two hex digits.
        "https://api.example.com/v1/%%32%65%%32%65/admin",
        "https://api.example.com/v1/%u002e%u002e/admin",
        "https://api.example.com/v1/x/%/../admin",
        // Overlong UTF-8 for `.` and `/`.
        "https://api.example.com/v1/%c0%ae%c0%ae/admin",
        "https://api.example.com/v1/..%c0%afadmin",
        // NFKC folds these into dots and separators: raw and escaped.
        "https://api.example.com/v1/\u{ff0e}\u{ff0e}/admin",
        "https://api.example.com/v1/%EF%BC%8E%EF%BC%8E/admin",
        "https://api.example.com/v1/%ef%bc%8e%ef%bc%8e/admin",
        "https://api.example.com/v1/.\u{ff0e}/admin",
        "https://api.example.com/v1/..\u{ff0f}admin",
        "https://api.example.com/v1/..%EF%BC%8Fadmin",
        "https://api.example.com/v1/..\u{ff3c}admin",
        "https://api.example.com/v1/\u{2024}\u{2024}/admin",
        "https://api.example.com/v1/\u{fe52}\u{fe52}/admin",
        "https://api.example.com/v1/\u{2025}/admin",
        "https://api.example.com/v1/%E2%80%A5/admin",
        "https://api.example.com/v1/\u{2026}/admin",
        "https://api.example.com/v1/..\u{2215}admin",
        "https://api.example.com/v1/..\u{2044}admin",
        "https://api.example.com/v1/..\u{fe68}admin",
        "https://api.example.com/v1/\u{ff05}2e\u{ff05}2e/admin",
        // The evidence removed by a later `..` is still refused.
        "https://api.example.com/v1/x/\u{ff0e}\u{ff0e}/../admin",
        // Invisible characters that folding deletes, and encoded controls.
        "https://api.example.com/v1/.\u{200b}./admin",
        "https://api.example.com/v1/.%E2%80%8B./admin",
        "https://api.example.com/v1/.%09./admin",
        // Dots and spaces that a trimming backend reads as `..` or nothing.
        "https://api.example.com/v1/.../admin",
        "https://api.example.com/v1/..%20/admin",
        "https://api.example.com/v1/x/%20/../admin",
        "https://api.example.com/v1/..%C2%A0/admin",
        "https://api.example.com/v1/x/...;/../admin",
    ] {
        assert_eq!(
            normalize_url(bad),
            Err(EndpointError::Ambiguous),
            "{}",
            bad.escape_default()
        );
    }
}

/// The NFKC part of the lookalike table is complete: every code point whose
/// NFKC form holds `.`, `/`, `\` or `%` is in it.
#[test]
fn lookalike_table_covers_nfkc() {
    use unicode_normalization::UnicodeNormalization;
    let missing: Vec<String> = (0x80..=0x10_FFFF_u32)
        .filter_map(char::from_u32)
        .filter(|c| {
            let folded: String = c.to_string().nfkc().collect();
            folded.contains(['.', '/', '\\', '%']) && !lookalike::reads_as_structure(*c)
        })
        .map(|c| format!("U+{:04X}", u32::from(c)))
        .collect();
    assert!(missing.is_empty(), "not in the table: {missing:?}");
}

fn rules() -> ScopeRules {
    let rule = |scope: &str, patterns: &[&str], methods: &[&str]| EndpointRule {
        scope: scope.into(),
        patterns: patterns
            .iter()
            .map(|p| EndpointPattern::parse(p).unwrap())
            .collect(),
        methods: methods.iter().map(|m| (*m).to_owned()).collect(),
    };
    ScopeRules::new(vec![
        rule(
            "users:read",
            &["https://api.example.com/v1/users/**"],
            &["GET"],
        ),
        rule(
            "users:write",
            &["https://api.example.com/v1/users/**"],
            &["POST", "PUT"],
        ),
        rule(
            "orders",
            &["https://api.example.com/v1/orders/*/items"],
            &[],
        ),
    ])
}

fn allowed(scopes: &str, url: &str, method: &str) -> Result<(), String> {
    rules().authorize(
        &ScopeSet::parse(scopes).unwrap(),
        &normalize_url(url).unwrap(),
        method,
    )
}

#[test]
fn rules_grant_only_what_they_name() {
    assert!(allowed("users:read", "https://api.example.com/v1/users", "GET").is_ok());
    assert!(allowed("users:read", "https://api.example.com/v1/users/42/x", "GET").is_ok());
    assert_eq!(
        allowed("users:read", "https://api.example.com/v1/users/42", "POST"),
        Err("users:write".into())
    );
    assert_eq!(
        allowed(
            "users:read",
            "https://api.example.com/v1/users/../admin",
            "GET"
        ),
        Err(String::new())
    );
    assert!(allowed("users:read", "https://api.example.com/v1/userss", "GET").is_err());
    assert!(
        allowed(
            "users:read",
            "https://API.EXAMPLE.COM:443/v1/users/1",
            "GET"
        )
        .is_ok()
    );
    assert!(allowed("users:read", "https://api.example.com/V1/users/1", "GET").is_err());
    assert!(allowed("users:read", "http://api.example.com/v1/users/1", "GET").is_err());
    assert!(
        allowed(
            "users:read",
            "https://api.example.com:8443/v1/users/1",
            "GET"
        )
        .is_err()
    );
    assert!(
        allowed(
            "users:read",
            "https://api.example.com.evil.test/v1/users",
            "GET"
        )
        .is_err()
    );
    assert!(
        allowed(
            "orders",
            "https://api.example.com/v1/orders/7/items",
            "DELETE"
        )
        .is_ok()
    );
    assert!(allowed("orders", "https://api.example.com/v1/orders/items", "GET").is_err());
    assert!(
        allowed(
            "orders",
            "https://api.example.com/v1/orders/7/items/8",
            "GET"
        )
        .is_err()
    );
    assert!(allowed("", "https://api.example.com/v1/users", "GET").is_err());
}

#[test]
fn double_star_only_at_the_end() {
    assert!(EndpointPattern::parse("https://h/a/**/b").is_err());
    assert!(EndpointPattern::parse("https://h/**").is_ok());
}
