//! `GET /v1/me`: who the bearer token says the caller is, with every role it holds — what the
//! route checks and the visibility rules take the union of.

use axum::Json;
use service_kit::auth::Me;

use crate::access::Caller;

pub async fn handler(caller: Caller) -> Json<Me> {
    Json(Me::from(&caller.0))
}
