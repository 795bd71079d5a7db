//! Bearer tokens: Admin's (`--admin-token`) and, when set, the
//! Authorizer's (`--api-token`, for a permd reachable beyond its pod).
//! Compared in constant time; logged only as a fingerprint.

use tonic::Status;
use tonic::metadata::MetadataMap;

/// Shortest token accepted: a short one can be guessed.
pub const MIN_TOKEN_CHARS: usize = 16;

/// A token every call of one service must present as
/// `authorization: Bearer <token>`.
#[derive(Clone)]
pub struct BearerToken {
    token: String,
    /// What the token is called in messages: "admin token", "API token".
    name: &'static str,
}

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "BearerToken({}, {})",
            self.name,
            fingerprint(&self.token)
        )
    }
}

impl BearerToken {
    /// `flag` names the setting in the refusal of a short token.
    pub fn new(token: &str, name: &'static str, flag: &str) -> anyhow::Result<BearerToken> {
        let token = token.trim();
        if token.chars().count() < MIN_TOKEN_CHARS {
            anyhow::bail!("the {name} must be at least {MIN_TOKEN_CHARS} characters ({flag})");
        }
        Ok(BearerToken {
            token: token.to_owned(),
            name,
        })
    }

    /// UNAUTHENTICATED without a bearer token, PERMISSION_DENIED with
    /// another one.
    pub fn check(&self, metadata: &MetadataMap) -> Result<(), Status> {
        self.check_header(
            metadata
                .get("authorization")
                .map(|v| v.to_str().unwrap_or("")),
        )
    }

    /// The same check of an `authorization` header's value.
    pub fn check_header(&self, header: Option<&str>) -> Result<(), Status> {
        let name = self.name;
        let Some(value) = header else {
            return Err(Status::unauthenticated(format!(
                "this call needs the header `authorization: Bearer <{name}>`"
            )));
        };
        // The scheme is case-insensitive (RFC 9110 §11.1).
        let presented = value
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token)
            .ok_or_else(|| {
                Status::unauthenticated(format!(
                    "the authorization header must be `Bearer <{name}>`"
                ))
            })?;
        if !constant_time_eq(presented.trim().as_bytes(), self.token.as_bytes()) {
            return Err(Status::permission_denied(format!(
                "the {name} presented is not this permd's {name}"
            )));
        }
        Ok(())
    }

    /// The token's fingerprint, for audit lines.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.token)
    }
}

/// `sha256:` and the first 12 hex digits of the token's SHA-256: enough
/// to tell tokens apart across a rotation, useless for guessing one.
pub fn fingerprint(token: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let hex: String = digest
        .as_ref()
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256:{hex}")
}

/// Compares without an early exit, so timing does not reveal how much of a
/// guessed token was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for (i, x) in a.iter().enumerate() {
        diff |= usize::from(x ^ b.get(i % b.len().max(1)).copied().unwrap_or(0));
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn tokens_compare_equal_only_when_equal() {
        assert!(constant_time_eq(b"0123456789abcdef", b"0123456789abcdef"));
        assert!(!constant_time_eq(b"0123456789abcdeX", b"0123456789abcdef"));
        assert!(!constant_time_eq(b"0123456789abcdef0", b"0123456789abcdef"));
        assert!(!constant_time_eq(b"", b"0123456789abcdef"));
        assert!(!constant_time_eq(b"0123", b""));
    }

    #[test]
    fn checks_the_header_and_names_the_token() {
        let token = BearerToken::new("0123456789abcdef", "API token", "--api-token").unwrap();
        let mut md = MetadataMap::new();
        let e = token.check(&md).unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unauthenticated);
        assert!(
            e.message().contains("Bearer <API token>"),
            "{}",
            e.message()
        );
        md.insert("authorization", "Basic abc".parse().unwrap());
        assert_eq!(
            token.check(&md).unwrap_err().code(),
            tonic::Code::Unauthenticated
        );
        md.insert("authorization", "Bearer 0123456789abcdeX".parse().unwrap());
        assert_eq!(
            token.check(&md).unwrap_err().code(),
            tonic::Code::PermissionDenied
        );
        md.insert("authorization", "Bearer 0123456789abcdef".parse().unwrap());
        assert!(token.check(&md).is_ok());
        assert!(BearerToken::new("short", "API token", "--api-token").is_err());
        assert_eq!(fingerprint("0123456789abcdef").len(), "sha256:".len() + 12);
        assert!(!format!("{token:?}").contains("0123456789abcdef"));
    }
}
