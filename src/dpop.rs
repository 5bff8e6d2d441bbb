//! DPoP proofs as this instance sees them: the pure checks of
//! [`crate::domain::dpop`] plus the `jti`s already seen, remembered for as
//! long as a proof could still be accepted, in bounded memory.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;

use aws_lc_rs::digest;

use crate::domain::dpop::{CheckedProof, ProofError, ProofTarget, ProofWindow, check_proof};

/// Why a proof was not accepted here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DpopError {
    /// The proof itself is refused.
    #[error(transparent)]
    Proof(#[from] ProofError),
    /// As many `jti`s as the replay window holds are still in it: refused
    /// rather than forgetting one, which would let that proof be replayed.
    #[error("too many DPoP proofs in the replay window")]
    ReplayWindowFull,
}

/// `jti`s seen within the proof window, oldest first, at most `capacity`.
#[derive(Debug)]
pub struct ReplayWindow {
    seen: HashSet<[u8; 32]>,
    /// (forget after, key), in insertion order.
    order: VecDeque<(i64, [u8; 32])>,
    capacity: usize,
}

impl ReplayWindow {
    /// An empty window that remembers at most `capacity` proofs.
    pub fn new(capacity: usize) -> Self {
        Self {
            seen: HashSet::new(),
            order: VecDeque::new(),
            capacity,
        }
    }

    /// Records `key` until `forget_after`; [`ProofError::Replayed`] if it is
    /// remembered already. Entries due at `now` go first.
    pub fn record(&mut self, key: [u8; 32], forget_after: i64, now: i64) -> Result<(), DpopError> {
        while let Some(&(due, old)) = self.order.front() {
            if due > now {
                break;
            }
            self.order.pop_front();
            self.seen.remove(&old);
        }
        if self.seen.contains(&key) {
            return Err(ProofError::Replayed.into());
        }
        if self.seen.len() >= self.capacity {
            return Err(DpopError::ReplayWindowFull);
        }
        self.seen.insert(key);
        self.order.push_back((forget_after, key));
        Ok(())
    }

    /// Proofs remembered now.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether no proof is remembered.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

/// Checks proofs and refuses a `jti` seen before on this instance.
#[derive(Debug)]
pub struct DpopChecker {
    window: ProofWindow,
    replay: Mutex<ReplayWindow>,
}

impl DpopChecker {
    /// A checker accepting proofs within `window`, remembering at most
    /// `capacity` of them.
    pub fn new(window: ProofWindow, capacity: usize) -> Self {
        Self {
            window,
            replay: Mutex::new(ReplayWindow::new(capacity)),
        }
    }

    /// The accepted `iat` window.
    pub fn window(&self) -> ProofWindow {
        self.window
    }

    /// Checks `proof` against `target` at `now`, then records its `jti`
    /// (scoped to its key) so the same proof is refused from now on.
    pub fn check(
        &self,
        proof: &str,
        target: &ProofTarget<'_>,
        now: i64,
    ) -> Result<CheckedProof, DpopError> {
        let checked = check_proof(proof, target, &self.window, now)?;
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(checked.jkt.as_bytes());
        ctx.update(b".");
        ctx.update(checked.jti.as_bytes());
        let mut key = [0u8; 32];
        key.copy_from_slice(ctx.finish().as_ref());
        let forget_after = now.saturating_add(self.window.replay_retention_secs());
        let mut replay = match self.replay.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        replay.record(key, forget_after, now)?;
        Ok(checked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_refused_until_it_is_due_then_forgotten() {
        let mut window = ReplayWindow::new(10);
        window.record([1; 32], 100, 0).unwrap();
        assert_eq!(
            window.record([1; 32], 150, 99),
            Err(DpopError::Proof(ProofError::Replayed))
        );
        window.record([1; 32], 200, 100).unwrap();
        assert_eq!(window.len(), 1);
    }

    #[test]
    fn a_full_window_refuses_rather_than_forgets() {
        let mut window = ReplayWindow::new(2);
        window.record([1; 32], 100, 0).unwrap();
        window.record([2; 32], 101, 1).unwrap();
        assert_eq!(
            window.record([3; 32], 102, 2),
            Err(DpopError::ReplayWindowFull)
        );
        assert_eq!(
            window.record([1; 32], 102, 2),
            Err(DpopError::Proof(ProofError::Replayed))
        );
        // Once the first is due, there is room again.
        window.record([3; 32], 200, 100).unwrap();
        assert_eq!(window.len(), 2);
    }
}
