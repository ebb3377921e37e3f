//! Input parsed at the edge into types that can only hold valid values.

use crate::error::{AppError, FieldErrors};

/// A username: 3–32 ASCII letters, digits, `_`, `.` or `-`, starting with a letter or
/// digit. Compared case-insensitively. ASCII only, so look-alike Unicode names cannot
/// impersonate one another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let s = raw.trim();
        if s.is_empty() {
            return Err("This field is required.".into());
        }
        if s.chars().count() < 3 || s.len() > 32 {
            return Err("Username must be 3 to 32 characters long.".into());
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        {
            return Err("Username may contain only letters a-z, digits, '_', '.' and '-'.".into());
        }
        if !s.as_bytes()[0].is_ascii_alphanumeric() {
            return Err("Username must start with a letter or a digit.".into());
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The lower-cased form uniqueness is checked on.
    pub fn key(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}

/// An email address: one `@`, a plausible local part and a dotted domain, at most 254
/// characters. Compared case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let s = raw.trim();
        if s.is_empty() {
            return Err("This field is required.".into());
        }
        let invalid = || "Enter a valid email address.".to_owned();
        if s.len() > 254 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid());
        }
        let (local, domain) = s.split_once('@').ok_or_else(invalid)?;
        if local.is_empty() || local.len() > 64 || domain.contains('@') {
            return Err(invalid());
        }
        let labels: Vec<&str> = domain.split('.').collect();
        if labels.len() < 2
            || labels.iter().any(|l| {
                l.is_empty()
                    || l.len() > 63
                    || l.starts_with('-')
                    || l.ends_with('-')
                    || !l.chars().all(|c| c.is_alphanumeric() || c == '-')
            })
        {
            return Err(invalid());
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn key(&self) -> String {
        self.0.to_lowercase()
    }
}

/// A new password that meets the policy: 8–128 characters, not containing the username
/// or email, and at least the configured zxcvbn strength score.
pub struct Password(String);

/// Longest password accepted; longer input is rejected before hashing.
pub const PASSWORD_MAX_CHARS: usize = 128;

impl Password {
    /// `user_inputs` are the account's username and email (what the password must not
    /// contain, and what zxcvbn should treat as guessable).
    pub fn parse(raw: &str, user_inputs: &[&str], min_score: u8) -> Result<Self, String> {
        let chars = raw.chars().count();
        if raw.is_empty() {
            return Err("This field is required.".into());
        }
        if chars < 8 {
            return Err("Password must be at least 8 characters long.".into());
        }
        if chars > PASSWORD_MAX_CHARS {
            return Err("Password must be at most 128 characters long.".into());
        }
        let lower = raw.to_lowercase();
        for input in user_inputs.iter().map(|s| s.trim().to_lowercase()) {
            if input.chars().count() >= 3 && lower.contains(&input) {
                return Err("Password must not contain your username or email.".into());
            }
        }
        let estimate = zxcvbn::zxcvbn(raw, user_inputs);
        if u8::from(estimate.score()) < min_score {
            let mut message = String::from("Password is too weak.");
            let bare = message.len();
            if let Some(feedback) = estimate.feedback() {
                if let Some(warning) = feedback.warning() {
                    message.push_str(&format!(" {warning}"));
                }
                for suggestion in feedback.suggestions() {
                    message.push_str(&format!(" {suggestion}"));
                }
            }
            if message.len() == bare {
                message.push_str(" Use a longer phrase of uncommon words.");
            }
            return Err(message);
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// A first or last name: at most 64 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name(String);

impl Name {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let s = raw.trim();
        if s.chars().count() > 64 {
            return Err("Must be at most 64 characters long.".into());
        }
        if s.chars().any(char::is_control) {
            return Err("Must not contain control characters.".into());
        }
        Ok(Self(s.to_owned()))
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// What a user signs in with: a username or an email address, looked up case-insensitively.
#[derive(Debug, Clone)]
pub struct Identifier(String);

impl Identifier {
    /// A username or email as typed: trimmed, at most 254 bytes, no control characters
    /// (no account has them, and a database may refuse a NUL).
    pub fn parse(raw: &str) -> Option<Self> {
        let s = raw.trim();
        (!s.is_empty() && s.len() <= 254 && !s.chars().any(char::is_control))
            .then(|| Self(s.to_lowercase()))
    }

    /// The lower-cased key matched against usernames and emails.
    pub fn key(&self) -> &str {
        &self.0
    }
}

/// Collects per-field problems and turns them into one validation error.
#[derive(Default)]
pub struct Validator {
    errors: FieldErrors,
}

impl Validator {
    /// Parses `value` with `parse`, remembering the message under `field` on failure.
    pub fn check<T>(&mut self, field: &str, result: Result<T, String>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(msg) => {
                self.errors.entry(field.to_owned()).or_default().push(msg);
                None
            }
        }
    }

    /// `Ok(())` when nothing was wrong.
    pub fn finish(self) -> Result<(), AppError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(AppError::Validation(self.errors))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        assert!(Username::parse("alice_42").is_ok());
        assert!(Username::parse("al").is_err());
        assert!(Username::parse("élodie").is_err());
        assert!(Username::parse("_alice").is_err());
        assert!(Username::parse("a'; DROP TABLE users;--").is_err());
        assert_eq!(Username::parse("Alice").unwrap().key(), "alice");
    }

    #[test]
    fn emails() {
        assert!(Email::parse("a@example.com").is_ok());
        assert!(Email::parse("a@b").is_err());
        assert!(Email::parse("a b@example.com").is_err());
        assert!(Email::parse("@example.com").is_err());
        assert!(Email::parse("a@@example.com").is_err());
        assert_eq!(
            Email::parse("A@Example.COM").unwrap().key(),
            "a@example.com"
        );
    }

    #[test]
    fn passwords() {
        let ok = "violet tractor umbrella 93";
        assert!(Password::parse(ok, &[], 3).is_ok());
        assert!(Password::parse("short", &[], 0).is_err());
        assert!(Password::parse(&"x".repeat(129), &[], 0).is_err());
        let err =
            Password::parse("my-alice_42-secret", &["Alice_42", "a@example.com"], 0).unwrap_err();
        assert!(err.contains("username or email"));
        let weak = Password::parse("password1", &[], 3).unwrap_err();
        assert!(weak.starts_with("Password is too weak."), "{weak}");
        assert!(
            weak.len() > "Password is too weak.".len(),
            "says what to fix: {weak}"
        );
        assert!(!format!("{:?}", Password::parse(ok, &[], 3).unwrap()).contains("violet"));
    }
}
