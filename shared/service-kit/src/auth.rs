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
//!
//! A client sends the same token with every request, so a verifier remembers the tokens it has
//! verified ([`VERIFIED_CAPACITY`] of them, least recently used first out) and answers a token it
//! knows without the HMAC and the JSON decoding — but checks its expiry on every use, against the
//! clock and with the leeway a full verification allows, so a remembered token is accepted exactly
//! as long as verifying it again would accept it. Refused tokens are never remembered.

use std::collections::hash_map::RandomState;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::{FromRef, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use chrono::{DateTime, Duration, Utc};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{
    Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode, get_current_timestamp,
};
use lru::LruCache;
use remediation_domain::text::UnitId;
use remediation_domain::{Actor, Principal, Role};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::problem::ApiError;

const ISSUER: &str = "kh63-remediation";

/// How many verified tokens a verifier remembers: far more than the clients one service instance
/// serves at once, and a bounded amount of memory (tokens are a few hundred bytes; only tokens
/// that passed verification get in, so a caller without the secret cannot fill it).
pub const VERIFIED_CAPACITY: usize = 1024;

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
    /// Shared by clones, which hold the same keys and so would verify the same tokens alike.
    verified: Arc<VerifiedTokens>,
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
            verified: Arc::new(VerifiedTokens::new(VERIFIED_CAPACITY)),
        })
    }

    /// The claims of a token signed with the current secret or, failing its signature check,
    /// with the previous one; any other failure (expired, wrong issuer) is final.
    fn claims(&self, token: &str) -> Result<Claims, jsonwebtoken::errors::Error> {
        let decoded = decode::<Claims>(token, &self.decoding, &self.validation);
        if let (Err(e), Some(previous)) = (&decoded, &self.previous)
            && *e.kind() == ErrorKind::InvalidSignature
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

    /// The principal of a valid token, remembered from an earlier verification when there was one
    /// (see the module's documentation), else verified in full.
    pub fn verify(&self, token: &str) -> Result<Authenticated, ApiError> {
        // jsonwebtoken's own clock, so that a remembered token expires at the very second a full
        // verification would start refusing it.
        self.verify_at(token, get_current_timestamp())
    }

    /// [`Self::verify`] with the remembered tokens' expiry checked against `now` (seconds since
    /// the epoch); a full verification always uses the clock.
    fn verify_at(&self, token: &str, now: u64) -> Result<Authenticated, ApiError> {
        match self.verified.recall(token, now, &self.validation) {
            Recalled::Valid(authenticated) => return Ok(authenticated),
            // What a full verification answers for the same token now: its signature and claims
            // were checked and only the time has changed.
            Recalled::Expired => {
                return Err(ApiError::Unauthorized(format!(
                    "invalid bearer token: {}",
                    jsonwebtoken::errors::Error::from(ErrorKind::ExpiredSignature)
                )));
            }
            Recalled::Unknown => {}
        }
        let authenticated = self.verify_in_full(token)?;
        self.verified.remember(token, &authenticated);
        Ok(authenticated)
    }

    fn verify_in_full(&self, token: &str) -> Result<Authenticated, ApiError> {
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

/// The tokens a verifier has accepted, each with its principal; least recently used first out.
struct VerifiedTokens {
    /// SipHash with a random key: the lookups hash whatever a caller sends.
    tokens: Mutex<LruCache<Box<str>, Authenticated, RandomState>>,
}

/// What the verifier remembers of a token.
enum Recalled {
    Valid(Authenticated),
    /// Verified once, expired since (and forgotten now).
    Expired,
    Unknown,
}

impl VerifiedTokens {
    fn new(capacity: usize) -> Self {
        let capacity = NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN);
        Self {
            tokens: Mutex::new(LruCache::with_hasher(capacity, RandomState::new())),
        }
    }

    /// Nothing done under the lock panics short of running out of memory, so the map behind a
    /// poisoned lock is still whole.
    fn lock(&self) -> std::sync::MutexGuard<'_, LruCache<Box<str>, Authenticated, RandomState>> {
        self.tokens.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `token`'s principal if it was verified and, at `now`, has not expired under `validation`'s
    /// rule (the same comparison jsonwebtoken makes: `exp - reject_tokens_expiring_in_less_than <
    /// now - leeway` refuses).
    fn recall(&self, token: &str, now: u64, validation: &Validation) -> Recalled {
        let mut tokens = self.lock();
        let Some(authenticated) = tokens.get(token) else {
            return Recalled::Unknown;
        };
        // A verified token's `exp` is a non-negative integer: jsonwebtoken parsed it as a u64.
        let exp = u64::try_from(authenticated.expires_at.timestamp()).unwrap_or(0);
        let expired = exp.saturating_sub(validation.reject_tokens_expiring_in_less_than)
            < now.saturating_sub(validation.leeway);
        if expired {
            tokens.pop(token);
            return Recalled::Expired;
        }
        Recalled::Valid(authenticated.clone())
    }

    fn remember(&self, token: &str, authenticated: &Authenticated) {
        self.lock().put(token.into(), authenticated.clone());
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
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

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"a-test-secret-of-at-least-32-bytes-long";
    const PREVIOUS: &[u8] = b"the-previous-secret-of-at-least-32-bytes";

    fn finance_officer() -> Principal {
        Principal::new(
            "stc",
            Some(UnitId::new("so-tai-chinh").expect("unit id")),
            [Role::DepartmentOfFinance, Role::UnitStaff],
        )
        .expect("principal")
    }

    fn unix(at: DateTime<Utc>) -> u64 {
        u64::try_from(at.timestamp()).expect("after the epoch")
    }

    #[test]
    fn the_hit_path_returns_the_same_principal() {
        let keys = TokenKeys::new(SECRET).expect("keys");
        let token = keys
            .issue_for(&finance_officer(), Duration::hours(1))
            .expect("token");
        let first = keys.verify(&token).expect("verified in full");
        assert_eq!(keys.verified.len(), 1);
        let again = keys.verify(&token).expect("remembered");
        assert_eq!(again.principal, first.principal);
        assert_eq!(again.principal, finance_officer());
        assert_eq!(again.expires_at, first.expires_at);
        // A clone shares what the original remembered.
        assert_eq!(keys.clone().verified.len(), 1);
    }

    #[test]
    fn a_cached_token_past_its_expiry_is_refused() {
        let keys = TokenKeys::new(SECRET).expect("keys");
        let token = keys
            .issue_for(&finance_officer(), Duration::hours(1))
            .expect("token");
        let exp = unix(keys.verify(&token).expect("verified").expires_at);
        let leeway = keys.validation.leeway;
        // The last second jsonwebtoken accepts (`exp < now - leeway` refuses) is still accepted…
        assert!(keys.verify_at(&token, exp + leeway).is_ok());
        // …and the next is refused, with the answer a full verification gives an expired token.
        let refused = keys
            .verify_at(&token, exp + leeway + 1)
            .expect_err("expired");
        assert_eq!(keys.verified.len(), 0, "an expired token is forgotten");
        let expired = keys
            .issue_for(&finance_officer(), Duration::seconds(-60))
            .expect("token");
        let in_full = keys.verify(&expired).expect_err("expired");
        assert!(matches!(refused, ApiError::Unauthorized(_)));
        assert_eq!(refused.to_string(), in_full.to_string());
        assert_eq!(keys.verified.len(), 0, "a refused token is not remembered");
    }

    #[test]
    fn a_wrong_token_is_refused_every_time() {
        let keys = TokenKeys::new(SECRET).expect("keys");
        let forged = TokenKeys::new(b"another-secret-another-secret-another")
            .expect("keys")
            .issue_for(&finance_officer(), Duration::hours(1))
            .expect("token");
        let valid = keys
            .issue_for(&finance_officer(), Duration::hours(1))
            .expect("token");
        keys.verify(&valid).expect("valid");
        // The valid token with its signature's last character changed.
        let mut tampered = valid.clone();
        let last = if tampered.ends_with('A') { "B" } else { "A" };
        tampered.replace_range(tampered.len() - 1.., last);
        for _ in 0..3 {
            for token in [&forged, &tampered, &String::from("not-a-jwt")] {
                assert!(matches!(keys.verify(token), Err(ApiError::Unauthorized(_))));
            }
        }
        assert_eq!(keys.verified.len(), 1, "only the valid token is remembered");
    }

    #[test]
    fn a_token_of_the_previous_secret_is_remembered_only_while_it_is_valid() {
        let rotating = TokenKeys::rotating(SECRET, Some(PREVIOUS)).expect("keys");
        let old = TokenKeys::new(PREVIOUS)
            .expect("keys")
            .issue_for(&finance_officer(), Duration::hours(1))
            .expect("token");
        let first = rotating.verify(&old).expect("previous secret accepted");
        let again = rotating.verify(&old).expect("remembered");
        assert_eq!(again.principal, first.principal);
        let exp = unix(first.expires_at);
        let leeway = rotating.validation.leeway;
        assert!(rotating.verify_at(&old, exp + leeway + 1).is_err());
        // A verifier without the previous secret never accepted it, so has nothing to recall.
        let rotated = TokenKeys::new(SECRET).expect("keys");
        assert!(rotated.verify(&old).is_err());
        assert!(rotated.verify(&old).is_err());
        assert_eq!(rotated.verified.len(), 0);
    }
}
