//! The ACME account: loaded from the store, or created and stored on first use, once per
//! directory URL.
//!
//! Separate because both ordering and renewal information (ARI) need it, and because it is
//! the only state that outlives every order and must survive restarts.

use instant_acme::{Account, AccountCredentials, NewAccount};

use super::ManagerState;
use crate::Error;

impl ManagerState {
    pub(super) async fn account(&self) -> Result<Account, Error> {
        let mut slot = self.account.lock().await;
        if let Some(account) = slot.as_ref() {
            return Ok(account.clone());
        }
        let url = self.cfg.directory_url.as_str();
        let builder = Account::builder_with_http(Box::new(self.http.clone()));
        let account = match self.store.load_account(url).await? {
            Some(bytes) => {
                let creds: AccountCredentials =
                    serde_json::from_slice(&bytes).map_err(|source| Error::Corrupt {
                        what: "ACME account",
                        source,
                    })?;
                builder.from_credentials(creds).await?
            }
            None => {
                let contact: Vec<&str> = self.cfg.contact.iter().map(String::as_str).collect();
                let (account, creds) = builder
                    .create(
                        &NewAccount {
                            contact: &contact,
                            terms_of_service_agreed: true,
                            only_return_existing: false,
                        },
                        url.to_owned(),
                        None,
                    )
                    .await?;
                let bytes = serde_json::to_vec(&creds).map_err(|source| Error::Corrupt {
                    what: "ACME account",
                    source,
                })?;
                self.store.store_account(url, &bytes).await?;
                tracing::info!(directory = url, id = account.id(), "ACME account created");
                account
            }
        };
        *slot = Some(account.clone());
        Ok(account)
    }
}
