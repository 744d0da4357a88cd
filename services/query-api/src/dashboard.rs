//! The web dashboard (bảng theo dõi) in Vietnamese: one HTML page, a script and a stylesheet,
//! embedded in the binary and served at `/` and `/dashboard/…` without a token.
//!
//! Why a small script over the JSON endpoints rather than pages rendered here: the script calls
//! the very endpoints of the route table with the signed-in user's bearer token, so the page
//! cannot show anything the API would refuse, and there is no second copy of the access rules
//! to drift from [`crate::routes::ROUTES`]. Nothing is built or fetched from elsewhere: the
//! machines the dashboard runs on have no internet.

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// One embedded file.
#[derive(Debug)]
pub struct Asset {
    pub path: &'static str,
    pub content_type: &'static str,
    pub body: &'static str,
}

/// Every file of the dashboard: the page and what it loads.
pub static ASSETS: &[Asset] = &[
    Asset {
        path: "/",
        content_type: "text/html; charset=utf-8",
        body: include_str!("dashboard/index.html"),
    },
    Asset {
        path: "/dashboard/app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("dashboard/app.js"),
    },
    Asset {
        path: "/dashboard/app.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("dashboard/app.css"),
    },
];

/// Scripts, styles and data from this service only; no framing (the page holds a token).
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

impl Asset {
    fn response(&'static self) -> Response {
        let mut response = self.body.into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(self.content_type),
        );
        // A new release must reach the browser at once: revalidate every time (the files are small).
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        );
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        response
    }
}

/// The dashboard's routes, merged into the service's router next to the API.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    ASSETS.iter().fold(Router::new(), |router, asset| {
        router.route(asset.path, get(move || async move { asset.response() }))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The budget for one page: its HTML, scripts and styles together.
    const PAGE_BUDGET: usize = 200 * 1024;

    #[test]
    fn the_page_loads_only_embedded_files_and_weighs_under_its_budget() {
        let page = ASSETS[0].body;
        for asset in &ASSETS[1..] {
            assert!(
                page.contains(&format!("\"{}\"", asset.path)),
                "index.html loads {}",
                asset.path
            );
        }
        assert!(!page.contains("http://") && !page.contains("https://"));
        let weight: usize = ASSETS.iter().map(|a| a.body.len()).sum();
        assert!(weight < PAGE_BUDGET, "{weight} bytes");
    }
}
