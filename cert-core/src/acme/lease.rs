//! Who may order a name right now: at most one order per name in this process, and, through
//! the store's lease, one across the replicas sharing a store.
//!
//! Kept apart from `order` so that every path into ordering passes the same gate: the managed
//! names check, the in-process set, the store's lease and the double check under it.

use std::collections::HashSet;

use parking_lot::Mutex;

use super::ManagerState;
use crate::certs::LoadedCert;
use crate::Error;

/// Marks a name as being ordered by this process until dropped.
struct InFlight<'a> {
    set: &'a Mutex<HashSet<String>>,
    name: String,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.set.lock().remove(&self.name);
    }
}

impl ManagerState {
    /// Leases, orders and installs a certificate for `name`, which must be managed.
    /// Orders a certificate for `name` under the store's lease. Unless `force`, a certificate
    /// that another replica stored between the caller's check and the lease wins: it is
    /// installed and nothing is ordered (reported as [`Error::Leased`], "someone else did it").
    pub(super) async fn obtain(&self, name: &str, force: bool) -> Result<LoadedCert, Error> {
        // Checked here, at the single entry to ordering, so that no path can order or write
        // for a name outside the route table (security case 28).
        if !self.names.contains(name) {
            return Err(Error::NameNotAllowed(name.to_owned()));
        }
        if !self.in_flight.lock().insert(name.to_owned()) {
            return Err(Error::Leased(name.to_owned()));
        }
        let _in_flight = InFlight {
            set: &self.in_flight,
            name: name.to_owned(),
        };
        let owner = self.cfg.owner_id.as_str();
        if !self
            .store
            .try_lease(name, owner, self.cfg.lease_ttl)
            .await?
        {
            return Err(Error::Leased(name.to_owned()));
        }
        if !force {
            // Double-checked under the lease: the holder before us may have just stored a
            // fresh certificate and released.
            if let Err(e) = self.sync_from_store(name).await {
                tracing::warn!(name, error = %e, "reading the stored certificate failed");
            }
            let now = self.clock.now();
            let frac = self.cfg.renew_remaining_fraction;
            let fresh = self
                .state
                .lock()
                .get(name)
                .and_then(|s| s.renew_at(frac))
                .is_some_and(|at| at > now);
            if fresh {
                if let Err(e) = self.store.release(name, owner).await {
                    tracing::warn!(name, error = %e, "releasing the order lease failed");
                }
                return Err(Error::Leased(name.to_owned()));
            }
        }
        *self.retry_after.lock() = None;
        let attempt = self.state.lock().get(name).map_or(0, |s| s.failures);
        let result =
            match tokio::time::timeout(self.cfg.order_timeout, self.order(name, attempt)).await {
                Ok(r) => r,
                Err(_) => Err(Error::OrderFailed {
                    name: name.to_owned(),
                    detail: format!("timed out after {:?}", self.cfg.order_timeout),
                }),
            };
        if let Err(e) = self.store.release(name, owner).await {
            tracing::warn!(name, error = %e, "releasing the order lease failed");
        }
        result
    }
}
