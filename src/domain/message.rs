//! SMS message text, its encoding and its segment count.

use std::fmt;

/// Most characters (Unicode scalar values) one message may hold, as the ACS API allows.
pub const BODY_MAX_CHARS: usize = 2048;

const GSM_SINGLE_SEPTETS: usize = 160;
const GSM_PART_SEPTETS: usize = 153;
const UCS2_SINGLE_UNITS: usize = 70;
const UCS2_PART_UNITS: usize = 67;

/// The GSM 03.38 default alphabet, one septet each.
const GSM_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
/// The GSM 03.38 extension table, two septets each (an escape, then the character).
const GSM_EXTENDED: &str = "\u{0C}^{}\\[~]|€";

/// How the carrier encodes a message, which sets the size of a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Encoding {
    #[serde(rename = "GSM-7")]
    Gsm7,
    #[serde(rename = "UCS-2")]
    Ucs2,
}

/// Message text that passed every rule, with its encoding and segment count.
///
/// The text is personal data: `Debug` shows its size only.
#[derive(Clone, PartialEq, Eq)]
pub struct SmsBody {
    text: String,
    encoding: Encoding,
    segments: u16,
}

impl SmsBody {
    /// Checks `text`: 1 to 2048 characters, some of them visible, no control characters but
    /// line breaks, no bidirectional embedding, override or isolate characters, and at most
    /// `max_segments` segments.
    ///
    /// The bidirectional controls U+202A to U+202E and U+2066 to U+2069 make a handset show
    /// text in another order than it is stored (a link or an amount reversed), a known way to
    /// disguise a message; right-to-left text needs none of them. The marks U+200E, U+200F
    /// and U+061C, which only nudge the direction of neutral characters, are allowed.
    ///
    /// # Errors
    /// The rule the text breaks, without the text.
    pub fn parse(text: &str, max_segments: u16) -> Result<Self, String> {
        if text.is_empty() {
            return Err("must not be empty".into());
        }
        if text.chars().count() > BODY_MAX_CHARS {
            return Err(format!("must be at most {BODY_MAX_CHARS} characters"));
        }
        if text.chars().any(is_forbidden_control) {
            return Err("must not contain control characters other than line breaks".into());
        }
        if text.chars().any(is_bidi_control) {
            return Err(
                "must not contain bidirectional embedding, override or isolate characters \
                 (U+202A to U+202E, U+2066 to U+2069)"
                    .into(),
            );
        }
        if !text.chars().any(is_visible) {
            return Err("must contain visible text".into());
        }
        let (encoding, segments) = count_segments(text);
        if segments > usize::from(max_segments) {
            return Err(format!(
                "takes {segments} segments as {}; at most {max_segments} are allowed",
                encoding.label()
            ));
        }
        let segments = u16::try_from(segments).unwrap_or(u16::MAX);
        Ok(Self {
            text: text.to_owned(),
            encoding,
            segments,
        })
    }

    /// The text, for the wire only.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    pub fn segments(&self) -> u16 {
        self.segments
    }
}

impl fmt::Debug for SmsBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmsBody")
            .field("chars", &self.text.chars().count())
            .field("encoding", &self.encoding)
            .field("segments", &self.segments)
            .finish()
    }
}

impl Encoding {
    pub fn label(self) -> &'static str {
        match self {
            Self::Gsm7 => "GSM-7",
            Self::Ucs2 => "UCS-2",
        }
    }
}

fn is_forbidden_control(c: char) -> bool {
    c.is_control() && c != '\n' && c != '\r'
}

/// The explicit bidirectional formatting characters: embeddings, overrides, isolates and
/// their terminators.
/// Whether a character shows on a handset on its own: not white space, not an invisible
/// format or filler character (zero-width characters, direction marks, joiners, variation
/// selectors, tag characters, Hangul and Braille blanks), and not a combining mark, which
/// only changes the character before it.
fn is_visible(c: char) -> bool {
    !c.is_whitespace() && !is_invisible_format(c) && !is_combining_mark(c)
}

fn is_invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}' | '\u{034F}' | '\u{0600}'..='\u{0605}' | '\u{061C}' | '\u{06DD}' | '\u{070F}'
            | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}' | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{206F}'
            | '\u{2800}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}' | '\u{FFA0}'
            | '\u{FFF9}'..='\u{FFFB}' | '\u{E0001}' | '\u{E0020}'..='\u{E007F}'
            | '\u{E0100}'..='\u{E01EF}'
    )
}

