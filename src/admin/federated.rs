//! A client's federated subjects: listed, added and removed, each change
//! audited in the same transaction (CLI and admin API alike).

use serde_json::json;

use super::AdminError;
use crate::audit::{self, Action, Actor};
use crate::config::is_valid_issuer_name;
use crate::domain::federation::{FederatedSubject, MAX_SUBJECTS_PER_CLIENT, check_pattern};
use crate::store::{AuditedChange, ClientStore, Store, StoreError};

/// The federated subjects of `client_id` (which must exist).
pub async fn federated_subjects_of(
    store: &dyn ClientStore,
    client_id: &str,
) -> Result<Vec<FederatedSubject>, AdminError> {
    super::load(store, client_id).await?;
    let mut all = store.federated_subjects().await?;
    all.retain(|s| s.client_id == client_id);
    Ok(all)
}

/// Checks a subject to add or remove: the issuer's name and the pattern.
/// `known_issuers`, when given, are the configured names it must be one of.
pub fn check_subject(
    subject: &FederatedSubject,
    known_issuers: Option<&[&str]>,
) -> Result<(), AdminError> {
    if !is_valid_issuer_name(&subject.issuer) {
        return Err(AdminError::Invalid(
            "issuer must be a trusted issuer's name (a-z, 0-9, '-', '_')".into(),
        ));
    }
    if known_issuers.is_some_and(|known| !known.contains(&subject.issuer.as_str())) {
        return Err(AdminError::Invalid(format!(
            "issuer {:?} is not configured ([[federation.issuer]])",
            subject.issuer
        )));
    }
    check_pattern(&subject.subject).map_err(|e| AdminError::Invalid(format!("subject: {e}")))
}

/// Adds a federated subject to its client.
pub async fn add_federated_subject(
    store: &dyn Store,
    subject: &FederatedSubject,
    known_issuers: Option<&[&str]>,
    actor: &Actor,
    now: i64,
) -> Result<(), AdminError> {
    check_subject(subject, known_issuers)?;
    let listed = federated_subjects_of(store, &subject.client_id).await?;
    if listed.len() >= MAX_SUBJECTS_PER_CLIENT {
        return Err(AdminError::Invalid(format!(
            "a client lists at most {MAX_SUBJECTS_PER_CLIENT} federated subjects"
        )));
    }
    let entry = actor.entry(
        Action::FederatedSubjectAdd,
        &subject.client_id,
        json!({ "federated_subject": { "from": null, "to": view(subject) } }),
        now,
    );
    let change = AuditedChange::AddFederatedSubject(subject.clone(), now);
    match store.write_audited(&change, &entry).await {
        Ok(true) => {
            audit::log(&entry);
            Ok(())
        }
        Ok(false) => Err(AdminError::NotFound(subject.client_id.clone())),
        Err(StoreError::Duplicate(_)) => Err(AdminError::Invalid(
            "the client lists this federated subject already".into(),
        )),
        Err(e) => Err(e.into()),
    }
}

/// Removes a federated subject from its client.
pub async fn remove_federated_subject(
    store: &dyn Store,
    subject: &FederatedSubject,
    actor: &Actor,
    now: i64,
) -> Result<(), AdminError> {
    super::load(store, &subject.client_id).await?;
    let entry = actor.entry(
        Action::FederatedSubjectRemove,
        &subject.client_id,
        json!({ "federated_subject": { "from": view(subject), "to": null } }),
        now,
    );
    let change = AuditedChange::RemoveFederatedSubject(subject.clone());
    if store.write_audited(&change, &entry).await? {
        audit::log(&entry);
        Ok(())
    } else {
        Err(AdminError::Invalid(
            "the client does not list this federated subject".into(),
        ))
    }
}

/// A federated subject as the CLI, the admin API and the audit trail show
/// it.
pub fn view(subject: &FederatedSubject) -> serde_json::Value {
    json!({ "issuer": subject.issuer, "subject": subject.subject })
}
