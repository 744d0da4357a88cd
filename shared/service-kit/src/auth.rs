//! Bearer tokens: HS256-signed JWTs carrying user, unit and roles, with an expiry.
//!
//! A token names its primary role in `role`, and, when the principal holds more than one, all of
//! them in `roles` (the primary first): verifiers and readers that know only `role` still see
//! one valid role, and tokens of one role are exactly what they were before `roles` existed.
//!
//! Rotating the secret without downtime: a verifier may also accept tokens signed with the previous
//! secret ([`TokenKeys::rotating`]) while new tokens are signed with the current one, so tokens
//! already handed out keep working until the previous secret is removed.
//!
//! Deny by default: every command route takes an [`Authenticated`] extractor, so a handler that
//! forgets authentication does not compile into the router.

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use chrono::{DateTime, Duration, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use remediation_domain::text::UnitId;
use remediation_domain::{Actor, Principal, Role};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::problem::ApiError;

const ISSUER: &str = "kh63-remediation";

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    unit: Option<UnitId>,
    role: Role,
    /// Every role held, `role` first; absent when `role` is the only one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    roles: Option<Vec<Role>>,
    iss: String,
    iat: i64,
    exp: i64,
}

/// Signs tokens with the current secret key and verifies them with it or, during a rotation, with
/// the previous one.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    /// The secret being retired: still accepted, never used to sign.
    previous: Option<DecodingKey>,
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

/// A secret too short to sign with.
#[derive(Debug, thiserror::Error)]
#[error("the token secret must be at least 32 bytes")]
pub struct WeakSecret;

impl TokenKeys {
    /// One secret of at least 32 bytes, signing and verifying.
    pub fn new(secret: &[u8]) -> Result<Self, WeakSecret> {
        Self::rotating(secret, None)
    }

    /// Signs with `current`; accepts tokens signed with `current` or `previous`.
    pub fn rotating(current: &[u8], previous: Option<&[u8]>) -> Result<Self, WeakSecret> {
        check_length(current)?;
        if let Some(previous) = previous {
            check_length(previous)?;
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        validation.leeway = 5;
        Ok(Self {
            encoding: EncodingKey::from_secret(current),
            decoding: DecodingKey::from_secret(current),
            previous: previous.map(DecodingKey::from_secret),
            validation,
        })
    }

    /// The claims of a token signed with the current secret or, failing its signature check,
    /// with the previous one; any other failure (expired, wrong issuer) is final.
    fn claims(&self, token: &str) -> Result<Claims, jsonwebtoken::errors::Error> {
        let decoded = decode::<Claims>(token, &self.decoding, &self.validation);
        if let (Err(e), Some(previous)) = (&decoded, &self.previous)
            && *e.kind() == jsonwebtoken::errors::ErrorKind::InvalidSignature
        {
            return decode::<Claims>(token, previous, &self.validation).map(|data| data.claims);
        }
        decoded.map(|data| data.claims)
    }

    /// A token of one role, as every token was before principals held several.
    pub fn issue(&self, actor: &Actor, ttl: Duration) -> Result<String, TokenError> {
        self.issue_for(&Principal::from(actor.clone()), ttl)
    }

    pub fn issue_for(&self, principal: &Principal, ttl: Duration) -> Result<String, TokenError> {
        if principal.holds(Role::UnitStaff) && principal.unit().is_none() {
            return Err(TokenError::UnitRequired);
        }
        let now = Utc::now();
        let claims = Claims {
            sub: principal.user().to_owned(),
            unit: principal.unit().cloned(),
            role: principal.primary_role(),
            roles: (principal.roles().len() > 1).then(|| principal.roles().to_vec()),
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

    pub fn verify(&self, token: &str) -> Result<Authenticated, ApiError> {
        let claims = self
            .claims(token)
            .map_err(|e| ApiError::Unauthorized(format!("invalid bearer token: {e}")))?;
        let roles = match claims.roles {
            None => vec![claims.role],
            // Readers of `role` alone would grant a role the principal does not hold.
            Some(roles) if roles.first() == Some(&claims.role) => roles,
            Some(_) => {
                return Err(ApiError::Unauthorized(
                    "the token's role is not the first of its roles".to_owned(),
                ));
            }
        };
        let principal = Principal::new(claims.sub, claims.unit, roles)
            .map_err(|e| ApiError::Unauthorized(format!("invalid bearer token: {e}")))?;
        if principal.holds(Role::UnitStaff) && principal.unit().is_none() {
            return Err(ApiError::Unauthorized(
                "unit staff token names no unit".to_owned(),
            ));
        }
        let expires_at = DateTime::from_timestamp(claims.exp, 0).ok_or_else(|| {
            ApiError::Unauthorized("the token's expiry is out of range".to_owned())
        })?;
        Ok(Authenticated {
            principal,
            expires_at,
        })
    }
}

/// Shorter secrets make HS256 guessable.
fn check_length(secret: &[u8]) -> Result<(), WeakSecret> {
    if secret.len() < 32 {
        return Err(WeakSecret);
    }
    Ok(())
}

/// The verified principal of a request.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub principal: Principal,
    pub expires_at: DateTime<Utc>,
}

/// Who the bearer token says the caller is (`GET /v1/me` on both services).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Me {
    pub user: String,
    /// The user's unit; every unit staff token names one.
    pub unit: Option<UnitId>,
    /// Every role held, the primary one first.
    pub roles: Vec<Role>,
    /// When the token stops being accepted.
    pub expires_at: DateTime<Utc>,
}

impl From<&Authenticated> for Me {
    fn from(auth: &Authenticated) -> Self {
        Self {
            user: auth.principal.user().to_owned(),
            unit: auth.principal.unit().cloned(),
            roles: auth.principal.roles().to_vec(),
            expires_at: auth.expires_at,
        }
    }
}

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
        keys.verify(token.trim())
    }
}