fn is_combining_mark(c: char) -> bool {
    matches!(
        c,
        '\u{0300}'..='\u{036F}' | '\u{1AB0}'..='\u{1AFF}' | '\u{1DC0}'..='\u{1DFF}'
            | '\u{20D0}'..='\u{20FF}' | '\u{FE20}'..='\u{FE2F}'
    )
}

pub(crate) fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Septets a character takes in GSM-7, or `None` when GSM-7 cannot carry it.
fn gsm_septets(c: char) -> Option<usize> {
    if GSM_BASIC.contains(c) {
        Some(1)
    } else if GSM_EXTENDED.contains(c) {
        Some(2)
    } else {
        None
    }
}

/// Picks the encoding and counts segments the way handsets split a long message: a part
/// never ends inside a GSM escape sequence or a UTF-16 surrogate pair.
pub(crate) fn count_segments(text: &str) -> (Encoding, usize) {
    let septets: Option<Vec<usize>> = text.chars().map(gsm_septets).collect();
    match septets {
        Some(units) => (
            Encoding::Gsm7,
            pack(&units, GSM_SINGLE_SEPTETS, GSM_PART_SEPTETS),
        ),
        None => {
            let units: Vec<usize> = text.chars().map(char::len_utf16).collect();
            (
                Encoding::Ucs2,
                pack(&units, UCS2_SINGLE_UNITS, UCS2_PART_UNITS),
            )
        }
    }
}

