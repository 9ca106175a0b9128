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
use crate::certs::{self, csr_for, LoadedCert};
use crate::store::StoredCert;
use crate::Error;

/// Withdraws the challenge answers an order published, however the order ends.
///
/// On the normal path [`PendingChallenges::withdraw`] removes the copies in the shared store,
/// then the local answers (the responder's tokens, the resolver's challenge certificates). An
/// order cancelled before that (by the order timeout, or an error) drops this: the local
/// answers go at once, and a background task removes the shared copies (failing that, they
/// expire with the order timeout).
struct PendingChallenges<'a> {
    manager: &'a ManagerState,
    tokens: Vec<String>,
    alpn_names: Vec<String>,
    /// HTTP-01 tokens published in the store.
    shared_tokens: Vec<String>,
    /// Names whose TLS-ALPN-01 certificate is published in the store.
    shared_alpn_names: Vec<String>,
}

impl PendingChallenges<'_> {
    /// Withdraws everything, awaited so that no replica answers a validation for an order
    /// that has ended: the shared copies first, then the local answers (the other order
    /// would leave a moment in which this replica's own listener, finding no local
    /// challenge, served the shared copy).
    async fn withdraw(mut self) {
        let shared_tokens = std::mem::take(&mut self.shared_tokens);
        let shared_alpn_names = std::mem::take(&mut self.shared_alpn_names);
        remove_shared(
            self.manager.store.as_ref(),
            &shared_tokens,
            &shared_alpn_names,
        )
        .await;
        self.withdraw_local();
    }

    fn withdraw_local(&mut self) {
        for token in self.tokens.drain(..) {
            self.manager.responder.remove(&token);
        }
        for name in self.alpn_names.drain(..) {
            self.manager.resolver.clear_tls_alpn_challenge(&name);
        }
    }
}

impl Drop for PendingChallenges<'_> {
    fn drop(&mut self) {
        self.withdraw_local();
        if self.shared_tokens.is_empty() && self.shared_alpn_names.is_empty() {
            return;
        }
        // Cancelled before `withdraw`: drop cannot await, so a task removes the shared copies.
        let store = self.manager.store.clone();
        let tokens = std::mem::take(&mut self.shared_tokens);
        let names = std::mem::take(&mut self.shared_alpn_names);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move { remove_shared(store.as_ref(), &tokens, &names).await });
        }
    }
}

async fn remove_shared(store: &dyn crate::CertStore, tokens: &[String], alpn_names: &[String]) {
    for token in tokens {
        if let Err(e) = store.remove_challenge(token).await {
            tracing::debug!(error = %e, "removing a shared challenge failed");
        }
    }
    for name in alpn_names {
        if let Err(e) = store.remove_tls_alpn_challenge(name).await {
            tracing::debug!(name, error = %e, "removing a shared TLS-ALPN-01 challenge failed");
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
            shared_tokens: Vec::new(),
            shared_alpn_names: Vec::new(),
        };
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
                        let (cert, stored) =
                            certs::tls_alpn_challenge(name, key_auth.digest().as_ref())?;
                        self.resolver.set_tls_alpn_challenge_key(name, cert);
                        pending.alpn_names.push(name.to_owned());
                        // Published before `set_ready`, so whichever replica the CA's
                        // validation connection reaches can answer it (crate::Acceptor);
                        // failing that, this one still can.
                        match self
                            .store
                            .store_tls_alpn_challenge(name, &stored, self.cfg.order_timeout)
                            .await
                        {
                            Ok(()) => pending.shared_alpn_names.push(name.to_owned()),
                            Err(e) => {
                                tracing::warn!(name, error = %e, "publishing the TLS-ALPN-01 challenge failed")
                            }
                        }
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
                            Ok(()) => pending.shared_tokens.push(token),
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
        pending.withdraw().await;
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
