//! Plain HTTP calls to Switchboard's API with an account's cookie and CSRF token.
//!
//! One `reqwest::Client` (one connection pool) serves every account: the session travels in
//! explicit headers rather than in a cookie store per user, which keeps thousands of pollers
//! cheap.

use std::sync::Arc;

use reqwest::header::{HeaderMap, CONTENT_TYPE, COOKIE};

use super::accounts::Account;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{method} {path}: {source}")]
    Transport {
        method: &'static str,
        path: String,
        source: reqwest::Error,
    },
    #[error("{path}: HTTP {status}: {body}")]
    Status {
        path: String,
        status: u16,
        body: String,
        retry_after: Option<f64>,
    },
    #[error("{path}: unexpected answer: {error}")]
    Body { path: String, error: String },
}

/// A finished response, body read.
pub struct Answer {
    pub path: String,
    pub status: u16,
    pub headers: HeaderMap,
    pub body: bytes::Bytes,
}

impl Answer {
    /// The body as `T`, if the status is `expected`; an [`ApiError::Status`] otherwise.
    pub fn json<'a, T: serde::Deserialize<'a>>(&'a self, expected: u16) -> Result<T, ApiError> {
        self.expect(expected)?;
        serde_json::from_slice(&self.body).map_err(|e| ApiError::Body {
            path: self.path.clone(),
            error: e.to_string(),
        })
    }

    pub fn expect(&self, expected: u16) -> Result<(), ApiError> {
        if self.status == expected {
            return Ok(());
        }
        let retry_after = self
            .headers
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok()?.parse::<f64>().ok());
        Err(ApiError::Status {
            path: self.path.clone(),
            status: self.status,
            body: String::from_utf8_lossy(&self.body)
                .chars()
                .take(300)
                .collect(),
            retry_after,
        })
    }
}

/// Where the server is and how to reach it.
#[derive(Clone)]
pub struct Api {
    pub http: reqwest::Client,
    /// `http://127.0.0.1:PORT`
    pub base: Arc<str>,
}

impl Api {
    pub fn new(base: &str) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            // Loopback only: an HTTP(S)_PROXY in the environment must not redirect the load.
            .no_proxy()
            .tcp_nodelay(true)
            .build()?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').into(),
        })
    }

    /// `ws://127.0.0.1:PORT`
    pub fn ws_base(&self) -> String {
        self.base.replacen("http", "ws", 1)
    }

    /// The server's own origin, which its WebSocket handshake requires in `Origin`.
    pub fn origin(&self) -> &str {
        &self.base
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, account: &Account, path: &str) -> Result<Answer, ApiError> {
        let request = self
            .http
            .get(self.url(path))
            .header(COOKIE, &account.cookie);
        self.finish("GET", path, request).await
    }

    pub async fn get_anonymous(&self, path: &str) -> Result<Answer, ApiError> {
        self.finish("GET", path, self.http.get(self.url(path)))
            .await
    }

    /// A state-changing POST of a JSON body, with the session and its CSRF token.
    pub async fn post(
        &self,
        account: &Account,
        path: &str,
        json: impl Into<reqwest::Body>,
    ) -> Result<Answer, ApiError> {
        let request = self
            .http
            .post(self.url(path))
            .header(COOKIE, &account.cookie)
            .header("X-CSRFToken", &account.csrf)
            .header(CONTENT_TYPE, "application/json")
            .body(json);
        self.finish("POST", path, request).await
    }

    pub async fn post_anonymous(&self, path: &str, json: String) -> Result<Answer, ApiError> {
        let request = self
            .http
            .post(self.url(path))
            .header(CONTENT_TYPE, "application/json")
            .body(json);
        self.finish("POST", path, request).await
    }

    async fn finish(
        &self,
        method: &'static str,
        path: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<Answer, ApiError> {
        let transport = |source| ApiError::Transport {
            method,
            path: path.to_owned(),
            source,
        };
        let response = request.send().await.map_err(transport)?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes().await.map_err(transport)?;
        Ok(Answer {
            path: path.to_owned(),
            status,
            headers,
            body,
        })
    }
}
