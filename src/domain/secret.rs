//! A wrapper for secret text such as access tokens: it has no `Display` and no
//! `Serialize`, and its `Debug` shows nothing of the value.

use std::fmt;
use std::sync::Arc;

/// Secret text. The value is reached only through [`SecretString::expose_secret`], at the
/// line that builds a request or a response.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(Arc<str>);

impl SecretString {
    /// Wraps `value`.
    pub fn new(value: impl Into<Arc<str>>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the wire only.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_the_secret() {
        let secret = SecretString::new("eyJhbGciOi.secret-part.sig");

        let shown = format!("{secret:?} {:?}", Some(secret.clone()));

        assert!(!shown.contains("secret-part"), "{shown}");
        assert_eq!(secret.expose_secret(), "eyJhbGciOi.secret-part.sig");
    }
}
