//! What operators ask of the keys (`auth-server keys ...`), and taking over
//! the signing key file of a data directory from before keys were stored.
//! Each is one conditional store write, decided by `keys::lifecycle`.

use std::path::Path;

use super::{KeyRing, KeyringError, legacy};
use crate::audit::{Action, Actor};
use crate::keys::lifecycle::{self, KeyRecord, KeyState};
use crate::keys::{SigningKey, pem_to_pkcs8};
use crate::store::KeyWrite;

impl KeyRing {
    /// `keys rotate`: publishes a new next key; returns it.
    pub async fn rotate(&self, actor: &Actor, now: i64) -> Result<KeyRecord, KeyringError> {
        let written = self
            .change(
                Some((actor, Action::KeyRotate, now)),
                |ring, records, policy| ring.writes(lifecycle::rotate(records, policy, now)?, now),
            )
            .await?;
        written.into_iter().next().ok_or(KeyringError::NoCurrentKey)
    }

    /// `keys rotate --now`: a new current key at once, the old one retired;
    /// returns the new key's record.
    pub async fn rotate_now(&self, actor: &Actor, now: i64) -> Result<KeyRecord, KeyringError> {
        let written = self
            .change(Some((actor, Action::KeyRotate, now)), |ring, records, _| {
                ring.writes(lifecycle::rotate_now(records, now), now)
            })
            .await?;
        written
            .into_iter()
            .find(|r| r.state == KeyState::Current)
            .ok_or(KeyringError::NoCurrentKey)
    }

    /// `keys retire KID`: a next or previous key leaves the JWKS now.
    pub async fn retire(
        &self,
        kid: &str,
        actor: &Actor,
        now: i64,
    ) -> Result<KeyRecord, KeyringError> {
        let written = self
            .change(Some((actor, Action::KeyRetire, now)), |ring, records, _| {
                ring.writes(lifecycle::retire(records, kid, now)?, now)
            })
            .await?;
        written
            .into_iter()
            .next()
            .ok_or_else(|| lifecycle::LifecycleError::UnknownKey(kid.to_owned()).into())
    }

    /// `keys import`: a PKCS#8 PEM key becomes the next key.
    pub async fn import(
        &self,
        pem: &[u8],
        actor: &Actor,
        now: i64,
    ) -> Result<KeyRecord, KeyringError> {
        let der = pem_to_pkcs8(pem)?;
        let key = SigningKey::from_pkcs8_any(&der)?;
        if key.alg() != self.settings.algorithm {
            return Err(KeyringError::WrongAlgorithm {
                given: key.alg().name(),
                configured: self.settings.algorithm.name(),
            });
        }
        let written = self
            .change(
                Some((actor, Action::KeyImport, now)),
                |ring, records, policy| {
                    let record = lifecycle::import(records, key.kid(), key.alg(), policy, now)?;
                    Ok(vec![KeyWrite::Insert(ring.seal(record, &key, &der)?)])
                },
            )
            .await?;
        written.into_iter().next().ok_or(KeyringError::NoCurrentKey)
    }

    /// Imports the signing key file of a data directory from before keys
    /// were stored (in `dir`), once; says in the log that it is no longer
    /// read. A broken file stops the start only while nothing is stored.
    pub async fn adopt_legacy_file(&self, dir: &Path, now: i64) -> Result<(), KeyringError> {
        let legacy = match legacy::read(dir, self.settings.algorithm) {
            Ok(Some(legacy)) => legacy,
            Ok(None) => return Ok(()),
            Err(e) => {
                if self.store.signing_keys().await?.is_empty() {
                    return Err(e.into());
                }
                tracing::warn!(error = %e, "ignoring the signing key file: keys live in the store");
                return Ok(());
            }
        };
        let kid = legacy.key.kid().to_owned();
        let written = self
            .change(None, |ring, records, policy| {
                match lifecycle::adopt(records, &kid, legacy.key.alg(), policy, now) {
                    Some(record) => Ok(vec![KeyWrite::Insert(ring.seal(
                        record,
                        &legacy.key,
                        &legacy.pkcs8,
                    )?)]),
                    None => Ok(Vec::new()),
                }
            })
            .await?;
        let state = written.first().map(|r| r.state.name());
        tracing::info!(
            file = %legacy.path.display(),
            kid,
            imported_as = state.unwrap_or("already stored"),
            "signing keys live in the store; this key file is no longer read (it is kept for a \
             rollback to the previous binary)"
        );
        Ok(())
    }
}
