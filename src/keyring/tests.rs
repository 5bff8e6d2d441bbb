use super::*;
use crate::audit::Actor;
use crate::domain::client::{Client, SecretHash};
use crate::keys::pkcs8_pem;
use crate::store::ClientStore;
use crate::store::sqlite::SqliteStore;

const NOW: i64 = 1_000_000;

fn settings() -> KeySettings {
    KeySettings {
        algorithm: Algorithm::EdDSA,
        publish_ahead_secs: 900,
        rotation_period_secs: 90 * 86_400,
        default_lifetime_secs: 900,
        retire_leeway_secs: 300,
    }
}

struct Fixture {
    dir: tempfile::TempDir,
    kek_text: String,
}

impl Fixture {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("auth.db")).unwrap();
        store.migrate().await.unwrap();
        Self {
            dir,
            kek_text: Kek::generate_base64().unwrap(),
        }
    }

    /// A store of its own on the shared file, as another process has.
    fn store(&self) -> SqliteStore {
        SqliteStore::open(&self.dir.path().join("auth.db")).unwrap()
    }

    fn ring_with(&self, kek_text: &str) -> KeyRing {
        KeyRing::new(
            Arc::new(self.store()),
            Kek::from_base64(kek_text).unwrap(),
            KekSource::Environment,
            settings(),
        )
    }

    fn ring(&self) -> KeyRing {
        self.ring_with(&self.kek_text)
    }

    async fn states(&self) -> Vec<(String, KeyState)> {
        self.ring()
            .records()
            .await
            .unwrap()
            .into_iter()
            .map(|r| (r.kid, r.state))
            .collect()
    }
}

fn count(states: &[(String, KeyState)], state: KeyState) -> usize {
    states.iter().filter(|(_, s)| *s == state).count()
}

#[tokio::test]
async fn a_first_start_makes_one_key_that_every_ring_publishes_identically() {
    let f = Fixture::new().await;
    let (a, b) = (f.ring(), f.ring());
    let (ka, kb) = tokio::join!(a.start(f.dir.path(), NOW), b.start(f.dir.path(), NOW));
    let (ka, kb) = (ka.unwrap(), kb.unwrap());
    assert_eq!(count(&f.states().await, KeyState::Current), 1);
    assert_eq!(f.states().await.len(), 1, "one first key, whoever raced");
    assert_eq!(ka.jwks_json(), kb.jwks_json(), "byte-identical JWKS");
    assert_eq!(ka.active().kid(), kb.active().kid());
    let again = f.ring().load().await.unwrap();
    assert_eq!(again.jwks_json(), ka.jwks_json());
    let timeline = again.timeline().unwrap();
    assert_eq!(timeline.current_since, NOW);
    assert_eq!(timeline.next_promotion_at, Some(NOW + 90 * 86_400));
}

#[tokio::test]
async fn of_two_rings_promoting_at_once_exactly_one_writes() {
    let f = Fixture::new().await;
    let first = f.ring().start(f.dir.path(), NOW).await.unwrap();
    let next = f.ring().rotate(&Actor::cli("test"), NOW).await.unwrap();
    assert_eq!(next.promote_at, Some(NOW + 900));
    let published = f.ring().load().await.unwrap();
    assert!(published.accepts_kid(&next.kid), "next is published");
    assert_eq!(
        published.active().kid(),
        first.active().kid(),
        "but does not sign"
    );

    let (a, b, c) = (f.ring(), f.ring(), f.ring());
    let due = NOW + 900;
    let (wa, wb, wc) = tokio::join!(a.advance(due), b.advance(due), c.advance(due));
    let written = [wa.unwrap(), wb.unwrap(), wc.unwrap()];
    assert_eq!(
        written.iter().filter(|w| !w.is_empty()).count(),
        1,
        "{written:?}"
    );
    let states = f.states().await;
    assert_eq!(count(&states, KeyState::Current), 1);
    assert_eq!(count(&states, KeyState::Previous), 1);
    let keys = f.ring().load().await.unwrap();
    assert_eq!(keys.active().kid(), next.kid);
    assert!(
        keys.accepts_kid(first.active().kid()),
        "previous still accepted"
    );
    let jwks: serde_json::Value = serde_json::from_slice(keys.jwks_json()).unwrap();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(
        kids,
        [next.kid.as_str(), first.active().kid()],
        "current first"
    );
}

#[tokio::test]
async fn rotate_now_retires_the_old_key_out_of_the_set() {
    let f = Fixture::new().await;
    let old = f.ring().start(f.dir.path(), NOW).await.unwrap();
    let new = f
        .ring()
        .rotate_now(&Actor::cli("test"), NOW + 5)
        .await
        .unwrap();
    let keys = f.ring().load().await.unwrap();
    assert_eq!(keys.active().kid(), new.kid);
    assert!(!keys.accepts_kid(old.active().kid()));
    assert!(!String::from_utf8_lossy(keys.jwks_json()).contains(old.active().kid()));
    assert_eq!(count(&f.states().await, KeyState::Retired), 1);
}

