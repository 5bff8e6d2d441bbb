//! The life of a signing key, decided on the stored records and `now`:
//! next (published, not signing yet) -> current (the one key that signs) ->
//! previous (published and accepted until every token it signed has
//! expired) -> retired (out of the JWKS, refused). Pure: every function here
//! returns the steps to write; [`crate::keyring`] writes them in one store
//! transaction, and a step whose key changed meanwhile fails that
//! transaction instead of applying twice.

use super::Algorithm;

/// Where a key is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyState {
    /// Published in the JWKS so resource servers cache it; signs nothing yet.
    Next,
    /// The key that signs new tokens; exactly one at a time.
    Current,
    /// Signed before the current key; published and accepted until every
    /// token it signed has expired.
    Previous,
    /// Out of the JWKS; tokens it signed are refused.
    Retired,
}

impl KeyState {
    /// Every state, in publishing order.
    pub const ALL: [Self; 4] = [Self::Current, Self::Next, Self::Previous, Self::Retired];

    /// The name stored and shown (`next`, `current`, `previous`, `retired`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Next => "next",
            Self::Current => "current",
            Self::Previous => "previous",
            Self::Retired => "retired",
        }
    }

    /// The state with this stored name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Position in [`KeyState::ALL`]: the order keys are published in.
    pub fn publishing_rank(self) -> usize {
        Self::ALL
            .iter()
            .position(|s| *s == self)
            .unwrap_or(Self::ALL.len())
    }

    /// True for the states in the JWKS, whose tokens are accepted.
    pub fn is_published(self) -> bool {
        self != Self::Retired
    }
}

/// What the store keeps about a key besides its material. Times are Unix
/// seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    /// RFC 7638 thumbprint of the public key; the JWS `kid`.
    pub kid: String,
    /// The algorithm it signs with.
    pub alg: Algorithm,
    /// Where it is in its life.
    pub state: KeyState,
    /// When it was made (or imported).
    pub created_at: i64,
    /// When a next key becomes current.
    pub promote_at: Option<i64>,
    /// When it became current.
    pub activated_at: Option<i64>,
    /// When it stopped signing.
    pub demoted_at: Option<i64>,
    /// When a previous key is retired: demoted plus the longest token
    /// lifetime plus leeway.
    pub retire_at: Option<i64>,
    /// When it was retired.
    pub retired_at: Option<i64>,
}

impl KeyRecord {
    /// A new key in `state` at `now`. A next key becomes current at
    /// `promote_at`; a current key signs from `now`.
    pub fn new(
        kid: String,
        alg: Algorithm,
        state: KeyState,
        promote_at: Option<i64>,
        now: i64,
    ) -> Self {
        Self {
            kid,
            alg,
            state,
            created_at: now,
            promote_at: promote_at.filter(|_| state == KeyState::Next),
            activated_at: (state == KeyState::Current).then_some(now),
            demoted_at: None,
            retire_at: None,
            retired_at: None,
        }
    }

    fn promoted(&self, now: i64) -> Self {
        Self {
            state: KeyState::Current,
            activated_at: Some(now),
            ..self.clone()
        }
    }

    fn demoted(&self, now: i64, policy: &LifecyclePolicy) -> Self {
        Self {
            state: KeyState::Previous,
            demoted_at: Some(now),
            retire_at: Some(now.saturating_add(policy.verify_window_secs)),
            ..self.clone()
        }
    }

    fn retired(&self, now: i64) -> Self {
        Self {
            state: KeyState::Retired,
            demoted_at: self.demoted_at.or(Some(now)),
            retired_at: Some(now),
            ..self.clone()
        }
    }
}

/// The timings every decision follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LifecyclePolicy {
    /// Seconds a next key is published before it signs: longer than the
    /// JWKS `max-age`, so every resource server's cached JWKS holds a key
    /// before any token carries it.
    pub publish_ahead_secs: i64,
    /// Seconds a key signs before the scheduled rotation replaces it; 0:
    /// only operators rotate.
    pub rotation_period_secs: i64,
    /// Seconds a previous key stays published after it stops signing: the
    /// longest lifetime a token can have been given, plus leeway.
    pub verify_window_secs: i64,
}

/// One write a decision asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Change a key that must still be in state `from`.
    Update {
        /// The state the key must be in for the write to apply.
        from: KeyState,
        /// The key as it is to be stored.
        record: KeyRecord,
    },
    /// Make a new key in `state`; a next key becomes current at `promote_at`.
    Create {
        /// Its first state (current or next).
        state: KeyState,
        /// When a next key becomes current.
        promote_at: Option<i64>,
    },
}

