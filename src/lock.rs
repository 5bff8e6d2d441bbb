//! Reading and replacing a value held in a [`RwLock`] without failing on a
//! poisoned lock: the values kept this way (key sets, URLs, last errors,
//! loaded tables) are replaced whole, so a panic elsewhere while the lock
//! was held cannot leave one half-written.

use std::sync::RwLock;

/// A copy of the value.
pub fn read<T: Clone>(lock: &RwLock<T>) -> T {
    match lock.read() {
        Ok(guard) => guard.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    }
}

/// Replaces the value.
pub fn write<T>(lock: &RwLock<T>, value: T) {
    match lock.write() {
        Ok(mut guard) => *guard = value,
        Err(poisoned) => *poisoned.into_inner() = value,
    }
}
