//! The audit trail: who changed what. Each administrative change (from the
//! CLI or the admin API) is recorded in the store in the same transaction
//! as the change, then written to the log as one JSON line whose `event`
//! field is `audit.<action>`. Records never hold a secret or a secret hash:
//! a changed secret shows as [`REDACTED`].
//!
//! Security events (bursts of failed client authentications, the per-IP
//! guard refusing a caller) are log lines only, see [`security_event`]: a
//! request never writes to the store to be audited.

use serde::Serialize;
use serde_json::Value;

/// What a changed secret or secret hash shows as in a record.
pub const REDACTED: &str = "[redacted]";

/// Who made a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Actor {
    /// `cli`, `admin_api` or `registration`.
    pub actor: String,
    /// The OS user of the CLI, or the admin client's id.
    pub actor_id: String,
    /// The request id of an API call.
    pub request_id: Option<String>,
    /// The peer address of an API call.
    pub peer_ip: Option<String>,
}

impl Actor {
    /// The command line, run by the OS user `user`.
    pub fn cli(user: &str) -> Self {
        Self {
            actor: "cli".into(),
            actor_id: user.to_owned(),
            request_id: None,
            peer_ip: None,
        }
    }

    /// An admin API call by the client `client_id`.
    pub fn admin_api(client_id: &str, request_id: &str, peer_ip: Option<String>) -> Self {
        Self {
            actor: "admin_api".into(),
            actor_id: client_id.to_owned(),
            request_id: Some(request_id.to_owned()),
            peer_ip,
        }
    }

    /// A dynamic registration call (RFC 7591/7592) by `client_id`: the
    /// holder of an initial access token, or the registered client itself.
    pub fn registration(client_id: &str, request_id: &str, peer_ip: Option<String>) -> Self {
        Self {
            actor: "registration".into(),
            ..Self::admin_api(client_id, request_id, peer_ip)
        }
    }

    /// A record of `action` on `target` at `at`.
    pub fn entry(&self, action: Action, target: &str, changes: Value, at: i64) -> AuditEntry {
        AuditEntry {
            at,
            actor: self.clone(),
            action: action.name().to_owned(),
            target: target.to_owned(),
            changes,
        }
    }
}

/// The changes that are audited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// A client was created.
    ClientCreate,
    /// A client was registered through dynamic registration.
    ClientRegister,
    /// A client's settings changed.
    ClientUpdate,
    /// A client got a new secret.
    ClientRotateSecret,
    /// A client was disabled.
    ClientDisable,
    /// A client was enabled.
    ClientEnable,
    /// A client was deleted.
    ClientDelete,
    /// One token was revoked by `jti`.
    TokenRevoke,
    /// Every token of a client issued until then was revoked.
    ClientTokensRevoke,
    /// An operator rotated the signing keys.
    KeyRotate,
    /// An operator imported a signing key.
    KeyImport,
    /// An operator retired a signing key.
    KeyRetire,
    /// A client got a federated subject.
    FederatedSubjectAdd,
    /// A client lost a federated subject.
    FederatedSubjectRemove,
}

impl Action {
    /// The stable name stored and logged (`event` is `audit.<name>`).
    pub fn name(self) -> &'static str {
        match self {
            Self::ClientCreate => "client.create",
            Self::ClientRegister => "client.register",
            Self::ClientUpdate => "client.update",
            Self::ClientRotateSecret => "client.rotate_secret",
            Self::ClientDisable => "client.disable",
            Self::ClientEnable => "client.enable",
            Self::ClientDelete => "client.delete",
            Self::TokenRevoke => "token.revoke",
            Self::ClientTokensRevoke => "client.revoke_tokens",
            Self::KeyRotate => "key.rotate",
            Self::KeyImport => "key.import",
            Self::KeyRetire => "key.retire",
            Self::FederatedSubjectAdd => "client.federated_subject.add",
            Self::FederatedSubjectRemove => "client.federated_subject.remove",
        }
    }
}

/// One audit record before it is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    /// When (Unix seconds).
    pub at: i64,
    /// Who.
    #[serde(flatten)]
    pub actor: Actor,
    /// What (an [`Action`] name; a newer binary may have written others).
    pub action: String,
    /// The client id, `jti` or kid the change is about.
    pub target: String,
    /// The changed fields, `{"field": {"from": .., "to": ..}}`, secrets redacted.
    pub changes: Value,
}

/// A stored audit record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditRecord {
    /// Its place in the trail, increasing.
    pub seq: i64,
    /// The record.
    #[serde(flatten)]
    pub entry: AuditEntry,
}

/// Which records `audit list` shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Only records at or after this time (Unix seconds).
    pub since: Option<i64>,
    /// Only records about this client (as target or as acting admin client).
    pub client: Option<String>,
    /// At most this many, the newest (0: no limit).
    pub limit: u32,
}

/// Writes a committed record as a JSON log line (`target: audit`).
pub fn log(entry: &AuditEntry) {
    let event = format!("audit.{}", entry.action);
    tracing::info!(
        target: "audit",
        event = event.as_str(),
        at = entry.at,
        actor = entry.actor.actor.as_str(),
        actor_id = entry.actor.actor_id.as_str(),
        request_id = entry.actor.request_id.as_deref().unwrap_or(""),
        peer_ip = entry.actor.peer_ip.as_deref().unwrap_or(""),
        action = entry.action.as_str(),
        target_id = entry.target.as_str(),
        changes = %entry.changes,
        "audit record"
    );
}

/// Security events: logged, never stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityEvent {
    /// A burst of failed client authentications reached the server-wide
    /// ceiling.
    ClientAuthFailureBurst,
    /// A caller failed client authentication too often: the per-IP guard
    /// blocks it for a while.
    FailedAuthGuardTripped,
}

impl SecurityEvent {
    /// The stable `event` field.
    pub fn name(self) -> &'static str {
        match self {
            Self::ClientAuthFailureBurst => "security.client_auth_failure_burst",
            Self::FailedAuthGuardTripped => "security.failed_auth_guard_tripped",
        }
    }
}

/// Writes a security event as a JSON log line (`target: security`).
pub fn security_event(event: SecurityEvent, peer_ip: Option<std::net::IpAddr>, detail: &str) {
    tracing::warn!(
        target: "security",
        event = event.name(),
        peer_ip = peer_ip.map(|ip| ip.to_string()).unwrap_or_default(),
        detail,
        "security event"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_serialize_flat_with_the_actor() {
        let actor = Actor::admin_api("ops", "req-1", Some("127.0.0.1".into()));
        let entry = actor.entry(
            Action::ClientDisable,
            "svc",
            serde_json::json!({"enabled": {"from": true, "to": false}}),
            10,
        );
        let json = serde_json::to_value(AuditRecord { seq: 3, entry }).unwrap();
        assert_eq!(json["seq"], 3);
        assert_eq!(json["actor"], "admin_api");
        assert_eq!(json["actor_id"], "ops");
        assert_eq!(json["request_id"], "req-1");
        assert_eq!(json["action"], "client.disable");
        assert_eq!(json["target"], "svc");
        assert_eq!(json["changes"]["enabled"]["to"], false);
        assert_eq!(Actor::cli("root").request_id, None);
    }
}