fn pack(units: &[usize], single: usize, part: usize) -> usize {
    let total: usize = units.iter().sum();
    if total <= single {
        return 1;
    }
    let mut segments = 1;
    let mut used = 0;
    for &size in units {
        if used + size > part {
            segments += 1;
            used = 0;
        }
        used += size;
    }
    segments
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segments(text: &str) -> (Encoding, usize) {
        count_segments(text)
    }

    #[test]
    fn segment_counts_follow_gsm7_and_ucs2_edges() {
        let e = Encoding::Gsm7;
        let u = Encoding::Ucs2;
        let cases: Vec<(String, Encoding, usize)> = vec![
            ("a".into(), e, 1),
            ("a".repeat(160), e, 1),
            ("a".repeat(161), e, 2),
            ("a".repeat(306), e, 2),
            ("a".repeat(307), e, 3),
            ("€".repeat(80), e, 1),
            ("€".repeat(81), e, 2),
            (format!("{}€", "a".repeat(152)), e, 1),
            (format!("{a}€{a}", a = "a".repeat(152)), e, 3),
            ("é".repeat(160), e, 1),
            ("ж".repeat(70), u, 1),
            ("ж".repeat(71), u, 2),
            ("ж".repeat(134), u, 2),
            ("ж".repeat(135), u, 3),
            ("😀".repeat(35), u, 1),
            ("😀".repeat(36), u, 2),
            (format!("{}😀", "ж".repeat(66)), u, 1),
            (format!("{}😀", "ж".repeat(69)), u, 2),
            (format!("{}😀", "a".repeat(159)), u, 3),
            ("مرحبا".into(), u, 1),
            ("e\u{301}".into(), u, 1),
            ("tab\there".into(), u, 1),
        ];
        for (text, encoding, count) in cases {
            assert_eq!(
                segments(&text),
                (encoding, count),
                "{} chars",
                text.chars().count()
            );
        }
    }

    #[test]
    fn a_part_never_splits_a_surrogate_pair() {
        // 134 UTF-16 units would fill exactly two parts if the pair could be split.
        let text = format!("{z}😀{z}", z = "ж".repeat(66));

        assert_eq!(segments(&text), (Encoding::Ucs2, 3));
    }

    #[test]
    fn valid_bodies_are_accepted_with_their_encoding() {
        let body = SmsBody::parse("Your code is 123456", 10).unwrap();

        assert_eq!(body.encoding(), Encoding::Gsm7);
        assert_eq!(body.segments(), 1);
        assert_eq!(
            SmsBody::parse("Привет 👋", 10).unwrap().encoding(),
            Encoding::Ucs2
        );
        assert!(SmsBody::parse(&"a".repeat(1530), 10).is_ok());
        assert!(SmsBody::parse("line one\r\nline two", 10).is_ok());
        assert!(SmsBody::parse("رمزك \u{200F}1234\u{200E}", 10).is_ok());
    }

    #[test]
    fn invalid_bodies_are_refused() {
        let cases: Vec<(String, u16)> = vec![
            (String::new(), 10),
            ("   ".into(), 10),
            ("\n\n".into(), 10),
            ("a".repeat(2049), 255),
            ("a".repeat(1531), 10),
            ("ж".repeat(671), 10),
            ("a".repeat(161), 1),
            ("nul\0inside".into(), 10),
            ("bell\u{7}".into(), 10),
            ("c1\u{85}".into(), 10),
            ("pay \u{202E}0001$\u{202C}".into(), 10),
            ("\u{2067}مرحبا\u{2069}".into(), 10),
            ("\u{202A}embedded".into(), 10),
            ("\u{200B}\u{200B}".into(), 10),
            ("\u{FEFF}".into(), 10),
            (" \u{200E}\u{00AD}\n".into(), 10),
            ("\u{3164}\u{2800}\u{115F}\u{1160}\u{FFA0}".into(), 10),
            (
                "\u{034F}\u{FE0F}\u{180B}\u{17B5}\u{E0020}\u{206A}\u{FFF9}".into(),
                10,
            ),
            ("\u{200B}\u{0301}".into(), 10),
        ];
        for (text, max) in cases {
            assert!(
                SmsBody::parse(&text, max).is_err(),
                "{} chars",
                text.chars().count()
            );
        }
    }

    #[test]
    fn debug_output_never_shows_the_text() {
        let body = SmsBody::parse("secret code 998877", 10).unwrap();

        let shown = format!("{body:?}");

        assert!(!shown.contains("998877"), "{shown}");
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    fn gsm_char() -> impl Strategy<Value = char> {
        let alphabet: Vec<char> = GSM_BASIC.chars().chain(GSM_EXTENDED.chars()).collect();
        prop::sample::select(alphabet)
    }

    /// Text of every kind: GSM-7 only, GSM-7 with one stranger, and anything at all.
    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::collection::vec(gsm_char(), 0..400).prop_map(String::from_iter),
            (
                prop::collection::vec(gsm_char(), 0..400),
                any::<char>(),
                any::<prop::sample::Index>()
            )
                .prop_map(|(mut chars, stranger, at)| {
                    let at = at.index(chars.len() + 1);
                    chars.insert(at, stranger);
                    String::from_iter(chars)
                }),
            any::<String>(),
            "\\PC{0,300}",
        ]
    }

    fn in_gsm_alphabet(c: char) -> bool {
        GSM_BASIC.contains(c) || GSM_EXTENDED.contains(c)
    }

    proptest! {
        #[test]
        fn segments_are_at_least_one_and_gsm7_exactly_when_every_char_fits(text in text()) {
            let (encoding, segments) = count_segments(&text);

            prop_assert!(segments >= 1);
            let gsm = text.chars().all(in_gsm_alphabet);
            prop_assert_eq!(encoding == Encoding::Gsm7, gsm);
        }

        #[test]
        fn adding_a_character_never_lowers_the_segment_count(
            text in text(),
            extra in prop_oneof![gsm_char(), any::<char>()],
            at in any::<prop::sample::Index>(),
        ) {
            let mut chars: Vec<char> = text.chars().collect();
            let (_, before) = count_segments(&text);
            chars.insert(at.index(chars.len() + 1), extra);

            let (_, after) = count_segments(&String::from_iter(chars));

            prop_assert!(after >= before, "{} then {}", before, after);
        }

        #[test]
        fn parsing_never_panics_and_an_accepted_body_keeps_every_rule(
            text in text(),
            max_segments in 1u16..=255,
        ) {
            let Ok(body) = SmsBody::parse(&text, max_segments) else {
                return Ok(());
            };

            prop_assert_eq!(body.as_str(), text.as_str());
            prop_assert!(body.segments() >= 1 && body.segments() <= max_segments);
            prop_assert!(!text.chars().any(|c| is_forbidden_control(c) || is_bidi_control(c)));
            prop_assert!(text.chars().count() <= BODY_MAX_CHARS);
        }
    }
}
