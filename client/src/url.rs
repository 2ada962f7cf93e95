//! The one rule for a gRPC endpoint given on a command line: `host:port`
//! means `http://host:port`; anything but a plain `http://` URL with a host
//! and no path is refused (nodes serve plain HTTP/2, no TLS).

use tonic::transport::Endpoint;

/// Why a string is not a node's gRPC endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UrlError {
    /// Nothing was given.
    Empty,
    /// tonic cannot parse it (`reason`: tonic's message).
    NotAUrl {
        /// tonic's parse error, as text.
        reason: String,
    },
    /// `https://`: nodes serve plain HTTP/2.
    Https,
    /// A scheme other than `http://`.
    Scheme,
    /// A URL without a host (`http://`).
    NoHost,
    /// A URL with a path: a gRPC endpoint is `http://host:port`.
    Path,
}

impl std::fmt::Display for UrlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UrlError::Empty => f.write_str("empty endpoint"),
            UrlError::NotAUrl { reason } => write!(f, "not a URL ({reason})"),
            UrlError::Https => f.write_str("https is not supported (plain http/2 only)"),
            UrlError::Scheme => f.write_str("only http:// URLs are supported"),
            UrlError::NoHost => f.write_str("no host"),
            UrlError::Path => f.write_str("a gRPC endpoint has no path"),
        }
    }
}

impl std::error::Error for UrlError {}

/// Normalizes an endpoint as given by a user: trims it, adds `http://` when
/// there is no scheme and drops a trailing `/`. The result is what
/// [`connect`](crate::connect) and [`channel_once`](crate::channel_once)
/// accept.
pub fn endpoint_url(raw: &str) -> Result<String, UrlError> {
    let s = raw.trim();
    if s.is_empty() {
        return Err(UrlError::Empty);
    }
    let url = if s.contains("://") {
        s.to_string()
    } else {
        format!("http://{s}")
    };
    let ep = Endpoint::from_shared(url.clone()).map_err(|e| UrlError::NotAUrl { reason: e.to_string() })?;
    match ep.uri().scheme_str() {
        Some("http") => {}
        Some("https") => return Err(UrlError::Https),
        _ => return Err(UrlError::Scheme),
    }
    if ep.uri().host().is_none_or(str::is_empty) {
        return Err(UrlError::NoHost);
    }
    if ep
        .uri()
        .path_and_query()
        .is_some_and(|p| p.as_str() != "/" && !p.as_str().is_empty())
    {
        return Err(UrlError::Path);
    }
    Ok(url.trim_end_matches('/').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_host_port_becomes_http_and_a_trailing_slash_goes() {
        assert_eq!(endpoint_url("127.0.0.1:7500").unwrap(), "http://127.0.0.1:7500");
        assert_eq!(endpoint_url(" http://node3:7503/ ").unwrap(), "http://node3:7503");
    }

    #[test]
    fn everything_else_is_refused_with_its_reason() {
        assert_eq!(endpoint_url("  "), Err(UrlError::Empty));
        assert_eq!(endpoint_url("https://127.0.0.1:7500"), Err(UrlError::Https));
        assert_eq!(endpoint_url("ftp://x:1"), Err(UrlError::Scheme));
        assert_eq!(endpoint_url("http://127.0.0.1:7500/path"), Err(UrlError::Path));
        for bad in ["http://", "http://a b:1", "http://[::1"] {
            assert!(
                matches!(endpoint_url(bad), Err(UrlError::NotAUrl { .. } | UrlError::NoHost)),
                "{bad:?}: {:?}",
                endpoint_url(bad)
            );
        }
    }
}
