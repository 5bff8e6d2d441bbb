//! The admin API's federation routes: a client's federated subjects
//! (listed, added, removed, audited), and the trusted issuers' key state
//! on the instance that answers (with a refresh of one issuer's keys).

use http::{Response, StatusCode};
use serde::Deserialize;
use serde_json::json;

use super::{Call, Operation, answer, parse_body};
use crate::admin::AdminError;
use crate::admin::federated::{
    add_federated_subject, federated_subjects_of, remove_federated_subject, view,
};
use crate::domain::federation::FederatedSubject;
use crate::federation::IssuerStatus;
use crate::http::error::ApiError;
use crate::http::response::Body;

/// The body of an addition or removal.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubjectBody {
    issuer: String,
    subject: String,
}

/// `POST /federation/refresh`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RefreshBody {
    issuer: String,
}

impl Call<'_> {
    /// The federation operations.
    pub(super) async fn federation(
        &self,
        operation: Operation,
    ) -> Result<Response<Body>, ApiError> {
        let store = self.state.store.as_ref();
        let federation = &self.state.federation;
        match operation {
            Operation::ListIssuers => {
                let issuers: Vec<_> = federation.statuses().iter().map(issuer_view).collect();
                Ok(answer(StatusCode::OK, &json!({ "issuers": issuers })))
            }
            Operation::RefreshIssuer => {
                let body: RefreshBody = parse_body(self.body)?;
                let status = federation.refresh(&body.issuer).await.ok_or_else(|| {
                    AdminError::Invalid(format!("no trusted issuer named {:?}", body.issuer))
                })?;
                Ok(answer(StatusCode::OK, &issuer_view(&status)))
            }
            Operation::AddFederatedSubject | Operation::RemoveFederatedSubject => {
                let body: SubjectBody = parse_body(self.body)?;
                let subject = FederatedSubject {
                    client_id: self.id.to_owned(),
                    issuer: body.issuer,
                    subject: body.subject,
                };
                if operation == Operation::AddFederatedSubject {
                    let known: Vec<String> =
                        federation.statuses().into_iter().map(|s| s.name).collect();
                    let known: Vec<&str> = known.iter().map(String::as_str).collect();
                    add_federated_subject(store, &subject, Some(&known), self.actor, self.now)
                        .await?;
                } else {
                    remove_federated_subject(store, &subject, self.actor, self.now).await?;
                }
                // This instance maps with the change at once; the others
                // at their next change-feed poll.
                federation.subjects_changed();
                self.subjects(StatusCode::OK).await
            }
            _ => self.subjects(StatusCode::OK).await,
        }
    }

    async fn subjects(&self, status: StatusCode) -> Result<Response<Body>, ApiError> {
        let subjects = federated_subjects_of(self.state.store.as_ref(), self.id).await?;
        let shown: Vec<_> = subjects.iter().map(view).collect();
        Ok(answer(
            status,
            &json!({ "client_id": self.id, "federated_subjects": shown }),
        ))
    }
}

/// A trusted issuer's state as shown.
fn issuer_view(s: &IssuerStatus) -> serde_json::Value {
    let kids: Vec<&str> = s.keys.keys.iter().flat_map(|k| k.kids()).collect();
    json!({
        "name": s.name,
        "issuer": s.issuer,
        "jwks_uri": s.jwks_uri,
        "keys": s.key_count(),
        "kids": kids,
        "fetched_secs_ago": s.keys.age.map(|a| a.as_secs()),
        "error": s.error(),
    })
}
