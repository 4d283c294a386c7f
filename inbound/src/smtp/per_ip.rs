//! Counting sessions per client IP address, so that one host cannot take every slot.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Sessions open per client address.
#[derive(Clone, Default)]
pub struct PerIp {
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One counted session; dropping it frees the slot.
pub struct Slot {
    ip: IpAddr,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl PerIp {
    /// A slot for `ip`, unless it already has `limit` sessions open.
    pub fn acquire(&self, ip: IpAddr, limit: usize) -> Option<Slot> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(ip).or_insert(0);
        if *count >= limit {
            return None;
        }
        *count += 1;
        Some(Slot {
            ip,
            open: Arc::clone(&self.open),
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_counted_per_address_and_freed_on_drop() {
        let per_ip = PerIp::default();
        let a: IpAddr = [192, 0, 2, 1].into();
        let b: IpAddr = [192, 0, 2, 2].into();
        let first = per_ip.acquire(a, 2);
        let second = per_ip.acquire(a, 2);
        assert!(first.is_some() && second.is_some());
        assert!(per_ip.acquire(a, 2).is_none());
        assert!(per_ip.acquire(b, 2).is_some());
        drop(first);
        assert!(per_ip.acquire(a, 2).is_some());
    }
}