/// Why an operator's request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LifecycleError {
    /// A next key is already published; one at a time.
    #[error(
        "key {kid} is already next (it becomes current at {promote_at}); retire it first to replace it"
    )]
    NextPending {
        /// The pending key.
        kid: String,
        /// When it becomes current.
        promote_at: i64,
    },
    /// No key has this kid.
    #[error("no signing key {0}")]
    UnknownKey(String),
    /// The current key cannot just go: something must sign.
    #[error("key {0} is the current key; `keys rotate --now` replaces and retires it")]
    RetiringCurrent(String),
    /// The key is already retired.
    #[error("key {0} is already retired")]
    AlreadyRetired(String),
    /// A key with this kid is already stored.
    #[error("key {0} is already stored")]
    DuplicateKey(String),
}

fn find(records: &[KeyRecord], state: KeyState) -> Option<&KeyRecord> {
    records.iter().find(|r| r.state == state)
}

/// When the current key's scheduled rotation makes it previous, if one is
/// scheduled.
fn scheduled_promotion(current: &KeyRecord, policy: &LifecyclePolicy) -> Option<i64> {
    let since = current.activated_at.unwrap_or(current.created_at);
    (policy.rotation_period_secs > 0).then(|| since.saturating_add(policy.rotation_period_secs))
}

/// The steps due at `now`: previous keys past their window retire; a next
/// key whose time has come (or any next key, when nothing signs) becomes
/// current and the current key previous; with no key at all a current one
/// is made; and when the scheduled rotation is within `publish_ahead_secs`
/// and no next key is waiting, a next key is made to take over at the
/// scheduled time (or `publish_ahead_secs` from now, if that is later).
pub fn due_steps(records: &[KeyRecord], policy: &LifecyclePolicy, now: i64) -> Vec<Step> {
    let mut steps: Vec<Step> = records
        .iter()
        .filter(|r| r.state == KeyState::Previous && r.retire_at.is_none_or(|at| at <= now))
        .map(|r| Step::Update {
            from: KeyState::Previous,
            record: r.retired(now),
        })
        .collect();
    let current = find(records, KeyState::Current);
    let next = find(records, KeyState::Next);
    match (current, next) {
        (current, Some(next))
            if current.is_none() || next.promote_at.is_none_or(|at| at <= now) =>
        {
            // Demote first: the store allows one current key at a time.
            if let Some(current) = current {
                steps.push(Step::Update {
                    from: KeyState::Current,
                    record: current.demoted(now, policy),
                });
            }
            steps.push(Step::Update {
                from: KeyState::Next,
                record: next.promoted(now),
            });
        }
        (None, None) => steps.push(Step::Create {
            state: KeyState::Current,
            promote_at: None,
        }),
        (Some(current), None) => {
            if let Some(at) = scheduled_promotion(current, policy)
                && now >= at.saturating_sub(policy.publish_ahead_secs)
            {
                steps.push(Step::Create {
                    state: KeyState::Next,
                    promote_at: Some(at.max(now.saturating_add(policy.publish_ahead_secs))),
                });
            }
        }
        // A next key waiting for its time (a missing current is handled above).
        (_, Some(_)) => {}
    }
    steps
}

/// When [`due_steps`] next has something to do, if ever (a time in the
/// past means now).
pub fn next_due(records: &[KeyRecord], policy: &LifecyclePolicy) -> Option<i64> {
    let current = find(records, KeyState::Current);
    let next = find(records, KeyState::Next);
    let promotion = match (current, next) {
        (None, _) => Some(i64::MIN),
        (Some(_), Some(next)) => Some(next.promote_at.unwrap_or(i64::MIN)),
        (Some(current), None) => scheduled_promotion(current, policy)
            .map(|at| at.saturating_sub(policy.publish_ahead_secs)),
    };
    records
        .iter()
        .filter(|r| r.state == KeyState::Previous)
        .map(|r| r.retire_at.unwrap_or(i64::MIN))
        .chain(promotion)
        .min()
}

/// `keys rotate`: publish a new next key that becomes current after
/// `publish_ahead_secs`. Refused while another next key waits.
pub fn rotate(
    records: &[KeyRecord],
    policy: &LifecyclePolicy,
    now: i64,
) -> Result<Vec<Step>, LifecycleError> {
    refuse_pending_next(records)?;
    Ok(vec![Step::Create {
        state: KeyState::Next,
        promote_at: Some(now.saturating_add(policy.publish_ahead_secs)),
    }])
}

