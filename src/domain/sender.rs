//! SMS senders: a phone number, a short code or an alphanumeric sender ID.

use std::fmt;

use super::phone::{mask_digits, PhoneNumber};

/// Who an SMS comes from, as ACS accepts it in `from`.
#[derive(Clone, PartialEq, Eq)]
pub enum Sender {
    /// A number in E.164 form owned by the ACS resource.
    Number(PhoneNumber),
    /// A short code: 3 to 8 digits, no `+` and no country code.
    ShortCode(String),
    /// An alphanumeric sender ID: 1 to 11 of `A-Z a-z 0-9` and inner spaces, with a letter.
    Alphanumeric(String),
}

impl Sender {
    /// Parses a sender.
    ///
    /// # Errors
    /// The rule the value breaks, without the value.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        if raw.starts_with('+') {
            return PhoneNumber::parse(raw).map(Self::Number);
        }
        if !raw.is_empty() && raw.bytes().all(|b| b.is_ascii_digit()) {
            if (3..=8).contains(&raw.len()) && !raw.starts_with('0') {
                return Ok(Self::ShortCode(raw.to_owned()));
            }
            return Err("must be an E.164 number, a short code of 3 to 8 digits, or an alphanumeric sender ID");
        }
        let allowed = raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b' ');
        let has_letter = raw.bytes().any(|b| b.is_ascii_alphabetic());
        let trimmed = raw.trim() == raw;
        if allowed && has_letter && trimmed && (1..=11).contains(&raw.len()) {
            return Ok(Self::Alphanumeric(raw.to_owned()));
        }
        Err("must be an E.164 number, a short code of 3 to 8 digits, or an alphanumeric sender ID of 1 to 11 letters, digits and inner spaces")
    }

    /// The sender as ACS expects it in `from`.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Number(number) => number.as_str(),
            Self::ShortCode(code) | Self::Alphanumeric(code) => code,
        }
    }

    /// A form safe for logs.
    pub fn masked(&self) -> String {
        match self {
            Self::Number(number) => number.masked(),
            // Short codes and sender IDs identify a business, not a person.
            Self::ShortCode(code) | Self::Alphanumeric(code) => code.clone(),
        }
    }
}

impl fmt::Debug for Sender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Number(number) => write!(f, "Sender({})", number.masked()),
            Self::ShortCode(code) => write!(f, "Sender(short code {})", mask_digits(code, "")),
            Self::Alphanumeric(id) => write!(f, "Sender({id})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_senders_are_accepted() {
        let cases = [
            ("+18005550100", "number"),
            ("12345", "short"),
            ("567890", "short"),
            ("Contoso", "alpha"),
            ("Contoso Ltd", "alpha"),
            ("A", "alpha"),
            ("Shop24", "alpha"),
        ];
        for (raw, kind) in cases {
            let sender = Sender::parse(raw).unwrap_or_else(|e| panic!("{raw}: {e}"));
            let got = match sender {
                Sender::Number(_) => "number",
                Sender::ShortCode(_) => "short",
                Sender::Alphanumeric(_) => "alpha",
            };
            assert_eq!(got, kind, "{raw}");
            assert_eq!(sender.as_str(), raw);
        }
    }

    #[test]
    fn invalid_senders_are_refused() {
        let cases = [
            "",
            " ",
            "12",
            "012345",
            "123456789",
            "+0800",
            "ContosoLimited",
            " Contoso",
            "Contoso ",
            "Con-toso",
            "Contoso!",
            "Contosö",
            "Con\0toso",
            "12 34",
        ];
        for raw in cases {
            assert!(Sender::parse(raw).is_err(), "{raw:?}");
        }
    }
}
