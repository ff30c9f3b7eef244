//! How the bucket's answers become [`StoreError`]s: S3 error codes from
//! the response body (`NoSuchBucket`, `AccessDenied`, `SlowDown`…), the
//! client's own error kinds, and what to fix for each that a setting causes.

use super::{S3Store, REQUEST_TIMEOUT};
use crate::store::{Status, StoreError};

impl S3Store {
    /// `err` from request `op` on `key`, as a store error that says what
    /// to fix where it can.
    pub(super) fn error(
        &self,
        op: &'static str,
        key: &str,
        err: object_store::Error,
    ) -> StoreError {
        let text = full_text(&err);
        let remote = |status: Status, detail: String| StoreError::Remote {
            addr: self.address.clone(),
            op,
            key: key.to_owned(),
            status,
            detail,
        };
        if text.contains("NoSuchBucket") {
            return remote(
                Status::BadRequest,
                format!(
                    "bucket {:?} does not exist at {}; fix: create it (garage bucket create / aws s3 mb) or correct `bucket`",
                    self.settings.bucket, self.settings.endpoint
                ),
            );
        }
        // A signature scoped to a region the endpoint does not serve (AWS
        // says so in AuthorizationHeaderMalformed or a redirect).
        if text.contains("AuthorizationHeaderMalformed") && text.contains("scope")
            || text.contains("PermanentRedirect")
            || text.contains("IncorrectEndpoint")
        {
            return StoreError::Refused {
                addr: self.address.clone(),
                reason: format!(
                    "{}; fix: set `region` to the bucket's region (now {:?}), or correct `endpoint`",
                    s3_reason(&text),
                    self.settings.region
                ),
            };
        }
        match err {
            object_store::Error::NotFound { .. } => StoreError::NotFound {
                key: key.to_owned(),
            },
            object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. } => StoreError::Refused {
                addr: self.address.clone(),
                reason: format!(
                    "{}; fix: check the access key, its secret, its rights on bucket {:?}, and `region`",
                    s3_reason(&text),
                    self.settings.bucket
                ),
            },
            _ if text.contains("AuthorizationHeaderMalformed")
                || text.contains("SignatureDoesNotMatch")
                || text.contains("InvalidAccessKeyId") =>
            {
                StoreError::Refused {
                    addr: self.address.clone(),
                    reason: format!(
                        "{}; fix: check the access key, its secret and `region`",
                        s3_reason(&text)
                    ),
                }
            }
            _ if is_connect(&text) => StoreError::Connect {
                addr: self.address.clone(),
                source: std::io::Error::new(std::io::ErrorKind::ConnectionRefused, text),
            },
            _ if text.contains("timed out") || text.contains("Timeout") => StoreError::Timeout {
                addr: self.address.clone(),
                op,
                after: REQUEST_TIMEOUT,
            },
            // 5xx and throttling after the client's own retries.
            _ if text.contains("Server error")
                || text.contains("SlowDown")
                || text.contains("status code: 5") =>
            {
                remote(Status::Unavailable, s3_reason(&text))
            }
            _ => StoreError::Transport {
                addr: self.address.clone(),
                op,
                source: std::io::Error::other(text),
            },
        }
    }
}

/// An error's text with its sources, for matching S3 error codes.
fn full_text(err: &object_store::Error) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// What an S3 error body says (`Code: Message`), else the text's first line.
fn s3_reason(text: &str) -> String {
    let field = |tag: &str| {
        let open = format!("<{tag}>");
        let start = text.find(&open)? + open.len();
        let len = text[start..].find(&format!("</{tag}>"))?;
        Some(&text[start..start + len])
    };
    match (field("Code"), field("Message")) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_owned(),
        _ => first_line(text).chars().take(200).collect(),
    }
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or(text)
}

fn is_connect(text: &str) -> bool {
    text.contains("error trying to connect")
        || text.contains("Connection refused")
        || text.contains("dns error")
        || text.contains("connect error")
}

/// Whether a get failed on its range (416, or a short answer).
pub(super) fn is_range(err: &object_store::Error) -> bool {
    let text = full_text(err);
    text.contains("416") || text.contains("InvalidRange") || text.contains("Range")
}