/// `keys rotate --now`, for a leaked key: the current key is retired at
/// once (its tokens refused, its JWKS entry gone) and a new key signs. A
/// waiting next key is left as it is.
pub fn rotate_now(records: &[KeyRecord], now: i64) -> Vec<Step> {
    let mut steps: Vec<Step> = find(records, KeyState::Current)
        .map(|current| Step::Update {
            from: KeyState::Current,
            record: current.retired(now),
        })
        .into_iter()
        .collect();
    steps.push(Step::Create {
        state: KeyState::Current,
        promote_at: None,
    });
    steps
}

/// `keys import`: an operator's key becomes the next key.
pub fn import(
    records: &[KeyRecord],
    kid: &str,
    alg: Algorithm,
    policy: &LifecyclePolicy,
    now: i64,
) -> Result<KeyRecord, LifecycleError> {
    if records.iter().any(|r| r.kid == kid) {
        return Err(LifecycleError::DuplicateKey(kid.to_owned()));
    }
    refuse_pending_next(records)?;
    Ok(KeyRecord::new(
        kid.to_owned(),
        alg,
        KeyState::Next,
        Some(now.saturating_add(policy.publish_ahead_secs)),
        now,
    ))
}

/// `keys retire KID`: a next or previous key leaves the JWKS now.
pub fn retire(records: &[KeyRecord], kid: &str, now: i64) -> Result<Vec<Step>, LifecycleError> {
    let record = records
        .iter()
        .find(|r| r.kid == kid)
        .ok_or_else(|| LifecycleError::UnknownKey(kid.to_owned()))?;
    match record.state {
        KeyState::Current => Err(LifecycleError::RetiringCurrent(kid.to_owned())),
        KeyState::Retired => Err(LifecycleError::AlreadyRetired(kid.to_owned())),
        from @ (KeyState::Next | KeyState::Previous) => Ok(vec![Step::Update {
            from,
            record: record.retired(now),
        }]),
    }
}

/// The signing key of a data directory from before keys were stored: with
/// no stored key it becomes current, so tokens issued before the upgrade
/// stay valid and it keeps signing; if other keys are stored (another
/// instance upgraded first) it becomes previous, accepted until its tokens
/// expire. Once stored, in any state, it is never taken again.
pub fn adopt(
    records: &[KeyRecord],
    kid: &str,
    alg: Algorithm,
    policy: &LifecyclePolicy,
    now: i64,
) -> Option<KeyRecord> {
    if records.iter().any(|r| r.kid == kid) {
        return None;
    }
    let state = if records.is_empty() {
        KeyState::Current
    } else {
        KeyState::Previous
    };
    let record = KeyRecord::new(kid.to_owned(), alg, state, None, now);
    Some(if state == KeyState::Previous {
        record.demoted(now, policy)
    } else {
        record
    })
}

fn refuse_pending_next(records: &[KeyRecord]) -> Result<(), LifecycleError> {
    match find(records, KeyState::Next) {
        Some(next) => Err(LifecycleError::NextPending {
            kid: next.kid.clone(),
            promote_at: next.promote_at.unwrap_or(next.created_at),
        }),
        None => Ok(()),
    }
}

/// Where the stored keys stand, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyTimeline {
    /// When the current key started signing.
    pub current_since: i64,
    /// When a key next becomes current: a waiting next key's time, else the
    /// scheduled rotation's; `None` when neither is planned.
    pub next_promotion_at: Option<i64>,
    /// The scheduled rotation period in seconds (0: manual only).
    pub rotation_period_secs: i64,
    /// Stored keys by state, in [`KeyState::ALL`] order.
    pub by_state: [(KeyState, usize); 4],
}

impl KeyTimeline {
    /// The timeline of `records` (`None` without a current key).
    pub fn of(records: &[KeyRecord], policy: &LifecyclePolicy) -> Option<Self> {
        let current = find(records, KeyState::Current)?;
        let next_promotion_at = match find(records, KeyState::Next) {
            Some(next) => next.promote_at,
            None => scheduled_promotion(current, policy),
        };
        Some(Self {
            current_since: current.activated_at.unwrap_or(current.created_at),
            next_promotion_at,
            rotation_period_secs: policy.rotation_period_secs,
            by_state: KeyState::ALL
                .map(|state| (state, records.iter().filter(|r| r.state == state).count())),
        })
    }
}

#[cfg(test)]
mod tests;
