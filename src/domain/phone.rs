//! Phone numbers in E.164 form.

use std::fmt;

/// A phone number in E.164 form: `+`, then 2 to 15 digits, the first not zero.
///
/// The full number is personal data: `Debug` shows only the masked form, and the full form is
/// reached through [`PhoneNumber::as_str`] at the line that builds an outgoing request.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PhoneNumber(String);

impl PhoneNumber {
    /// Parses `raw` as an E.164 number, exactly as written (no spaces or punctuation).
    ///
    /// # Errors
    /// The rule the value breaks, without the value.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let Some(digits) = raw.strip_prefix('+') else {
            return Err("must be in E.164 form, starting with +");
        };
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err("must be in E.164 form: + followed by digits only");
        }
        if !(2..=15).contains(&digits.len()) {
            return Err("must be in E.164 form: + followed by 2 to 15 digits");
        }
        if digits.starts_with('0') {
            return Err("must be in E.164 form: the country code cannot start with 0");
        }
        Ok(Self(raw.to_owned()))
    }

    /// The full number, for the wire only.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A form safe for logs: at most four leading and four trailing digits, and never more
    /// than a third of the digits at either end, so that at least a third stays hidden
    /// (`+142***100` for `+14255550100`).
    pub fn masked(&self) -> String {
        mask_digits(&self.0[1..], "+")
    }
}

/// Masks a run of digits so that at least a third of it stays hidden.
pub(crate) fn mask_digits(digits: &str, prefix: &str) -> String {
    let len = digits.len();
    // At most a third at each end; four are enough to tell numbers apart in a log.
    let shown = (len / 3).min(4);
    let head = &digits[..shown.min(len)];
    let tail = &digits[len - shown.min(len)..];
    format!("{prefix}{head}***{tail}")
}

impl fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PhoneNumber({})", self.masked())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_numbers_are_accepted() {
        for raw in [
            "+14255550123",
            "+12",
            "+123456789012345",
            "+442071838750",
            "+918888888888",
        ] {
            assert!(PhoneNumber::parse(raw).is_ok(), "{raw}");
        }
    }

    #[test]
    fn invalid_numbers_are_refused() {
        let cases = [
            "",
            "+",
            "14255550123",
            "+1",
            "+1234567890123456",
            "+04255550123",
            "+1 425 555 0123",
            "+1-425-555-0123",
            "++14255550123",
            "+1425555012a",
            "+١٢٣٤٥٦٧",
            "+14255550123\0",
            " +14255550123",
            "+１４２５５５５０１２３",
            "tel:+14255550123",
        ];
        for raw in cases {
            assert!(PhoneNumber::parse(raw).is_err(), "{raw:?}");
        }
    }

    #[test]
    fn masked_form_hides_the_middle_digits() {
        let number = PhoneNumber::parse("+14255550100").unwrap();

        assert_eq!(number.masked(), "+142***100");
        assert_eq!(format!("{number:?}"), "PhoneNumber(+142***100)");
        let long = PhoneNumber::parse("+123456789012345").unwrap();
        assert_eq!(long.masked(), "+1234***2345");
        assert_eq!(PhoneNumber::parse("+123456").unwrap().masked(), "+12***56");
        assert_eq!(PhoneNumber::parse("+12").unwrap().masked(), "+***");
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    /// The E.164 rule, written out independently of the parser.
    fn is_e164(raw: &str) -> bool {
        let Some(digits) = raw.strip_prefix('+') else {
            return false;
        };
        let digits: Vec<char> = digits.chars().collect();
        (2..=15).contains(&digits.len())
            && digits.iter().all(char::is_ascii_digit)
            && digits[0] != '0'
    }

    proptest! {
        #[test]
        fn any_text_is_accepted_exactly_when_it_follows_the_e164_rule(raw in any::<String>()) {
            prop_assert_eq!(PhoneNumber::parse(&raw).is_ok(), is_e164(&raw));
        }

        #[test]
        fn near_misses_are_accepted_exactly_when_they_follow_the_e164_rule(
            raw in "[+]{0,2}[0-9０-９٠-٩ ()+-]{0,18}"
        ) {
            prop_assert_eq!(PhoneNumber::parse(&raw).is_ok(), is_e164(&raw));
        }

        #[test]
        fn the_masked_form_never_shows_the_middle_digits(digits in "[1-9][0-9]{1,14}") {
            let number = PhoneNumber::parse(&format!("+{digits}")).unwrap();

            let masked = number.masked();

            let (head, tail) = masked[1..].split_once("***").unwrap();
            prop_assert!(digits.starts_with(head) && digits.ends_with(tail));
            let hidden = digits.len() - head.len() - tail.len();
            prop_assert!(hidden * 3 >= digits.len(), "{} of {} hidden", hidden, digits.len());
            let shown = masked.chars().filter(char::is_ascii_digit).count();
            prop_assert_eq!(shown, head.len() + tail.len());
            let debug = format!("{number:?}");
            prop_assert!(!debug.contains(&digits));
        }
    }
}