#[tokio::test]
async fn a_replaced_key_stays_for_the_longest_client_lifetime() {
    let f = Fixture::new().await;
    let store = f.store();
    let mut client = Client::new("long".into(), "Long".into(), SecretHash::of("s"), 0);
    client.token_lifetime_secs = Some(7_200);
    store.insert_client(&client).await.unwrap();
    f.ring().start(f.dir.path(), NOW).await.unwrap();
    f.ring().rotate(&Actor::cli("test"), NOW).await.unwrap();
    f.ring().advance(NOW + 900).await.unwrap();
    let previous = f
        .ring()
        .records()
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.state == KeyState::Previous)
        .unwrap();
    assert_eq!(previous.retire_at, Some(NOW + 900 + 7_200 + 300));
}

#[tokio::test]
async fn a_wrong_kek_is_refused_by_name_and_writes_nothing() {
    let f = Fixture::new().await;
    f.ring().start(f.dir.path(), NOW).await.unwrap();
    let before = f.states().await;
    let other = Kek::generate_base64().unwrap();
    let wrong = f.ring_with(&other);
    for result in [
        wrong.load().await.map(|_| ()),
        wrong.rotate(&Actor::cli("test"), NOW).await.map(|_| ()),
        wrong.start(f.dir.path(), NOW).await.map(|_| ()),
    ] {
        let err = result.unwrap_err();
        assert!(matches!(err, KeyringError::WrongKek { .. }), "{err}");
        assert!(err.is_configuration());
        let text = err.to_string();
        assert!(
            !text.contains(&other) && !text.contains(&f.kek_text),
            "{text}"
        );
    }
    assert_eq!(f.states().await, before, "nothing written");
}

#[tokio::test]
async fn a_damaged_key_row_is_refused() {
    let f = Fixture::new().await;
    let keys = f.ring().start(f.dir.path(), NOW).await.unwrap();
    let conn = rusqlite::Connection::open(f.dir.path().join("auth.db")).unwrap();
    conn.execute(
        "UPDATE signing_keys SET sealed_key = randomblob(length(sealed_key))",
        [],
    )
    .unwrap();
    let err = f.ring().load().await.unwrap_err();
    assert!(
        matches!(&err, KeyringError::Damaged { kid, .. } if kid == keys.active().kid()),
        "{err}"
    );
}

#[tokio::test]
async fn the_pre_store_key_file_is_adopted_once_and_kept() {
    let f = Fixture::new().await;
    let certs = f.dir.path().join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    let file = certs.join("signing-eddsa.pem");
    let pem = pkcs8_pem(&generate_pkcs8(Algorithm::EdDSA).unwrap());
    std::fs::write(&file, &pem).unwrap();
    let file_kid = SigningKey::from_pem(Algorithm::EdDSA, pem.as_bytes())
        .unwrap()
        .kid()
        .to_owned();

    let keys = f.ring().start(&certs, NOW).await.unwrap();
    assert_eq!(
        keys.active().kid(),
        file_kid,
        "the file's key keeps signing"
    );
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        pem,
        "kept as it was"
    );
    f.ring().start(&certs, NOW + 1).await.unwrap();
    assert_eq!(f.states().await.len(), 1, "adopted once");

    // Another instance's own file, upgraded later: accepted until its
    // tokens expire, never signing.
    let other = f.dir.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    let other_pem = pkcs8_pem(&generate_pkcs8(Algorithm::EdDSA).unwrap());
    std::fs::write(other.join("signing-eddsa.pem"), &other_pem).unwrap();
    let keys = f.ring().start(&other, NOW + 2).await.unwrap();
    assert_eq!(keys.active().kid(), file_kid);
    assert_eq!(keys.keys().count(), 2);
    assert_eq!(count(&f.states().await, KeyState::Previous), 1);

    // A broken file stops only a start that has no key to fall back on.
    std::fs::write(other.join("signing-eddsa.pem"), "garbage").unwrap();
    f.ring().start(&other, NOW + 3).await.unwrap();
    let empty = Fixture::new().await;
    let err = empty.ring().start(&other, NOW).await.unwrap_err();
    assert!(matches!(err, KeyringError::Legacy(_)), "{err}");
}

#[tokio::test]
async fn an_imported_key_becomes_next_and_must_match_the_algorithm() {
    let f = Fixture::new().await;
    f.ring().start(f.dir.path(), NOW).await.unwrap();
    let es256 = pkcs8_pem(&generate_pkcs8(Algorithm::ES256).unwrap());
    let err = f
        .ring()
        .import(es256.as_bytes(), &Actor::cli("test"), NOW)
        .await
        .unwrap_err();
    assert!(matches!(err, KeyringError::WrongAlgorithm { .. }), "{err}");
    let pem = pkcs8_pem(&generate_pkcs8(Algorithm::EdDSA).unwrap());
    let next = f
        .ring()
        .import(pem.as_bytes(), &Actor::cli("test"), NOW)
        .await
        .unwrap();
    assert_eq!(next.state, KeyState::Next);
    let err = f
        .ring()
        .import(pem.as_bytes(), &Actor::cli("test"), NOW)
        .await
        .unwrap_err();
    assert!(matches!(err, KeyringError::Lifecycle(_)), "{err}");
    f.ring()
        .retire(&next.kid, &Actor::cli("test"), NOW + 1)
        .await
        .unwrap();
    assert!(!f.ring().load().await.unwrap().accepts_kid(&next.kid));
}
