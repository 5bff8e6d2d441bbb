//! Connections open per caller: an IPv4 address or an IPv6 /64 (the block
//! one host gets), so one source cannot take every connection slot.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use crate::limit::caller_key;

/// Open connections by caller, capped.
#[derive(Debug)]
pub struct ConnectionsPerIp {
    max: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl ConnectionsPerIp {
    /// At most `max` connections per caller; 0 means no cap.
    pub fn new(max: usize) -> Self {
        Self {
            max,
            open: Mutex::new(HashMap::new()),
        }
    }

    /// A slot for one more connection from `ip`, or `None` when its caller
    /// already has `max` open. The slot is given back when dropped.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<IpSlot> {
        if self.max == 0 {
            return Some(IpSlot(None));
        }
        let key = caller_key(ip);
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(key).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(IpSlot(Some((Arc::clone(self), key))))
    }

    /// Callers with at least one connection open.
    #[cfg(test)]
    fn callers(&self) -> usize {
        self.open.lock().map_or(0, |open| open.len())
    }
}

/// One connection's place in its caller's count.
#[derive(Debug)]
pub struct IpSlot(Option<(Arc<ConnectionsPerIp>, IpAddr)>);

impl Drop for IpSlot {
    fn drop(&mut self) {
        let Some((owner, key)) = self.0.take() else {
            return;
        };
        let mut open = owner.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&key) {
            *count -= 1;
            if *count == 0 {
                open.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_each_caller_and_forgets_callers_that_leave() {
        let per_ip = Arc::new(ConnectionsPerIp::new(2));
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let first = per_ip.admit(a).unwrap();
        let second = per_ip.admit(a).unwrap();
        assert!(per_ip.admit(a).is_none());
        assert!(
            per_ip.admit(b).is_some(),
            "another address has its own count"
        );
        drop(first);
        let third = per_ip.admit(a).unwrap();
        drop((second, third));
        assert_eq!(per_ip.callers(), 0);
    }

    #[test]
    fn an_ipv6_slash_64_is_one_caller() {
        let per_ip = Arc::new(ConnectionsPerIp::new(1));
        let _held = per_ip.admit("2001:db8::1".parse().unwrap()).unwrap();
        assert!(per_ip.admit("2001:db8::2:3".parse().unwrap()).is_none());
        assert!(per_ip.admit("2001:db8:0:1::1".parse().unwrap()).is_some());
    }

    #[test]
    fn zero_means_no_cap() {
        let per_ip = Arc::new(ConnectionsPerIp::new(0));
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let held: Vec<_> = (0..1000).map(|_| per_ip.admit(ip).unwrap()).collect();
        assert_eq!(held.len(), 1000);
    }
}
