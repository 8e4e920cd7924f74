//! A user's API tokens, as the API and the console issue them: the token is
//! shown once; only its digest and a hint are kept.

use clawplane_domain::{ApiToken, TokenName, UserId};
use clawplane_secrets::{generate_api_token, ExposeSecret, SecretString};
use clawplane_store::{Store, StoreError};

/// Creates a token for `user`: the token to show once, and its record.
pub async fn issue(
    store: &Store,
    user: &UserId,
    name: &TokenName,
) -> Result<(SecretString, ApiToken), StoreError> {
    let (token, digest) = generate_api_token();
    let secret = token.expose_secret();
    let hint = format!("cpk_…{}", &secret[secret.len().saturating_sub(4)..]);
    let record = store.create_api_token(user, name, &digest, &hint).await?;
    tracing::info!(token_id = %record.id, "API token created");
    Ok((token, record))
}
