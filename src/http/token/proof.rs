//! The DPoP proof of a token request (RFC 9449 4.3): at most one `DPoP`
//! header, a proof for `POST` to the token endpoint, checked against this
//! instance's replay window. A refusal comes with its reason for the
//! access log.

use crate::domain::dpop::ProofTarget;
use crate::domain::error::OAuthError;
use crate::dpop::DpopError;
use crate::state::AppState;

/// A refused proof: the error for the caller, the reason for the log.
pub(super) type Refusal = (OAuthError, &'static str);

/// The key (RFC 7638 thumbprint) of the request's DPoP proof, if it sent
/// one; `required`: the client must send one (`require_dpop`).
pub(super) fn proof_key(
    state: &AppState,
    headers: &http::HeaderMap,
    required: bool,
) -> Result<Option<String>, Refusal> {
    let invalid = |description: &'static str, reason| {
        (OAuthError::InvalidDpopProof(description.into()), reason)
    };
    let mut proofs = headers.get_all("dpop").iter();
    let proof = match (proofs.next(), proofs.next()) {
        (None, _) if required => {
            return Err(invalid(
                "this client must send a DPoP proof",
                "dpop_required",
            ));
        }
        (None, _) => return Ok(None),
        (Some(_), Some(_)) => return Err(invalid("send one DPoP header", "dpop_repeated")),
        (Some(proof), None) => proof,
    };
    let proof = proof
        .to_str()
        .map_err(|_| invalid("the DPoP proof is not a JWT", "dpop_malformed"))?;
    let target = ProofTarget {
        method: "POST",
        url: &state.token_endpoint,
        access_token: None,
    };
    match state.dpop.check(proof, &target, state.now()) {
        Ok(checked) => Ok(Some(checked.jkt)),
        Err(DpopError::Proof(e)) => {
            Err((OAuthError::InvalidDpopProof(e.to_string().into()), e.name()))
        }
        Err(DpopError::ReplayWindowFull) => Err((
            OAuthError::TemporarilyUnavailable("too many DPoP proofs at once; retry".into()),
            "dpop_replay_window_full",
        )),
    }
}
