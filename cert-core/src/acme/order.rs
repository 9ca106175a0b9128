//! One ACME order for one name: challenges published (HTTP-01 or TLS-ALPN-01), validation
//! awaited, the CSR finalised, the certificate installed and stored.
//!
//! This is the only code that speaks the order protocol; when to order and who may order
//! live in `renewal` and `lease`.

use std::sync::atomic::Ordering;
use std::time::Duration;

use instant_acme::{
    AuthorizationStatus, ChallengeType, Identifier, NewOrder, OrderStatus, RetryPolicy,
};

use super::ManagerState;
use crate::certs::{csr_for, LoadedCert};
use crate::store::StoredCert;
use crate::Error;

/// Removes locally published challenge answers when the order ends, however it ends
/// (including cancellation by the order timeout).
struct PendingChallenges<'a> {
    manager: &'a ManagerState,
    tokens: Vec<String>,
    alpn_names: Vec<String>,
}

impl Drop for PendingChallenges<'_> {
    fn drop(&mut self) {
        for token in &self.tokens {
            self.manager.responder.remove(token);
        }
        for name in &self.alpn_names {
            self.manager.resolver.clear_tls_alpn_challenge(name);
        }
    }
}

impl ManagerState {
    /// One ACME order for `name`; installs and stores the certificate on success.
    pub(super) async fn order(&self, name: &str, attempt: u32) -> Result<LoadedCert, Error> {
        let account = self.account().await?;
        let identifiers = [Identifier::Dns(name.to_owned())];
        let mut order = account.new_order(&NewOrder::new(&identifiers)).await?;
        self.orders.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("cert_acme_orders_total", "name" => name.to_owned()).increment(1);

        // With both types enabled, alternate after failures: if port 80 is not reachable,
        // the next attempt uses 443, and vice versa.
        let prefer_tls = self.cfg.tls_alpn01 && (!self.cfg.http01 || attempt % 2 == 1);
        let mut pending = PendingChallenges {
            manager: self,
            tokens: Vec::new(),
            alpn_names: Vec::new(),
        };
        let mut published_tokens = Vec::new();
        {
            let mut authorizations = order.authorizations();
            while let Some(authz) = authorizations.next().await {
                let mut authz = authz?;
                match authz.status {
                    AuthorizationStatus::Pending => {}
                    AuthorizationStatus::Valid => continue,
                    other => {
                        return Err(Error::OrderFailed {
                            name: name.to_owned(),
                            detail: format!("authorization is {other:?}"),
                        })
                    }
                }
                let offered = |t: &ChallengeType| authz.challenges.iter().any(|c| &c.r#type == t);
                let http_ok = self.cfg.http01 && offered(&ChallengeType::Http01);
                let tls_ok = self.cfg.tls_alpn01 && offered(&ChallengeType::TlsAlpn01);
                let kind = match (http_ok, tls_ok) {
                    (true, true) if prefer_tls => ChallengeType::TlsAlpn01,
                    (true, _) => ChallengeType::Http01,
                    (false, true) => ChallengeType::TlsAlpn01,
                    (false, false) => {
                        return Err(Error::OrderFailed {
                            name: name.to_owned(),
                            detail: "the CA offered no enabled challenge type".into(),
                        })
                    }
                };
                let Some(mut challenge) = authz.challenge(kind.clone()) else {
                    return Err(Error::OrderFailed {
                        name: name.to_owned(),
                        detail: "challenge disappeared".into(),
                    });
                };
                let key_auth = challenge.key_authorization();
                match kind {
                    ChallengeType::TlsAlpn01 => {
                        self.resolver
                            .set_tls_alpn_challenge(name, key_auth.digest().as_ref())?;
                        pending.alpn_names.push(name.to_owned());
                    }
                    _ => {
                        let token = challenge.token.clone();
                        self.responder.insert(&token, key_auth.as_str());
                        pending.tokens.push(token.clone());
                        // Let other replicas answer too; failing that, this one still can.
                        match self
                            .store
                            .store_challenge(&token, key_auth.as_str(), self.cfg.order_timeout)
                            .await
                        {
                            Ok(()) => published_tokens.push(token),
                            Err(e) => {
                                tracing::warn!(name, error = %e, "publishing the challenge failed")
                            }
                        }
                    }
                }
                tracing::debug!(name, challenge = ?kind, "challenge ready");
                challenge.set_ready().await?;
            }
        }

        let retry = RetryPolicy::new()
            .initial_delay(Duration::from_millis(250))
            .backoff(1.5)
            .timeout(self.cfg.order_timeout);
        let status = order.poll_ready(&retry).await;
        drop(pending);
        for token in &published_tokens {
            if let Err(e) = self.store.remove_challenge(token).await {
                tracing::debug!(error = %e, "removing a shared challenge failed");
            }
        }
        match status? {
            OrderStatus::Ready => {}
            other => {
                let mut details = Vec::new();
                let mut authorizations = order.authorizations();
                while let Some(Ok(mut authz)) = authorizations.next().await {
                    if let Ok(state) = authz.refresh().await {
                        for c in &state.challenges {
                            if let Some(err) = &c.error {
                                details.push(err.to_string());
                            }
                        }
                    }
                }
                return Err(Error::OrderFailed {
                    name: name.to_owned(),
                    detail: if details.is_empty() {
                        format!("order is {other:?}")
                    } else {
                        details.join("; ")
                    },
                });
            }
        }

        let (csr, key_pem) = csr_for(name)?;
        order.finalize_csr(&csr).await?;
        let chain_pem = order.poll_certificate(&retry).await?;
        let stored = StoredCert { chain_pem, key_pem };
        let loaded = LoadedCert::from_stored(&stored)?;
        // Serve first: a store failure must not keep a valid certificate out of service.
        self.resolver.insert(name, loaded.key.clone());
        {
            let mut state = self.state.lock();
            let st = state.entry(name.to_owned()).or_default();
            st.cert = Some(loaded.info.clone());
            st.chain_pem = Some(stored.chain_pem.clone());
        }
        if let Err(e) = self.store.store_cert(name, &stored).await {
            metrics::counter!("cert_acme_failures_total", "name" => name.to_owned(), "reason" => "store")
                .increment(1);
            tracing::error!(name, error = %e, "storing the new certificate failed; serving it from memory");
        }
        Ok(loaded)
    }
}
