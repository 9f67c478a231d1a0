//! Sending plain-HTTP clients to HTTPS: the `http_redirect_listen` server, and the answer a
//! plain-HTTP request gets on the TLS port itself.

use std::str::FromStr;

use axum::http::uri::{Authority, PathAndQuery};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Router;

/// What a plain-HTTP client is told when it cannot be redirected (no usable Host header).
pub const SPEAKS_HTTPS: &str = "This port speaks HTTPS: open the same address with https://";

/// The HTTPS URL for a request that arrived for `host` (a Host header value, port optional):
/// the same host name on `https_port` (`None`: keep the Host's port), the same path and query.
/// `None` when the host or the target do not parse, so nothing unchecked reaches a header.
pub fn https_url(host: &str, target: &str, https_port: Option<u16>) -> Option<String> {
    let authority = Authority::from_str(host).ok()?;
    if authority.as_str().contains('@') {
        return None;
    }
    let path = if target.starts_with('/') {
        PathAndQuery::from_str(target).ok()?
    } else {
        // absolute-form (`GET http://host/path`): keep its path.
        Uri::from_str(target).ok()?.path_and_query()?.clone()
    };
    let port = match https_port {
        Some(443) => None,
        Some(port) => Some(port),
        None => authority.port_u16(),
    };
    Some(match port {
        Some(port) => format!("https://{}:{port}{path}", authority.host()),
        None => format!("https://{}{path}", authority.host()),
    })
}

/// The router of `http_redirect_listen`: every request gets a 308 to the same path on HTTPS.
pub fn router(https_port: u16) -> Router {
    Router::new().fallback(move |uri: Uri, headers: HeaderMap| async move {
        redirect(&uri, &headers, https_port)
    })
}

fn redirect(uri: &Uri, headers: &HeaderMap, https_port: u16) -> Response {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| uri.authority().map(Authority::as_str));
    let target = uri.path_and_query().map_or("/", PathAndQuery::as_str);
    match host.and_then(|host| https_url(host, target, Some(https_port))) {
        // 308 rather than 301: a POST stays a POST.
        Some(url) => Redirect::permanent(&url).into_response(),
        None => (StatusCode::BAD_REQUEST, format!("{SPEAKS_HTTPS}\n")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_host_path_and_query_and_swaps_the_port() {
        assert_eq!(
            https_url("sb.example:8080", "/a/b?c=d", Some(8443)).as_deref(),
            Some("https://sb.example:8443/a/b?c=d")
        );
        assert_eq!(
            https_url("sb.example", "/", Some(443)).as_deref(),
            Some("https://sb.example/")
        );
        assert_eq!(
            https_url("[::1]:8000", "/x", None).as_deref(),
            Some("https://[::1]:8000/x")
        );
        assert_eq!(
            https_url("h:1", "http://h:1/p?q", None).as_deref(),
            Some("https://h:1/p?q")
        );
    }

    #[test]
    fn refuses_what_would_inject_or_mislead() {
        assert_eq!(https_url("evil\r\nSet-Cookie: x", "/", None), None);
        assert_eq!(https_url("user@evil.example", "/", None), None);
        assert_eq!(https_url("h", "/a b", None), None);
        assert_eq!(https_url("", "/", None), None);
    }
}
