//! Bearer tokens: HS256-signed JWTs carrying user, unit and role, with an expiry.
//!
//! Deny by default: every command route takes an [`Authenticated`] extractor, so a handler that
//! forgets authentication does not compile into the router.

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use chrono::{Duration, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use remediation_domain::text::UnitId;
use remediation_domain::{Actor, Role};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

const ISSUER: &str = "kh63-remediation";

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    unit: Option<UnitId>,
    role: Role,
    iss: String,
    iat: i64,
    exp: i64,
}

/// Signs and verifies tokens with one secret key.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKeys(…)")
    }
}

/// Why a token could not be issued.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("unit staff tokens need a unit")]
    UnitRequired,
    #[error("signing failed: {0}")]
    Signing(#[from] jsonwebtoken::errors::Error),
}

impl TokenKeys {
    /// A key of at least 32 bytes; shorter secrets make HS256 guessable.
    pub fn new(secret: &[u8]) -> Result<Self, String> {
        if secret.len() < 32 {
            return Err("the token secret must be at least 32 bytes".to_owned());
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        validation.leeway = 5;
        Ok(Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
        })
    }

    pub fn issue(&self, actor: &Actor, ttl: Duration) -> Result<String, TokenError> {
        if actor.role == Role::UnitStaff && actor.unit.is_none() {
            return Err(TokenError::UnitRequired);
        }
        let now = Utc::now();
        let claims = Claims {
            sub: actor.user.clone(),
            unit: actor.unit.clone(),
            role: actor.role,
            iss: ISSUER.to_owned(),
            iat: now.timestamp(),
            exp: (now + ttl).timestamp(),
        };
        Ok(encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &self.encoding,
        )?)
    }

    pub fn verify(&self, token: &str) -> Result<Actor, ApiError> {
        let claims = decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| ApiError::Unauthorized(format!("invalid bearer token: {e}")))?
            .claims;
        if claims.role == Role::UnitStaff && claims.unit.is_none() {
            return Err(ApiError::Unauthorized(
                "unit staff token names no unit".to_owned(),
            ));
        }
        Ok(Actor {
            user: claims.sub,
            unit: claims.unit,
            role: claims.role,
        })
    }
}

/// The verified actor of a request.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Actor);

impl<S> FromRequestParts<S> for Authenticated
where
    S: Send + Sync,
    Arc<TokenKeys>: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let keys = Arc::<TokenKeys>::from_ref(state);
        let header = parts.headers.get(AUTHORIZATION).ok_or_else(|| {
            ApiError::Unauthorized("missing Authorization: Bearer header".to_owned())
        })?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .ok_or_else(|| {
                ApiError::Unauthorized("Authorization must be a Bearer token".to_owned())
            })?;
        keys.verify(token.trim()).map(Authenticated)
    }
}
