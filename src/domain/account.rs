//! Account values: usernames, display names, passwords.

use super::ValidationError;

/// A login name: 3–32 characters from `[a-z0-9_.-]`, case-insensitive (kept lowercase), so
/// "Alice" and "alice" can never be two different people.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Username(String);

impl Username {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let name = raw.trim().to_ascii_lowercase();
        let valid = (3..=32).contains(&name.len())
            && name.chars().all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-')
            });
        if valid {
            Ok(Self(name))
        } else {
            Err(ValidationError::new(format!(
                "username {raw:?} is not valid: use 3-32 characters from a-z, 0-9, _ . -"
            )))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// The name shown to other users: 1–64 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let name = raw.trim();
        let chars = name.chars().count();
        if (1..=64).contains(&chars) && !name.chars().any(char::is_control) {
            Ok(Self(name.to_owned()))
        } else {
            Err(ValidationError::new(
                "display_name must be 1-64 characters without control characters",
            ))
        }
    }

    /// Without a display name, a user is shown by the username.
    pub fn from_username(username: &Username) -> Self {
        Self(username.as_str().to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A password as typed: 8–1024 characters (the upper bound keeps Argon2's work bounded).
#[derive(Clone)]
pub struct Password(String);

impl Password {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let chars = raw.chars().count();
        if (8..=1024).contains(&chars) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(ValidationError::new(
                "password must be 8-1024 characters long",
            ))
        }
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_lowercased_and_bounded() {
        assert_eq!(Username::parse(" Alice ").unwrap().as_str(), "alice");
        assert!(Username::parse("al").is_err());
        assert!(Username::parse("bob smith").is_err());
        assert!(Username::parse(&"a".repeat(33)).is_err());
    }

    #[test]
    fn passwords_are_bounded_and_hidden_in_debug() {
        assert!(Password::parse("short").is_err());
        let p = Password::parse("long enough").unwrap();
        assert_eq!(format!("{p:?}"), "Password(***)");
    }
}
